//! Human decisions: finding the gate or trigger halt a decision is for,
//! answering a repeated request id, authorizing the principal, and
//! recording the decision.

use super::*;
use crate::machine::approval::Refusal;
use crate::machine::{payload, GateState, GateStatus, Subject, Target};

impl Driver {
    /// A human decision: finds the gate, answers a repeated request id with
    /// the original outcome, checks the principal against the gate's current
    /// level (directly or through a role) and the comment rule, then records
    /// it. Everything refused appends nothing.
    pub(super) fn decide(
        &mut self,
        id: &str,
        gate: Option<&str>,
        request: crate::runtime::DecisionRequest,
        reply: Reply<crate::runtime::DecisionOutcome>,
    ) {
        if !self.ensure_loaded(id) {
            let _ = reply.send(Err(self.load_error(id)));
            return;
        }
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        let instance = &cell.instance;
        let workflow = &cell.workflow;
        // A request id means one decision: the identical request again gets
        // the original outcome, anything else is a conflict.
        if !request.request_id.is_empty() {
            let used = match self.requests_in_flight.get(&request.request_id) {
                Some(used) => Ok(Some(used.clone())),
                None => crate::runtime::requests::lookup(&*self.shared.store, &request.request_id),
            };
            let answer = match used {
                Err(error) => Some(Err(error)),
                Ok(None) => None,
                Ok(Some(used)) if used.is_same(id, gate, &request) => {
                    Some(Ok(used.outcome(instance.seq, gate_status(instance, &used.phase, &used.gate), Some(instance.effective_status()))))
                }
                Ok(Some(used)) => Some(Err(used.conflict(&request.request_id))),
            };
            if let Some(answer) = answer {
                let _ = reply.send(answer);
                self.maybe_evict(id);
                return;
            }
        }
        // Decisions recorded before the request index existed are found in the state.
        if !request.request_id.is_empty() {
            for phase in &instance.phases {
                for state in &phase.gates {
                    if let Some((at, decision)) = state.decision_with_request(&request.request_id) {
                        let outcome = crate::runtime::DecisionOutcome {
                            instance: id.to_owned(),
                            phase: phase.id.clone(),
                            gate: state.id.clone(),
                            subject: crate::machine::Subject::Gate,
                            kind: decision.kind,
                            principal: decision.principal.clone(),
                            at: *at,
                            seq: instance.seq,
                            gate_status: state.status.kind().to_owned(),
                            instance_status: Some(instance.effective_status()),
                            replayed: true,
                        };
                        let names_it = gate.is_none_or(|g| g == state.id || g == format!("{}/{}", phase.id, state.id));
                        let result = if names_it
                            && decision.kind == request.kind
                            && decision.principal == request.principal
                            && decision.comment == request.comment
                        {
                            Ok(outcome)
                        } else {
                            Err(Error::Conflict(format!(
                                "request id {} was already used by {} to {} gate {}/{} at {at}",
                                request.request_id,
                                decision.principal,
                                decision.kind.verb(),
                                phase.id,
                                state.id
                            )))
                        };
                        let _ = reply.send(result);
                        self.maybe_evict(id);
                        return;
                    }
                }
            }
        }
        // A trigger's halt for approval is decided like a gate, named by the trigger's id.
        let target = match &instance.status {
            InstanceStatus::AwaitingDecision { phase, trigger, approval, .. }
                if gate.is_none_or(|g| g == trigger || g == format!("{phase}/{trigger}")) =>
            {
                match Target::halt_named(workflow, phase, trigger) {
                    Some(target) => Ok((target, approval)),
                    None => {
                        Err(Error::Invalid(format!("the pinned definition has no trigger `{phase}/{trigger}` that halts for approval")))
                    }
                }
            }
            _ => find_gate(instance, workflow, gate).map(|(p, g)| (Target::gate(workflow, p, g), &instance.phases[p].gates[g])),
        };
        match target.and_then(|(target, state)| self.decision_event(instance, target, state, &request)) {
            Ok((event, outcome)) => self.apply_and_drive(id, vec![event], Vec::new(), Vec::new(), Answer::Decided(reply, outcome)),
            Err(error) => {
                let _ = reply.send(Err(error));
                self.maybe_evict(id);
            }
        }
    }

    /// Authorizes a decision on a wait (a gate or a trigger's halt) by the
    /// one approval rule, and builds its event and outcome. A gate that is
    /// not awaiting a decision gets the event anyway, so the machine says
    /// why (already decided by whom and when).
    fn decision_event(
        &self,
        instance: &Instance,
        target: Target<'_>,
        state: &GateState,
        request: &crate::runtime::DecisionRequest,
    ) -> Result<(Event, crate::runtime::DecisionOutcome), Error> {
        let roles = self.shared.roles();
        let (level, via) = match &state.status {
            GateStatus::AwaitingDecision { level, .. } => {
                (*level, target.authorize(*level, &roles, &request.principal, &request.comment, &state.approvals_via()).map_err(refused)?)
            }
            // Holding a failed gate for remediation is its level-0 deciders' call.
            GateStatus::Failed { .. } if request.kind == crate::machine::DecisionKind::Hold => {
                (0, target.authorize(0, &roles, &request.principal, &request.comment, &[]).map_err(refused)?)
            }
            GateStatus::Pending | GateStatus::OnHold { .. } | GateStatus::Passed { .. } | GateStatus::Failed { .. } => (0, String::new()),
        };
        let seen = state.evaluation.as_ref().map(|e| e.criteria.iter().map(|c| (c.id.clone(), c.verdict)).collect()).unwrap_or_default();
        let inputs = target.inputs_for(request.kind, &request.inputs).map_err(Error::Invalid)?;
        let decision = crate::machine::Decision {
            kind: request.kind,
            principal: request.principal.clone(),
            auth: request.auth.clone(),
            via,
            comment: request.comment.clone(),
            request_id: request.request_id.clone(),
            level,
            seen,
            inputs,
        };
        let outcome = crate::runtime::DecisionOutcome::submitted(&instance.id, &target, request, self.shared.clock.now());
        let (phase, id) = (target.phase.to_owned(), target.id.to_owned());
        let event = match target.subject {
            Subject::Gate => Event::DecisionRecorded(payload::DecisionRecorded { phase, gate: id, decision }),
            Subject::Trigger => Event::TriggerDecided(payload::TriggerDecided { phase, trigger: id, decision }),
        };
        Ok((event, outcome))
    }
}

/// The runtime's error for a principal the approval rule refuses.
fn refused(refusal: Refusal) -> Error {
    match refusal {
        Refusal::NotAllowed(why) => Error::Forbidden(why),
        Refusal::CommentRequired(why) => Error::Invalid(why),
    }
}

pub(super) fn gate_status(instance: &Instance, phase: &str, gate: &str) -> String {
    if let InstanceStatus::AwaitingDecision { phase: waiting, trigger, approval, .. } = &instance.status {
        if waiting == phase && trigger == gate {
            return approval.status.kind().to_owned();
        }
    }
    let is_gate = instance.phases.iter().any(|p| p.id == phase && p.gates.iter().any(|g| g.id == gate));
    if !is_gate {
        // A trigger's halt that is no longer awaited was decided.
        return "decided".to_owned();
    }
    instance
        .phases
        .iter()
        .find(|p| p.id == phase)
        .and_then(|p| p.gates.iter().find(|g| g.id == gate))
        .map_or_else(|| "unknown".to_owned(), |g| g.status.kind().to_owned())
}

/// Finds the gate a decision is for: `phase/gate`, a gate id, or, with
/// none given, the one gate awaiting a decision.
pub(super) fn find_gate(instance: &Instance, workflow: &Workflow, gate: Option<&str>) -> Result<(usize, usize), Error> {
    let awaiting: Vec<(usize, usize)> = instance
        .phases
        .iter()
        .enumerate()
        .flat_map(|(p, phase)| {
            phase
                .gates
                .iter()
                .enumerate()
                .filter(|(_, g)| matches!(g.status, crate::machine::GateStatus::AwaitingDecision { .. }))
                .map(move |(g, _)| (p, g))
        })
        .collect();
    let name = |&(p, g): &(usize, usize)| format!("{}/{}", workflow.phases[p].id, workflow.phases[p].gates[g].id);
    match gate {
        None => match awaiting.as_slice() {
            [one] => Ok(*one),
            [] => {
                let latest = instance
                    .phases
                    .iter()
                    .flat_map(|phase| {
                        phase
                            .gates
                            .iter()
                            .filter_map(move |g| g.settling_decision().map(|(at, d)| (*at, phase.id.as_str(), g.id.as_str(), d)))
                    })
                    .max_by_key(|(at, ..)| *at);
                Err(Error::Invalid(match latest {
                    Some((at, phase, gate, decision)) => format!(
                        "instance {} has no gate awaiting a decision; gate {phase}/{gate} was already {} by {} at {at}",
                        instance.id,
                        decision.kind.past(),
                        decision.principal
                    ),
                    None => format!("instance {} has no gate awaiting a decision", instance.id),
                }))
            }
            many => Err(Error::Invalid(format!(
                "instance {} has several gates awaiting a decision: {}; name one",
                instance.id,
                many.iter().map(name).collect::<Vec<_>>().join(", ")
            ))),
        },
        Some(spec) => {
            let (phase, gate) = match spec.split_once('/') {
                Some((phase, gate)) => (Some(phase), gate),
                None => (None, spec),
            };
            let matches: Vec<(usize, usize)> = workflow
                .phases
                .iter()
                .enumerate()
                .filter(|(_, plan)| phase.is_none_or(|wanted| plan.id == wanted))
                .flat_map(|(p, plan)| plan.gates.iter().enumerate().filter(|(_, g)| g.id == gate).map(move |(g, _)| (p, g)))
                .collect();
            match matches.as_slice() {
                [one] => Ok(*one),
                [] => {
                    // A trigger's halt is decided by the trigger's name: say
                    // so when that is what was meant, and list both kinds.
                    let gates: Vec<String> =
                        workflow.phases.iter().flat_map(|p| p.gates.iter().map(move |g| format!("{}/{}", p.id, g.id))).collect();
                    let triggers: Vec<String> = workflow
                        .phases
                        .iter()
                        .flat_map(|p| {
                            p.triggers
                                .iter()
                                .filter(|t| matches!(t.action, crate::plan::Action::HaltForApproval { .. }))
                                .map(move |t| format!("{}/{}", p.id, t.id))
                        })
                        .collect();
                    let trigger_named = triggers.iter().any(|t| t == spec || t.rsplit('/').next() == Some(gate));
                    if trigger_named {
                        return Err(Error::Invalid(format!(
                            "trigger `{spec}` is not awaiting a decision: instance {} is {}",
                            instance.id,
                            instance.effective_status()
                        )));
                    }
                    let known = gates.iter().chain(&triggers);
                    let hint = match crate::suggest::closest(spec, known.clone()) {
                        Some(close) => format!("; did you mean `{close}`?"),
                        None => String::new(),
                    };
                    let list = |names: &[String]| if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                    Err(Error::Invalid(format!(
                        "workflow `{}` has no gate or trigger `{spec}`{hint} (gates: {}; triggers that halt for a decision: {})",
                        workflow.name,
                        list(&gates),
                        list(&triggers)
                    )))
                }
                many => {
                    // Prefer the one awaiting a decision.
                    let waiting: Vec<&(usize, usize)> = many.iter().filter(|m| awaiting.contains(m)).collect();
                    match waiting.as_slice() {
                        [one] => Ok(**one),
                        _ => Err(Error::Invalid(format!(
                            "gate `{spec}` is ambiguous: {}; write phase/gate",
                            many.iter().map(name).collect::<Vec<_>>().join(", ")
                        ))),
                    }
                }
            }
        }
    }
}

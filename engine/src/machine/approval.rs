//! The one approval rule, for a gate and for a trigger's halt for approval:
//! who may decide at which escalation level, how a decision or a deadline
//! moves the wait, and where the two kinds of wait differ.
//!
//! The two kinds differ in two places, both visible here: a gate with no
//! `approval` is judged by its phase owner ([`Target::authority`]), while a
//! halt always has one; and [`Outcome::Held`] means different things to the
//! callers: a held gate stops its phase for remediation until tasks are
//! re-run, a held halt keeps waiting with no deadline, because there is no
//! work to redo. Everything else (quorum, self-approval, counting a
//! principal once, escalation, deadlines and their answers) is this module.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::gate::{Decision, DecisionKind, GateState, GateStatus, Roles};
use super::{Event, Instance, RejectKind, Rejected, Timestamp};
use crate::model::{EscalationJoin, OnTimeout};
use crate::plan::{self, Principal, Workflow};

/// What waits for people: a gate, or a trigger's halt for approval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// A quality gate at the end of a phase.
    #[default]
    Gate,
    /// A trigger whose action is `halt_for_approval`.
    Trigger,
}

impl Subject {
    /// The word for it in messages: `gate` or `trigger`.
    pub fn noun(self) -> &'static str {
        match self {
            Subject::Gate => "gate",
            Subject::Trigger => "trigger",
        }
    }
}

/// One thing a decision can be about, with the definition's rule for it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'w> {
    /// A gate or a trigger's halt.
    pub subject: Subject,
    /// The phase declaring it.
    pub phase: &'w str,
    /// The gate's or trigger's id.
    pub id: &'w str,
    /// Its approval rule (a gate may have none: its owner judges missing evidence).
    pub approval: Option<&'w plan::Approval>,
    /// The phase owner.
    pub owner: Option<&'w Principal>,
}

/// Who may decide at one level of a wait, and how many approvals it needs:
/// any one of `alternatives` passes it, each needing every one of its groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Authority {
    /// Ways to pass the wait; one alternative unless a `may` escalation added one.
    pub alternatives: Vec<Vec<Group>>,
    /// The level's deadline.
    pub timeout: Option<std::time::Duration>,
    /// Whether approvals given at the level before keep counting here (a
    /// `must` or `may` escalation) or the level starts afresh (`replace`).
    pub keeps_approvals: bool,
}

/// Approvals needed from one set of approvers: `approvers` with their
/// `required`, or one `required_from` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Who counts toward it.
    pub approvers: Vec<Principal>,
    /// How many distinct principals must approve through it.
    pub required: u32,
}

/// Where one group of a wait stands: who approved through it, how many more it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProgress {
    /// Who counts toward it (`alice`, `role:sre`).
    pub approvers: Vec<String>,
    /// Approvals it needs.
    pub required: u32,
    /// Who approved through it so far.
    pub approved_by: Vec<String>,
}

impl GroupProgress {
    /// Approvals it still needs.
    pub fn missing(&self) -> u32 {
        self.required.saturating_sub(u32::try_from(self.approved_by.len()).unwrap_or(u32::MAX))
    }

    /// `role:qa 1 of 2 (quinn)`, for messages.
    pub fn describe(&self) -> String {
        let who = if self.approved_by.is_empty() { String::new() } else { format!(" ({})", self.approved_by.join(", ")) };
        format!("{} {} of {}{who}", self.approvers.join(" or "), self.approved_by.len().min(self.required as usize), self.required)
    }
}

impl Authority {
    /// Every principal or role that may decide, each once, in the order declared.
    pub fn approvers(&self) -> Vec<Principal> {
        let mut out: Vec<Principal> = Vec::new();
        for approver in self.alternatives.iter().flatten().flat_map(|g| &g.approvers) {
            if !out.contains(approver) {
                out.push(approver.clone());
            }
        }
        out
    }

    /// Approvals needed by the smallest alternative.
    pub fn required(&self) -> u32 {
        self.alternatives.iter().map(|alt| alt.iter().map(|g| g.required).sum()).min().unwrap_or(1)
    }

    /// Where each alternative's groups stand given the approvals so far
    /// (principal, the approver entry it decided through). Each approval
    /// counts once per alternative, toward the first group it belongs to
    /// that still needs one.
    pub fn progress(&self, approvals: &[(String, String)]) -> Vec<Vec<GroupProgress>> {
        self.alternatives
            .iter()
            .map(|alternative| {
                let mut groups: Vec<GroupProgress> = alternative
                    .iter()
                    .map(|g| GroupProgress {
                        approvers: g.approvers.iter().map(ToString::to_string).collect(),
                        required: g.required,
                        approved_by: Vec::new(),
                    })
                    .collect();
                for (principal, via) in approvals {
                    let fits = |g: &GroupProgress| g.approvers.iter().any(|a| a == via);
                    let slot = groups.iter().position(|g| fits(g) && g.missing() > 0).or_else(|| groups.iter().position(fits));
                    if let Some(slot) = slot {
                        groups[slot].approved_by.push(principal.clone());
                    }
                }
                groups
            })
            .collect()
    }

    /// Whether the approvals so far pass the wait.
    pub fn satisfied(&self, approvals: &[(String, String)]) -> bool {
        self.progress(approvals).iter().any(|alternative| alternative.iter().all(|g| g.missing() == 0))
    }

    /// Who is still needed, in words: `1 more from role:business-stakeholder
    /// (role:human-command-group 1 of 1 (alice))`; alternatives joined by "or".
    pub fn still_needed(&self, approvals: &[(String, String)]) -> String {
        let alternatives: Vec<String> = self
            .progress(approvals)
            .iter()
            .map(|groups| {
                let parts: Vec<String> = groups.iter().map(GroupProgress::describe).collect();
                parts.join(" and ")
            })
            .collect();
        alternatives.join(", or ")
    }
}

/// Why a principal may not take a decision, before anything is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The principal is not among the level's approvers (directly or through a role).
    NotAllowed(String),
    /// The rule requires a comment and none was given.
    CommentRequired(String),
}

/// Where a wait stands after a decision or a deadline.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The quorum was reached (or the deadline's answer is approve): these
    /// principals approved.
    Approved(Vec<String>),
    /// Rejected, by a person or a deadline: why.
    Rejected(String),
    /// Put on hold by this principal: a gate stops for remediation, a
    /// halt waits on with no deadline.
    Held(String),
    /// Still waiting (more approvals needed, escalated, or a halt on hold):
    /// the new `AwaitingDecision` status.
    Waiting(GateStatus),
}

impl<'w> Target<'w> {
    /// Gate `g` of phase `p`.
    pub fn gate(workflow: &'w Workflow, p: usize, g: usize) -> Self {
        Self::gate_of(&workflow.phases[p], g)
    }

    /// Gate `g` of a phase.
    pub fn gate_of(phase: &'w plan::Phase, g: usize) -> Self {
        let gate = &phase.gates[g];
        Target { subject: Subject::Gate, phase: &phase.id, id: &gate.id, approval: gate.approval.as_ref(), owner: phase.owner.as_ref() }
    }

    /// Trigger `k` of phase `p`, if its action halts for approval.
    pub fn halt(workflow: &'w Workflow, p: usize, k: usize) -> Option<Self> {
        let phase = &workflow.phases[p];
        let trigger = &phase.triggers[k];
        match &trigger.action {
            plan::Action::HaltForApproval { approval, .. } => Some(Target {
                subject: Subject::Trigger,
                phase: &phase.id,
                id: &trigger.id,
                approval: Some(approval),
                owner: phase.owner.as_ref(),
            }),
            plan::Action::Rollback { .. } | plan::Action::Goto { .. } | plan::Action::Notify(_) | plan::Action::Run { .. } => None,
        }
    }

    /// The trigger `phase/trigger`, if it exists and halts for approval.
    pub fn halt_named(workflow: &'w Workflow, phase: &str, trigger: &str) -> Option<Self> {
        let p = workflow.phase_index(phase)?;
        let k = workflow.phases[p].triggers.iter().position(|t| t.id == trigger)?;
        Self::halt(workflow, p, k)
    }

    /// `gate launch/go` or `trigger launch/p1`, for messages.
    pub fn name(&self) -> String {
        format!("{} {}/{}", self.subject.noun(), self.phase, self.id)
    }

    /// The authority at `level`: the approval's own groups at 0, then each
    /// escalation level as its `join` says (instead of, as well as, or as an
    /// alternative to the level before); with no approval, the phase owner
    /// at level 0.
    pub fn authority(&self, level: usize) -> Option<Authority> {
        match (self.approval, level) {
            (Some(approval), 0) => Some(Authority {
                alternatives: vec![groups(&approval.approvers, approval.required, &approval.required_from)],
                timeout: approval.timeout,
                keeps_approvals: false,
            }),
            (Some(approval), n) => {
                let escalation = approval.escalation.get(n - 1)?;
                let before = self.authority(n - 1)?;
                let own = groups(&escalation.approvers, escalation.required, &escalation.required_from);
                let alternatives = match escalation.join {
                    EscalationJoin::Replace => vec![own],
                    EscalationJoin::Must => before
                        .alternatives
                        .into_iter()
                        .map(|mut alternative| {
                            alternative.extend(own.iter().cloned());
                            alternative
                        })
                        .collect(),
                    EscalationJoin::May => before.alternatives.into_iter().chain(std::iter::once(own)).collect(),
                };
                Some(Authority { alternatives, timeout: escalation.timeout, keeps_approvals: escalation.join != EscalationJoin::Replace })
            }
            (None, 0) => self.owner.map(|o| Authority {
                alternatives: vec![vec![Group { approvers: vec![o.clone()], required: 1 }]],
                timeout: None,
                keeps_approvals: false,
            }),
            (None, _) => None,
        }
    }

    /// Whether the definition asks for a notification when the wait moves.
    pub fn notifies(&self) -> bool {
        self.approval.is_some_and(|a| a.notify.is_some())
    }

    /// A fresh wait at level 0, starting at `at`.
    pub fn open(&self, at: Timestamp) -> GateStatus {
        GateStatus::AwaitingDecision {
            since: at,
            level: 0,
            deadline: self.authority(0).and_then(|a| a.timeout).map(|t| at.after(t)),
            approvals: Vec::new(),
        }
    }

    /// The one authorization check: may `principal` decide at `level`? With
    /// roles from the configuration (membership is not in the log), so the
    /// runtime calls it before anything is recorded. Returns the approver
    /// entry that allows it (`alice` or `role:sre`): of the groups the
    /// principal belongs to, the first that still needs an approval given
    /// `approvals` so far (principal, entry), so that a person in two roles
    /// counts where they are needed.
    pub fn authorize(
        &self,
        level: usize,
        roles: &Roles,
        principal: &str,
        comment: &str,
        approvals: &[(String, String)],
    ) -> Result<String, Refusal> {
        let authority = self.authority(level);
        let candidates: Vec<(String, bool)> = authority
            .iter()
            .flat_map(|authority| authority.alternatives.iter().zip(authority.progress(approvals)))
            .flat_map(|(alternative, progress)| alternative.iter().zip(progress))
            .filter_map(|(group, progress)| roles.allows(&group.approvers, principal).map(|via| (via, progress.missing() > 0)))
            .collect();
        let chosen = candidates.iter().find(|(_, needed)| *needed).or(candidates.first()).map(|(via, _)| via.clone());
        let Some(via) = chosen else {
            let who: Vec<String> = authority.map(|a| a.approvers()).unwrap_or_default().iter().map(ToString::to_string).collect();
            return Err(Refusal::NotAllowed(format!(
                "{principal} may not decide {} at level {level}; allowed: {}",
                self.name(),
                if who.is_empty() { "nobody".to_owned() } else { who.join(", ") }
            )));
        };
        if self.approval.is_some_and(|a| a.comment_required) && comment.trim().is_empty() {
            return Err(Refusal::CommentRequired(format!("{} requires a comment with every decision (--comment)", self.name())));
        }
        Ok(via)
    }

    /// The inputs a decision records: for an approval, each declared input
    /// from `given` (typed and checked against its options) or its default;
    /// other decisions carry none. Refuses an unknown input, a missing
    /// required one, and inputs on anything but an approval.
    pub fn inputs_for(&self, kind: DecisionKind, given: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        let declared = self.approval.map(|a| &a.inputs);
        if kind != DecisionKind::Approve {
            return match given.keys().next() {
                Some(name) => Err(format!("input `{name}`: inputs go with an approval; {} carries only a comment", kind.verb())),
                None => Ok(Map::new()),
            };
        }
        let names = || {
            declared
                .map(|d| d.keys().cloned().collect::<Vec<_>>().join(", "))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "none".to_owned())
        };
        if let Some(unknown) = given.keys().find(|k| declared.is_none_or(|d| !d.contains_key(*k))) {
            return Err(format!("{} declares no input `{unknown}` (it has: {})", self.name(), names()));
        }
        let mut out = Map::new();
        for (name, input) in declared.into_iter().flatten() {
            let value = match (given.get(name), &input.var.default) {
                (Some(value), _) => input.accept(name, value)?,
                (None, Some(default)) => default.clone(),
                (None, None) => {
                    return Err(format!("{} needs input {} with an approval: --input {name}=VALUE", self.name(), input.describe(name)))
                }
            };
            out.insert(name.clone(), value);
        }
        Ok(out)
    }

    /// Applies a person's decision to a wait. Checks what the log alone can
    /// prove: the level matches, an approver is not the starter when
    /// self-approval is off and counts once, and an escalation has somewhere
    /// to go.
    pub(crate) fn decide(
        &self,
        event: &Event,
        instance: &Instance,
        state: &GateState,
        decision: &Decision,
        at: Timestamp,
    ) -> Result<Outcome, Rejected> {
        let Open { since, level, deadline, approvals } = awaiting(self, state, event)?;
        let subject = format!("{} {}", self.subject.noun(), self.id);
        if decision.level != level {
            return Err(Rejected::new(
                event,
                format!("{subject} is at escalation level {level}"),
                format!("the decision was made for level {}", decision.level),
            ));
        }
        let Some(authority) = self.authority(level) else {
            return Err(Rejected::new(event, format!("{subject} has no level {level}"), "unknown escalation level"));
        };
        let next_level = self.authority(level + 1);
        let mut approvals = approvals.to_vec();
        match self.inputs_for(decision.kind, &decision.inputs) {
            Ok(inputs) if inputs == decision.inputs => {}
            Ok(_) => {
                return Err(Rejected::new(event, format!("{subject} declares other inputs"), "a decision records every declared input"))
            }
            Err(problem) => return Err(Rejected::new(event, problem, "a decision carries the inputs its gate declares")),
        }
        Ok(match decision.kind {
            DecisionKind::Approve => {
                let self_approval = self.approval.is_none_or(|a| a.self_approval);
                if !self_approval && decision.principal == instance.started_by {
                    return Err(Rejected::of(
                        RejectKind::NotAllowed,
                        event,
                        format!("{} started instance {}", decision.principal, instance.id),
                        format!("{subject} does not allow self-approval; another approver must decide"),
                    ));
                }
                if approvals.contains(&decision.principal) {
                    return Err(Rejected::of(
                        RejectKind::NotAllowed,
                        event,
                        format!("{} already approved {subject}", decision.principal),
                        "a principal counts once toward the quorum",
                    ));
                }
                let mut with_via = state.approvals_via();
                with_via.push((decision.principal.clone(), decision.via.clone()));
                approvals.push(decision.principal.clone());
                if authority.satisfied(&with_via) {
                    Outcome::Approved(approvals)
                } else {
                    Outcome::Waiting(GateStatus::AwaitingDecision { since, level, deadline, approvals })
                }
            }
            DecisionKind::Reject => Outcome::Rejected(if decision.comment.is_empty() {
                format!("rejected by {}", decision.principal)
            } else {
                format!("rejected by {}: {}", decision.principal, decision.comment)
            }),
            DecisionKind::Hold => Outcome::Held(decision.principal.clone()),
            DecisionKind::Escalate => match next_level {
                Some(next) => Outcome::Waiting(escalated(&next, level, at, &approvals)),
                None => {
                    return Err(Rejected::new(
                        event,
                        format!("{subject} is at its last escalation level ({level})"),
                        "there is no level to escalate to",
                    ));
                }
            },
        })
    }

    /// Applies a deadline's answer (`on_timeout`) at `level`. Returns the
    /// outcome and the answer as a decision by `phasegate`, which the wait
    /// records like any other.
    pub(crate) fn time_out(
        &self,
        event: &Event,
        state: &GateState,
        level: usize,
        action: OnTimeout,
        at: Timestamp,
    ) -> Result<(Outcome, Decision), Rejected> {
        let Open { level: current, deadline, approvals, .. } = awaiting(self, state, event)?;
        let subject = format!("{} {}", self.subject.noun(), self.id);
        if current != level || deadline.is_none_or(|d| d > at) {
            return Err(Rejected::new(
                event,
                format!("{subject} is at level {current}, deadline {deadline:?}"),
                "the deadline has not passed at that level",
            ));
        }
        let declared = self.approval.and_then(|a| a.on_timeout_at(level));
        if declared != Some(action) {
            return Err(Rejected::new(event, format!("{subject} declares on_timeout {declared:?}"), "the action must be the declared one"));
        }
        let (outcome, kind) = match action {
            OnTimeout::Approve => (Outcome::Approved(approvals.to_vec()), DecisionKind::Approve),
            OnTimeout::Reject => {
                (Outcome::Rejected(format!("no decision before the deadline of level {level}; on_timeout = reject")), DecisionKind::Reject)
            }
            OnTimeout::Hold => (Outcome::Held("phasegate".to_owned()), DecisionKind::Hold),
            OnTimeout::Escalate => match self.authority(level + 1) {
                Some(next) => (Outcome::Waiting(escalated(&next, level, at, approvals)), DecisionKind::Escalate),
                None => {
                    (Outcome::Rejected(format!("no decision by the deadline of the last escalation level ({level})")), DecisionKind::Reject)
                }
            },
        };
        let answer = Decision {
            kind,
            principal: "phasegate".to_owned(),
            auth: super::Authentication::Engine,
            via: String::new(),
            comment: format!("no decision before the deadline of level {level}; on_timeout = {}", action.name()),
            request_id: String::new(),
            level,
            seen: Default::default(),
            // A deadline that approves takes every input's default (validation
            // refuses on_timeout = "approve" with a required input).
            inputs: match kind {
                DecisionKind::Approve => self.inputs_for(kind, &Map::new()).unwrap_or_default(),
                DecisionKind::Reject | DecisionKind::Hold | DecisionKind::Escalate => Map::new(),
            },
        };
        Ok((outcome, answer))
    }
}

/// The groups of one level: `approvers` with their `required` (if any are
/// listed), then each `required_from` entry.
fn groups(approvers: &[Principal], required: u32, required_from: &[(Principal, u32)]) -> Vec<Group> {
    let listed = (!approvers.is_empty()).then(|| Group { approvers: approvers.to_vec(), required });
    listed.into_iter().chain(required_from.iter().map(|(who, n)| Group { approvers: vec![who.clone()], required: *n })).collect()
}

/// The wait at the next level, starting now; approvals so far carry over
/// when the level joins rather than replaces the one before.
fn escalated(next: &Authority, level: usize, at: Timestamp, approvals: &[String]) -> GateStatus {
    let approvals = if next.keeps_approvals { approvals.to_vec() } else { Vec::new() };
    GateStatus::AwaitingDecision { since: at, level: level + 1, deadline: next.timeout.map(|t| at.after(t)), approvals }
}

/// A wait's fields while it awaits a decision.
struct Open<'s> {
    since: Timestamp,
    level: usize,
    deadline: Option<Timestamp>,
    approvals: &'s [String],
}

/// The fields of a wait awaiting a decision, or a rejection saying who
/// already decided it.
fn awaiting<'s>(target: &Target<'_>, state: &'s GateState, event: &Event) -> Result<Open<'s>, Rejected> {
    let subject = format!("{} {}", target.subject.noun(), target.id);
    match &state.status {
        GateStatus::AwaitingDecision { since, level, deadline, approvals } => {
            Ok(Open { since: *since, level: *level, deadline: *deadline, approvals })
        }
        GateStatus::Pending => Err(Rejected::new(event, format!("{subject} has not been evaluated yet"), "it is not awaiting a decision")),
        GateStatus::OnHold { .. } | GateStatus::Passed { .. } | GateStatus::Failed { .. } => {
            let decided = match state.settling_decision() {
                Some((at, decision)) => format!("{subject} was already {} by {} at {at}", decision.kind.past(), decision.principal),
                None => format!("{subject} is already {}", state.status.kind()),
            };
            Err(Rejected::new(event, decided, "it is not awaiting a decision"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Format, Source};
    use crate::plan::AgentNames;

    const TWO_KINDS: &str = r#"
name = "waits"
[signals.incident]
description = "an incident"
[[phases]]
id = "ship"
owner = "olga"
[[phases.tasks]]
id = "deploy"
agent = "noop"
[[phases.gates]]
id = "judged-by-owner"
[[phases.gates.criteria]]
id = "c"
label = "c"
must = "tasks.deploy.output.ok == true"
[[phases.gates]]
id = "go"
[phases.gates.approval]
approvers = ["role:qa"]
comment_required = true
[[phases.gates.approval.escalation]]
approvers = ["cto"]
[[phases.triggers]]
id = "p1"
on = "signal:incident"
action = "halt_for_approval"
approval = { approvers = ["role:sre"] }
then = "rollback"
[[phases.triggers]]
id = "p0"
on = "signal:incident"
action = "rollback"
"#;

    fn workflow() -> Workflow {
        crate::plan::load_source(&Source::from_text(TWO_KINDS, Format::Toml), &AgentNames::builtin()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn roles() -> Roles {
        Roles([("qa".to_owned(), ["quinn".to_owned()].into()), ("sre".to_owned(), ["sam".to_owned()].into())].into())
    }

    #[test]
    fn a_gate_without_approval_is_judged_by_its_owner_and_a_halt_by_its_approvers() {
        let workflow = workflow();
        let owned = Target::gate(&workflow, 0, 0);
        assert_eq!(owned.authority(0).map(|a| a.approvers()), Some(vec![Principal::User("olga".into())]));
        assert_eq!(owned.authority(1), None, "an owner has no escalation level");
        let gate = Target::gate(&workflow, 0, 1);
        assert_eq!(gate.authority(1).map(|a| a.approvers()), Some(vec![Principal::User("cto".into())]));
        let halt = Target::halt_named(&workflow, "ship", "p1").expect("a halt");
        assert_eq!((halt.subject, halt.name()), (Subject::Trigger, "trigger ship/p1".to_owned()));
        assert!(Target::halt_named(&workflow, "ship", "p0").is_none(), "a rollback trigger does not wait for anyone");
    }

    #[test]
    fn authorize_is_the_one_check_of_who_may_decide_and_the_comment_rule() {
        let workflow = workflow();
        let gate = Target::gate(&workflow, 0, 1);
        assert_eq!(gate.authorize(0, &roles(), "quinn", "looks good", &[]), Ok("role:qa".to_owned()));
        assert_eq!(
            gate.authorize(0, &roles(), "sam", "looks good", &[]),
            Err(Refusal::NotAllowed("sam may not decide gate ship/go at level 0; allowed: role:qa".to_owned()))
        );
        assert!(matches!(gate.authorize(0, &roles(), "quinn", "  ", &[]), Err(Refusal::CommentRequired(_))));
        assert_eq!(gate.authorize(1, &roles(), "cto", "ok", &[]), Ok("cto".to_owned()), "the escalation level's approver");
        let halt = Target::halt_named(&workflow, "ship", "p1").expect("a halt");
        assert_eq!(halt.authorize(0, &roles(), "sam", "", &[]), Ok("role:sre".to_owned()), "no comment rule on the halt");
        assert!(matches!(halt.authorize(0, &roles(), "quinn", "", &[]), Err(Refusal::NotAllowed(_))));
    }

    #[test]
    fn hold_is_one_outcome_and_escalation_past_the_last_level_is_refused() {
        let workflow = workflow();
        let gate = Target::gate(&workflow, 0, 1);
        let mut state = GateState::new("go");
        state.status = gate.open(Timestamp(5));
        let instance = Instance::new("i", &workflow, "h", Default::default(), "starter", Timestamp(1));
        let event = Event::InstanceCompleted;
        let decision = |kind, level| Decision {
            kind,
            principal: "quinn".into(),
            auth: crate::machine::Authentication::Local,
            via: "role:qa".into(),
            comment: "c".into(),
            request_id: String::new(),
            level,
            seen: Default::default(),
            inputs: Default::default(),
        };
        let held = gate.decide(&event, &instance, &state, &decision(DecisionKind::Hold, 0), Timestamp(9));
        assert_eq!(held, Ok(Outcome::Held("quinn".into())));
        let Ok(Outcome::Waiting(escalated)) = gate.decide(&event, &instance, &state, &decision(DecisionKind::Escalate, 0), Timestamp(9))
        else {
            panic!("escalates to level 1");
        };
        assert!(matches!(escalated, GateStatus::AwaitingDecision { level: 1, since: Timestamp(9), .. }));
        state.status = escalated;
        let last = gate.decide(&event, &instance, &state, &decision(DecisionKind::Escalate, 1), Timestamp(10));
        assert!(last.is_err_and(|r| r.reason.contains("no level to escalate to")));
        let wrong_level = gate.decide(&event, &instance, &state, &decision(DecisionKind::Approve, 0), Timestamp(10));
        assert!(wrong_level.is_err_and(|r| r.state.contains("escalation level 1")));
    }

    const BY_ROLE: &str = r#"
name = "by-role"
[[phases]]
id = "go"
[[phases.gates]]
id = "go-live"
[phases.gates.approval]
required_from = { "role:command" = 1, "role:business" = 1 }
timeout = "1h"
on_timeout = "escalate"
[[phases.gates.approval.escalation]]
approvers = ["role:board"]
join = "must"
timeout = "1h"
[[phases.gates.approval.escalation]]
approvers = ["cto"]
join = "may"
"#;

    fn by_role() -> (Workflow, Roles) {
        let workflow =
            crate::plan::load_source(&Source::from_text(BY_ROLE, Format::Toml), &AgentNames::builtin()).unwrap_or_else(|e| panic!("{e}"));
        let roles = Roles(
            [
                ("command".to_owned(), ["cara".to_owned(), "cole".to_owned(), "dual".to_owned()].into()),
                ("business".to_owned(), ["bea".to_owned(), "dual".to_owned()].into()),
                ("board".to_owned(), ["bo".to_owned()].into()),
            ]
            .into(),
        );
        (workflow, roles)
    }

    /// Decides as `who` through the one rule (authorize, then decide),
    /// recording the decision on `state` like the gate handler does.
    fn approve(target: &Target<'_>, roles: &Roles, instance: &Instance, state: &mut GateState, who: &str) -> Result<Outcome, String> {
        let GateStatus::AwaitingDecision { level, .. } = state.status else { return Err("not waiting".into()) };
        let via = target.authorize(level, roles, who, "", &state.approvals_via()).map_err(|r| format!("{r:?}"))?;
        let decision = Decision {
            kind: DecisionKind::Approve,
            principal: who.into(),
            auth: crate::machine::Authentication::Local,
            via,
            comment: String::new(),
            request_id: String::new(),
            level,
            seen: Default::default(),
            inputs: Default::default(),
        };
        let outcome = target.decide(&Event::InstanceCompleted, instance, state, &decision, Timestamp(10)).map_err(|r| r.to_string())?;
        state.decisions.push((Timestamp(10), decision));
        if let Outcome::Waiting(status) = &outcome {
            state.status = status.clone();
        }
        Ok(outcome)
    }

    #[test]
    fn required_from_counts_each_role_separately_and_a_principal_once() {
        let (workflow, roles) = by_role();
        let gate = Target::gate(&workflow, 0, 0);
        let instance = Instance::new("i", &workflow, "h", Default::default(), "starter", Timestamp(1));
        let open = || {
            let mut state = GateState::new("go-live");
            state.status = gate.open(Timestamp(5));
            state
        };

        // Two members of one group do not pass a gate that needs two groups.
        let mut state = open();
        assert!(matches!(approve(&gate, &roles, &instance, &mut state, "cara"), Ok(Outcome::Waiting(_))));
        assert!(matches!(approve(&gate, &roles, &instance, &mut state, "cole"), Ok(Outcome::Waiting(_))), "the same role twice");
        let needs = gate.authority(0).expect("level 0").still_needed(&state.approvals_via());
        assert_eq!(needs, "role:business 0 of 1 and role:command 1 of 1 (cara, cole)");
        assert!(approve(&gate, &roles, &instance, &mut state, "cara").is_err_and(|e| e.contains("counts once")));
        assert!(matches!(approve(&gate, &roles, &instance, &mut state, "bea"), Ok(Outcome::Approved(_))), "one of each role");

        // A person in both roles counts once, toward the role still short.
        let mut state = open();
        assert!(matches!(approve(&gate, &roles, &instance, &mut state, "cara"), Ok(Outcome::Waiting(_))));
        assert_eq!(state.approvals_via().last().map(|(_, via)| via.as_str()), Some("role:command"));
        assert!(matches!(approve(&gate, &roles, &instance, &mut state, "dual"), Ok(Outcome::Approved(_))), "dual fills business");
        let mut state = open();
        assert!(matches!(approve(&gate, &roles, &instance, &mut state, "dual"), Ok(Outcome::Waiting(_))), "dual alone is one approval");
        assert!(approve(&gate, &roles, &instance, &mut state, "bo").is_err_and(|e| e.contains("allowed: role:business, role:command")));
    }

    #[test]
    fn escalation_adds_approvers_as_the_definition_says() {
        let (workflow, roles) = by_role();
        let gate = Target::gate(&workflow, 0, 0);
        let instance = Instance::new("i", &workflow, "h", Default::default(), "starter", Timestamp(1));
        let mut state = GateState::new("go-live");
        state.status = gate.open(Timestamp(5));
        assert!(matches!(approve(&gate, &roles, &instance, &mut state, "cara"), Ok(Outcome::Waiting(_))));
        // The deadline escalates to the board, which must approve as well: cara's approval still counts.
        let (Outcome::Waiting(level1), _) =
            gate.time_out(&Event::InstanceCompleted, &state, 0, OnTimeout::Escalate, Timestamp(3_600_005)).expect("escalates")
        else {
            panic!("escalated");
        };
        assert!(matches!(&level1, GateStatus::AwaitingDecision { level: 1, approvals, .. } if approvals == &["cara".to_owned()]));
        state.status = level1;
        let one = gate.authority(1).expect("level 1");
        assert_eq!(one.still_needed(&state.approvals_via()), "role:business 0 of 1 and role:command 1 of 1 (cara) and role:board 0 of 1");
        assert!(
            matches!(approve(&gate, &roles, &instance, &mut state, "bo"), Ok(Outcome::Waiting(_))),
            "the board does not replace the others"
        );
        assert!(matches!(approve(&gate, &roles, &instance, &mut state, "bea"), Ok(Outcome::Approved(_))));

        // At level 2 the CTO may pass it alone, and the groups still can.
        let two = gate.authority(2).expect("level 2");
        assert_eq!(two.alternatives.len(), 2);
        assert!(two.satisfied(&[("cto".into(), "cto".into())]));
        assert!(
            !two.satisfied(&[("cara".into(), "role:command".into()), ("bea".into(), "role:business".into())]),
            "the board is still needed"
        );
    }
}

//! Gates: evaluation against the evidence, people's decisions, deadlines,
//! and the baselines a passed gate keeps.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::approval::{Outcome, Subject, Target};
use super::super::gate::{Band, DecisionKind, GateStatus};
use super::super::guards::{
    gate_index, phase_index, phase_tasks_done, request_write, require, require_phase_running, require_running, settle_phase, Cx, Effect,
    Handled,
};
use super::super::{payload, Baseline, Instance, InstanceStatus, PhaseStatus, Rejected, TaskStatus, Timestamp};
use super::trigger;
use crate::plan::{TriggerOn, Workflow};

/// A notification effect when the gate's approval (or the workflow) asks for one.
fn notify(workflow: &Workflow, p: usize, g: usize, what: &str, status: &GateStatus) -> Vec<Effect> {
    let relevant = matches!(
        status,
        GateStatus::AwaitingDecision { .. } | GateStatus::OnHold { .. } | GateStatus::Failed { .. } | GateStatus::Passed { .. }
    );
    let target = Target::gate(workflow, p, g);
    if target.approval.is_some() && (target.notifies() || workflow.notify.is_some()) && relevant {
        vec![Effect::Notify { phase: p, gate: g, what: what.to_owned() }]
    } else {
        Vec::new()
    }
}

/// The gate status an approval outcome means.
fn status_of(outcome: Outcome, at: Timestamp) -> GateStatus {
    match outcome {
        Outcome::Approved(by) => GateStatus::Passed { at, by },
        Outcome::Rejected(reason) => GateStatus::Failed { at, reason },
        Outcome::Held(by) => GateStatus::OnHold { since: at, by },
        Outcome::Waiting(status) => status,
    }
}

/// After a gate's status changed: the phase reflects it; a failed gate
/// queues the phase's `gate_failed` triggers; a passed gate keeps the
/// evidence its criteria compare with as its baseline for the next cycle.
/// Returns the baseline to index, if the gate kept one.
fn settled(instance: &mut Instance, workflow: &Workflow, p: usize, g: usize, at: Timestamp) -> Vec<Effect> {
    settle_phase(&mut instance.phases[p], at);
    let mut writes = Vec::new();
    if matches!(instance.phases[p].gates[g].status, GateStatus::Passed { .. }) {
        writes.extend(record_baseline(instance, workflow, p, g, at));
    }
    if let GateStatus::Failed { reason, .. } = &instance.phases[p].gates[g].status {
        let cause = format!("gate {} failed: {reason}", instance.phases[p].gates[g].id);
        trigger::queue(
            instance,
            workflow,
            trigger::Scope::Phase(p),
            |on| matches!(on, TriggerOn::GateFailed(which) if which.is_none_or(|w| w == g)),
            &cause,
        );
    }
    writes
}

/// `GateEvaluated`: the criteria's results decide the gate, or open a wait
/// for people when it has an approval, evidence is missing or the score
/// fell in the warning band.
pub(crate) fn evaluated(cx: Cx<'_>, e: &payload::GateEvaluated) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let (phase, gate, evaluation) = (&e.phase, &e.gate, &e.evaluation);
    require_running(instance, event)?;
    let p = phase_index(workflow, event, phase)?;
    require_phase_running(instance, event, p)?;
    let g = gate_index(workflow, event, p, gate)?;
    if !phase_tasks_done(instance, workflow, p) {
        return Err(Rejected::new(
            event,
            format!("phase {phase} still has tasks to finish"),
            "gates are evaluated when the tasks are done",
        ));
    }
    let state = &instance.phases[p].gates[g];
    match &state.status {
        GateStatus::Pending => {}
        GateStatus::AwaitingDecision { .. } | GateStatus::OnHold { .. } | GateStatus::Passed { .. } | GateStatus::Failed { .. } => {
            return Err(Rejected::new(event, format!("gate {gate} is {}", state.status.kind()), "only a pending gate is evaluated"));
        }
    }
    if let Some(before) = instance.phases[p].gates[..g].iter().find(|x| !matches!(x.status, GateStatus::Passed { .. })) {
        return Err(Rejected::new(event, format!("gate {} is {}", before.id, before.status.kind()), "gates are evaluated in order"));
    }
    let target = Target::gate(workflow, p, g);
    let band = evaluation.score.map(|score| score.band);
    let status = if let Some(failed) = evaluation.failed_must() {
        let detail = if failed.detail.is_empty() { String::new() } else { format!(": {}", failed.detail) };
        GateStatus::Failed { at, reason: format!("must criterion {} ({}) failed{detail}", failed.id, failed.label) }
    } else if let (Some(Band::Fail), Some(score)) = (band, evaluation.score) {
        GateStatus::Failed { at, reason: format!("score {}% is below the warning band ({}%)", score.percent, score.bands.warning) }
    } else if target.approval.is_some() || evaluation.inconclusive() || band == Some(Band::Warning) {
        match target.authority(0) {
            Some(_) => target.open(at),
            // Evidence is missing and nobody is named to judge it: fail
            // closed rather than pass silently.
            None => GateStatus::Failed {
                at,
                reason: format!(
                    "evidence is missing and neither gate {gate} nor phase {phase} names anyone to judge it (add an approval or a phase owner)"
                ),
            },
        }
    } else {
        GateStatus::Passed { at, by: Vec::new() }
    };
    let effects = if matches!(status, GateStatus::AwaitingDecision { .. }) {
        notify(workflow, p, g, "awaiting_decision", &status)
    } else {
        Vec::new()
    };
    let state = &mut instance.phases[p].gates[g];
    state.evaluation = Some(evaluation.clone());
    state.status = status;
    let mut effects = effects;
    effects.extend(settled(instance, workflow, p, g, at));
    Ok(effects)
}

/// `DecisionRecorded`: a person's decision at a gate, by the one approval rule.
pub(crate) fn decided(cx: Cx<'_>, e: &payload::DecisionRecorded) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    // Holding a failed gate is the way back from a failure, so it is taken
    // on a failed instance too (hold_failed checks it).
    if e.decision.kind == DecisionKind::Hold {
        if let Ok((p, g)) = phase_index(workflow, event, &e.phase).and_then(|p| gate_index(workflow, event, p, &e.gate).map(|g| (p, g))) {
            if matches!(instance.phases[p].gates[g].status, GateStatus::Failed { .. }) {
                return hold_failed(Cx { instance, workflow, event, at }, p, g, e);
            }
        }
    }
    match &instance.status {
        InstanceStatus::Running | InstanceStatus::Halted { .. } | InstanceStatus::AwaitingDecision { .. } => {}
        InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. } => {
            return Err(Rejected::new(
                event,
                format!("instance {} is {}", instance.id, instance.status.kind()),
                "decisions are taken on running, halted or waiting instances",
            ));
        }
    }
    let p = phase_index(workflow, event, &e.phase)?;
    let g = gate_index(workflow, event, p, &e.gate)?;
    let outcome = Target::gate(workflow, p, g).decide(event, instance, &instance.phases[p].gates[g], &e.decision, at)?;
    let status = status_of(outcome, at);
    let mut effects = if e.decision.kind == DecisionKind::Escalate { notify(workflow, p, g, "escalated", &status) } else { Vec::new() };
    effects.extend(request_write(Subject::Gate, &e.phase, &e.gate, &e.decision));
    let state = &mut instance.phases[p].gates[g];
    state.decisions.push((at, e.decision.clone()));
    state.status = status;
    let mut effects = effects;
    effects.extend(settled(instance, workflow, p, g, at));
    Ok(effects)
}

/// `hold` on a gate whose must criterion failed (or that was rejected): its
/// owner parks it for remediation instead of leaving the release failed. The
/// phase goes on hold and the instance runs again (attempts the failure
/// cancelled elsewhere start over); `retry ID TASK` or `retry ID --phase P`
/// re-runs the work and the gate is evaluated again.
fn hold_failed(cx: Cx<'_>, p: usize, g: usize, e: &payload::DecisionRecorded) -> Handled {
    let Cx { instance, event, at, .. } = cx;
    let gate = &instance.phases[p].gates[g];
    if e.decision.level != 0 {
        return Err(Rejected::new(
            event,
            format!("gate {} failed at level 0", gate.id),
            "a failed gate is held at level 0, by its own approvers or owner",
        ));
    }
    if !matches!(instance.phases[p].status, PhaseStatus::Failed { .. }) {
        return Err(Rejected::new(
            event,
            format!("phase {} is {}", instance.phases[p].id, instance.phases[p].status.kind()),
            "a failed gate is held while its phase has failed",
        ));
    }
    if let Some(other) = instance.phases.iter().enumerate().find(|(q, phase)| *q != p && matches!(phase.status, PhaseStatus::Failed { .. }))
    {
        return Err(Rejected::new(
            event,
            format!("phase {} failed too", other.1.id),
            "hold or retry one failed phase at a time: the instance cannot run while another phase has failed",
        ));
    }
    match &instance.status {
        InstanceStatus::Failed { .. } | InstanceStatus::Running | InstanceStatus::Halted { .. } => {}
        InstanceStatus::Completed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::AwaitingDecision { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. } => {
            return Err(Rejected::new(
                event,
                format!("instance {} is {}", instance.id, instance.status.kind()),
                "a failed gate is held while the release can still go on",
            ));
        }
    }
    let state = &mut instance.phases[p].gates[g];
    state.decisions.push((at, e.decision.clone()));
    state.status = GateStatus::OnHold { since: at, by: e.decision.principal.clone() };
    instance.phases[p].status = PhaseStatus::OnHold { since: at };
    if matches!(instance.status, InstanceStatus::Failed { .. }) {
        revive(instance);
    }
    Ok(request_write(Subject::Gate, &e.phase, &e.gate, &e.decision).into_iter().collect())
}

/// A failed instance runs again: the attempts its failure cancelled in
/// phases still running start over.
pub(crate) fn revive(instance: &mut Instance) {
    for phase in instance.phases.iter_mut().filter(|phase| matches!(phase.status, PhaseStatus::Running { .. })) {
        for task in phase.tasks.iter_mut().filter(|task| matches!(task.status, TaskStatus::Cancelled { .. })) {
            task.budget_from = task.attempts;
            task.status = TaskStatus::Pending;
        }
    }
    instance.status = InstanceStatus::Running;
}

/// `GateTimedOut`: the level's deadline passed; the declared `on_timeout`
/// answers, recorded as a decision by `phasegate`.
pub(crate) fn timed_out(cx: Cx<'_>, e: &payload::GateTimedOut) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    require_running(instance, event)?;
    let p = phase_index(workflow, event, &e.phase)?;
    let g = gate_index(workflow, event, p, &e.gate)?;
    let (outcome, answer) = Target::gate(workflow, p, g).time_out(event, &instance.phases[p].gates[g], e.level, e.action, at)?;
    let status = status_of(outcome, at);
    let effects = notify(workflow, p, g, &format!("timed_out: {}", e.action.name()), &status);
    let state = &mut instance.phases[p].gates[g];
    state.decisions.push((at, answer));
    state.status = status;
    let mut effects = effects;
    effects.extend(settled(instance, workflow, p, g, at));
    Ok(effects)
}

/// Keeps what a passed gate's criteria read under `baseline.` as the
/// gate's baseline for its next evaluation (this instance's next cycle; the
/// runtime indexes it for later instances of the workflow).
fn record_baseline(instance: &mut Instance, workflow: &Workflow, p: usize, g: usize, at: Timestamp) -> Option<Effect> {
    let plan = &workflow.phases[p].gates[g];
    if plan.baseline_paths.is_empty() {
        return None;
    }
    let evidence = Value::Object(super::super::evidence(instance));
    let mut snapshot = Value::Object(Map::new());
    for path in &plan.baseline_paths {
        let mut current = Some(&evidence);
        for segment in path {
            current = current.and_then(|v| v.get(segment));
        }
        let Some(value) = current else { continue };
        let mut slot = &mut snapshot;
        for segment in &path[..path.len() - 1] {
            if !slot.get(segment).is_some_and(Value::is_object) {
                slot[segment.as_str()] = Value::Object(Map::new());
            }
            slot = &mut slot[segment.as_str()];
        }
        slot[path[path.len() - 1].as_str()] = value.clone();
    }
    let key = format!("{}/{}", workflow.phases[p].id, plan.id);
    let baseline = Baseline { instance: instance.id.clone(), at, evidence: snapshot };
    instance.baselines.insert(key.clone(), baseline.clone());
    Some(Effect::WriteBaseline { gate: key, baseline })
}

/// `BaselinesLoaded`: the baselines an instance starts with, from earlier
/// instances (recorded right after `InstanceStarted`).
pub(crate) fn baselines_loaded(cx: Cx<'_>, e: &payload::BaselinesLoaded) -> Handled {
    let Cx { instance, event, .. } = cx;
    require(instance, event, matches!(instance.status, InstanceStatus::Running), "baselines are loaded when the instance starts")?;
    if instance.phases.iter().any(|p| p.attempt > 0) {
        return Err(Rejected::new(event, "a phase has already started", "baselines are loaded before any phase starts"));
    }
    let baselines: &BTreeMap<String, Baseline> = &e.baselines;
    instance.baselines.extend(baselines.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(Vec::new())
}

//! Phases and the instance's own end: start, complete, fail.

use super::super::gate::{GateState, GateStatus};
use super::super::guards::{cancel_in_flight, phase_index, phase_tasks_done, require_phase_running, require_running, Cx, Handled};
use super::super::{payload, InstanceStatus, PhaseStatus, Rejected, TaskStatus, Timestamp, WatchState};
use super::rollback;

/// `PhaseStarted`: a pending phase whose upstream phases passed begins its next attempt.
pub(crate) fn started(cx: Cx<'_>, e: &payload::PhaseStarted) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    require_running(instance, event)?;
    let p = phase_index(workflow, event, &e.phase)?;
    let state = &instance.phases[p];
    match &state.status {
        PhaseStatus::Pending => {}
        PhaseStatus::Running { .. }
        | PhaseStatus::AwaitingApproval { .. }
        | PhaseStatus::OnHold { .. }
        | PhaseStatus::Passed { .. }
        | PhaseStatus::Failed { .. } => {
            return Err(Rejected::new(event, format!("phase {} is {}", e.phase, state.status.kind()), "only a pending phase starts"));
        }
    }
    if e.attempt != state.attempt + 1 {
        return Err(Rejected::new(event, format!("phase {} is at attempt {}", e.phase, state.attempt), "attempts count up by one"));
    }
    if let Some(&blocking) = workflow.phases[p].after.iter().find(|&&u| !matches!(instance.phases[u].status, PhaseStatus::Passed { .. })) {
        let upstream = &instance.phases[blocking];
        return Err(Rejected::new(
            event,
            format!("phase {} is {}", upstream.id, upstream.status.kind()),
            format!("phase {} runs after it", e.phase),
        ));
    }
    let state = &mut instance.phases[p];
    state.attempt = e.attempt;
    state.status = PhaseStatus::Running { since: at };
    state.restart_clock(at);
    for task in &mut state.tasks {
        task.status = TaskStatus::Pending;
        task.attempts = 0;
        task.budget_from = 0;
        task.requested = false;
    }
    for gate in &mut state.gates {
        *gate = GateState::new(&gate.id);
    }
    for watch in &mut state.watches {
        *watch = WatchState::new(&watch.id);
    }
    rollback::journal(instance, workflow, p, None);
    Ok(Vec::new())
}

/// `PhaseCompleted`: a running phase whose tasks are done and gates passed
/// passes, and schedules its next cycle if it has a schedule.
pub(crate) fn completed(cx: Cx<'_>, e: &payload::PhaseCompleted) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let phase = &e.phase;
    require_running(instance, event)?;
    let p = phase_index(workflow, event, phase)?;
    require_phase_running(instance, event, p)?;
    if !phase_tasks_done(instance, workflow, p) {
        return Err(Rejected::new(event, format!("phase {phase} still has tasks to finish"), "a phase completes when its tasks are done"));
    }
    if let Some(gate) = instance.phases[p].gates.iter().find(|g| !matches!(g.status, GateStatus::Passed { .. })) {
        return Err(Rejected::new(
            event,
            format!("gate {} of phase {phase} is {}", gate.id, gate.status.kind()),
            "a phase completes when every gate passed",
        ));
    }
    instance.phases[p].status = PhaseStatus::Passed { at };
    let repeat = workflow.phases[p]
        .schedule_when
        .as_ref()
        .is_none_or(|when| when.evaluate(&super::super::evidence(instance)) == crate::expr::Outcome::True);
    instance.phases[p].next_cycle = if repeat { workflow.phases[p].next_cycle_after(at.0, &instance.vars).map(Timestamp) } else { None };
    Ok(Vec::new())
}

/// `PhaseFailed`: a running phase fails and its attempts in flight are cancelled.
pub(crate) fn failed(cx: Cx<'_>, e: &payload::PhaseFailed) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    require_running(instance, event)?;
    let p = phase_index(workflow, event, &e.phase)?;
    require_phase_running(instance, event, p)?;
    let effects = cancel_in_flight(instance, Some(p), &format!("phase {} failed", e.phase), at);
    instance.phases[p].status = PhaseStatus::Failed { reason: e.reason.clone(), at };
    Ok(effects)
}

/// `InstanceCompleted`: every phase passed and none is scheduled to run again.
pub(crate) fn instance_completed(cx: Cx<'_>) -> Handled {
    let Cx { instance, event, at, .. } = cx;
    require_running(instance, event)?;
    if let Some(phase) = instance.phases.iter().find(|p| !matches!(p.status, PhaseStatus::Passed { .. })) {
        return Err(Rejected::new(
            event,
            format!("phase {} is {}", phase.id, phase.status.kind()),
            "an instance completes when every phase passed",
        ));
    }
    if let Some(phase) = instance.phases.iter().find(|p| p.next_cycle.is_some()) {
        return Err(Rejected::new(
            event,
            format!("phase {} is scheduled to run again", phase.id),
            "an instance with a scheduled phase does not complete; cancel it to stop the schedule",
        ));
    }
    instance.status = InstanceStatus::Completed { at };
    Ok(Vec::new())
}

/// `InstanceFailed`: a phase failed, so the instance fails and its attempts are cancelled.
pub(crate) fn instance_failed(cx: Cx<'_>, e: &payload::InstanceFailed) -> Handled {
    let Cx { instance, event, at, .. } = cx;
    require_running(instance, event)?;
    if !instance.phases.iter().any(|p| matches!(p.status, PhaseStatus::Failed { .. })) {
        return Err(Rejected::new(event, "no phase has failed", "an instance fails when a phase failed"));
    }
    let effects = cancel_in_flight(instance, None, "the instance failed", at);
    instance.status = InstanceStatus::Failed { reason: e.reason.clone(), at };
    Ok(effects)
}

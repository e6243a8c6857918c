//! Rollback: the saga log of completed work, planning and running its
//! compensations, and re-entering a phase afterwards.

use super::super::gate::GateState;
use super::super::guards::{cancel_in_flight, phase_index, require, Cx, Effect, Handled, OutboxEntry};
use super::super::{
    payload, Compensation, Done, Instance, InstanceStatus, PhaseState, PhaseStatus, RejectKind, Rejected, Rollback, TaskState, TaskStatus,
    Timestamp, WatchState,
};
use crate::plan::Workflow;

/// Resets a phase to pending so it runs again as a new attempt.
pub(crate) fn reset_phase(state: &mut PhaseState) {
    state.status = PhaseStatus::Pending;
    state.next_cycle = None;
    state.started_at = None;
    state.deadline_passed = false;
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
}

/// Resets `target` and every phase downstream of it; returns the cancel
/// effects for their attempts in flight.
pub(crate) fn reenter(
    instance: &mut Instance,
    workflow: &Workflow,
    target: usize,
    entered: String,
    reason: &str,
    at: Timestamp,
) -> Vec<Effect> {
    let scope: Vec<usize> = (0..workflow.phases.len()).filter(|&p| workflow.is_upstream(target, p)).collect();
    let mut effects = Vec::new();
    for &p in &scope {
        // The attempts in flight are cancelled, and their outbox entries go
        // with the reset: their results will no longer apply.
        for cancel in cancel_in_flight(instance, Some(p), reason, at) {
            if let Effect::Cancel { key, .. } = &cancel {
                effects.push(Effect::DeleteOutbox { key: key.clone() });
            }
            effects.push(cancel);
        }
    }
    let ids: Vec<String> = scope.iter().map(|&p| workflow.phases[p].id.clone()).collect();
    instance.pending_triggers.retain(|t| !ids.contains(&t.phase));
    for &p in &scope {
        reset_phase(&mut instance.phases[p]);
    }
    instance.phases[target].entered = Some(entered);
    effects
}

/// Records completed work that has a compensation in the saga log (the
/// latest completion of a task or phase replaces the earlier one).
pub(crate) fn journal(instance: &mut Instance, workflow: &Workflow, p: usize, t: Option<usize>) {
    let plan = &workflow.phases[p];
    let wanted = match t {
        Some(t) => plan.tasks[t].rollback.is_some(),
        None => !plan.rollback.is_empty(),
    };
    if !wanted {
        return;
    }
    let done = Done { phase: plan.id.clone(), task: t.map(|t| plan.tasks[t].id.clone()) };
    // A task that succeeds while a rollback is under way (its cancellation
    // came too late) is compensated first: nothing has been compensated yet,
    // because compensation waits for attempts in flight to settle.
    if let (Some(t), Some(rollback)) = (t, instance.rollback.as_mut()) {
        if matches!(instance.status, InstanceStatus::RollingBack { .. }) && rollback.to.as_ref().is_none_or(|to| in_scope(workflow, to, p))
        {
            if let Some(step) = &plan.tasks[t].rollback {
                let first_open = rollback.steps.iter().position(|s| !s.state.status.is_done()).unwrap_or(rollback.steps.len());
                rollback.steps.insert(
                    first_open,
                    Compensation { phase: plan.id.clone(), task: Some(plan.tasks[t].id.clone()), index: 0, state: fresh(&step.id) },
                );
            }
            return;
        }
    }
    instance.journal.retain(|d| *d != done);
    instance.journal.push(done);
}

fn in_scope(workflow: &Workflow, to: &str, p: usize) -> bool {
    workflow.phase_index(to).is_some_and(|target| workflow.is_upstream(target, p))
}

fn fresh(id: &str) -> TaskState {
    TaskState { id: id.to_owned(), attempts: 0, budget_from: 0, status: TaskStatus::Pending, requested: false }
}

/// The compensations a rollback to `to` (or of everything) would run, in
/// order: the saga log backwards; a phase's own steps in the order written.
pub fn rollback_plan(instance: &Instance, workflow: &Workflow, to: Option<usize>) -> Vec<Compensation> {
    let mut steps = Vec::new();
    for done in instance.journal.iter().rev() {
        let Some(p) = workflow.phase_index(&done.phase) else { continue };
        if to.is_some_and(|target| !workflow.is_upstream(target, p)) {
            continue;
        }
        let plan = &workflow.phases[p];
        match &done.task {
            Some(task) => {
                if let Some((_, t)) = workflow.task_location(task) {
                    if let Some(step) = &plan.tasks[t].rollback {
                        steps.push(Compensation { phase: plan.id.clone(), task: Some(task.clone()), index: 0, state: fresh(&step.id) });
                    }
                }
            }
            None => {
                for (index, step) in plan.rollback.iter().enumerate() {
                    steps.push(Compensation { phase: plan.id.clone(), task: None, index, state: fresh(&step.id) });
                }
            }
        }
    }
    steps
}

/// The step a compensation runs.
pub fn compensation_step<'w>(workflow: &'w Workflow, compensation: &Compensation) -> Option<&'w crate::plan::Step> {
    let p = workflow.phase_index(&compensation.phase)?;
    match &compensation.task {
        Some(task) => workflow.task_location(task).and_then(|(_, t)| workflow.phases[p].tasks[t].rollback.as_ref()),
        None => workflow.phases[p].rollback.get(compensation.index),
    }
}

/// Starts a rollback: cancels attempts in flight and plans the compensations.
pub(crate) fn start(instance: &mut Instance, workflow: &Workflow, by: &str, reason: &str, to: Option<usize>, at: Timestamp) -> Vec<Effect> {
    let steps = rollback_plan(instance, workflow, to);
    let effects = cancel_in_flight(instance, None, &format!("rolling back: {reason}"), at);
    instance.journal.retain(|done| workflow.phase_index(&done.phase).is_some_and(|p| to.is_some_and(|t| !workflow.is_upstream(t, p))));
    instance.rollbacks += 1;
    instance.pending_triggers.clear();
    instance.rollback = Some(Rollback {
        by: by.to_owned(),
        reason: reason.to_owned(),
        to: to.map(|t| workflow.phases[t].id.clone()),
        started_at: at,
        steps,
    });
    instance.status = InstanceStatus::RollingBack { since: at };
    effects
}

/// `RollbackStarted`: an operator (or a trigger) asks to compensate completed work.
pub(crate) fn started(cx: Cx<'_>, e: &payload::RollbackStarted) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    match &instance.status {
        InstanceStatus::Running
        | InstanceStatus::Halted { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::AwaitingDecision { .. } => {}
        InstanceStatus::Completed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. } => {
            return Err(Rejected::new(
                event,
                format!("instance {} is {}", instance.id, instance.status.kind()),
                "only a running, halted, failed or waiting instance can be rolled back",
            ));
        }
    }
    if instance.rollback.is_some() {
        return Err(Rejected::new(
            event,
            format!("instance {} has a rollback halted part-way", instance.id),
            "resume it with `phasegate resume`",
        ));
    }
    let target = match e.to.as_deref() {
        Some(to) => {
            let p = phase_index(workflow, event, to)?;
            if matches!(instance.phases[p].status, PhaseStatus::Pending) && instance.phases[p].attempt == 0 {
                return Err(Rejected::new(event, format!("phase {to} has not started"), "roll back to a phase that ran"));
            }
            Some(p)
        }
        None => None,
    };
    if rollback_plan(instance, workflow, target).is_empty() {
        let scope = match &e.to {
            Some(to) => format!(" in phase {to} or after it"),
            None => String::new(),
        };
        return Err(Rejected::new(
            event,
            format!("instance {} has no completed work with a compensation{scope}", instance.id),
            "nothing to compensate: no task with a `rollback` step succeeded and no phase with `rollback` steps started",
        ));
    }
    Ok(start(instance, workflow, &e.by, &e.reason, target, at))
}

fn rollback_step<'i>(instance: &'i Instance, event: &crate::machine::Event, step: usize, id: &str) -> Result<&'i Compensation, Rejected> {
    let Some(rollback) = &instance.rollback else {
        return Err(Rejected::new(event, format!("instance {} is not rolling back", instance.id), "compensations run during a rollback"));
    };
    match rollback.steps.get(step) {
        Some(compensation) if compensation.state.id == id => Ok(compensation),
        _ => Err(Rejected::of(RejectKind::Unknown, event, format!("the rollback has no step {step} named {id}"), "unknown compensation")),
    }
}

/// `CompensationDispatched`: the next compensation, in order, once no task is in flight.
pub(crate) fn dispatched(cx: Cx<'_>, e: &payload::CompensationDispatched) -> Handled {
    let Cx { instance, event, at, .. } = cx;
    let (step, id, attempt) = (e.step, &e.id, e.attempt);
    require(
        instance,
        event,
        matches!(instance.status, InstanceStatus::RollingBack { .. }),
        "compensations are dispatched while rolling back",
    )?;
    let compensation = rollback_step(instance, event, step, id)?;
    let state = &compensation.state;
    let fresh = attempt == state.attempts + 1;
    let allowed = match &state.status {
        TaskStatus::Pending | TaskStatus::Cancelled { .. } => fresh,
        TaskStatus::RetryWaiting { attempt: due, .. } => *due == attempt && fresh,
        TaskStatus::Dispatched { .. }
        | TaskStatus::Waiting { .. }
        | TaskStatus::Succeeded { .. }
        | TaskStatus::Failed { .. }
        | TaskStatus::Skipped { .. } => false,
    };
    let earlier_open = instance.rollback.as_ref().is_some_and(|r| r.steps[..step].iter().any(|s| !s.state.status.is_done()));
    if !allowed || earlier_open || !instance.in_flight().is_empty() {
        return Err(Rejected::new(
            event,
            format!("compensation {id} is {} after {} attempt(s)", state.status.kind(), state.attempts),
            "compensations run one at a time, in order, with the next attempt number, once no task is in flight",
        ));
    }
    if let Some(rollback) = instance.rollback.as_mut() {
        let state = &mut rollback.steps[step].state;
        state.attempts = attempt;
        state.status = TaskStatus::Dispatched { attempt, key: e.key.clone(), at };
    }
    let entry = OutboxEntry::Compensate { step, id: id.clone(), attempt };
    Ok(vec![Effect::WriteOutbox { key: e.key.clone(), entry }, Effect::Compensate { step, attempt, key: e.key.clone() }])
}

/// How a compensation attempt ended.
pub(crate) enum Ended<'e> {
    /// `CompensationSucceeded`.
    Succeeded(&'e payload::CompensationSucceeded),
    /// `CompensationFailed`.
    Failed(&'e payload::CompensationFailed),
}

/// `CompensationSucceeded`, `CompensationFailed`: the result of the attempt in flight.
pub(crate) fn ended(cx: Cx<'_>, ended: Ended<'_>) -> Handled {
    let Cx { instance, event, at, .. } = cx;
    let (step, id, attempt) = match &ended {
        Ended::Succeeded(e) => (e.step, &e.id, e.attempt),
        Ended::Failed(e) => (e.step, &e.id, e.attempt),
    };
    let compensation = rollback_step(instance, event, step, id)?;
    let key = match &compensation.state.status {
        TaskStatus::Dispatched { attempt: running, key, .. } if *running == attempt => key.clone(),
        other @ (TaskStatus::Dispatched { .. }
        | TaskStatus::Pending
        | TaskStatus::Succeeded { .. }
        | TaskStatus::Failed { .. }
        | TaskStatus::RetryWaiting { .. }
        | TaskStatus::Waiting { .. }
        | TaskStatus::Skipped { .. }
        | TaskStatus::Cancelled { .. }) => {
            return Err(Rejected::new(
                event,
                format!("compensation {id} is {}", other.kind()),
                format!("no attempt {attempt} of it is in flight"),
            ));
        }
    };
    if let Some(rollback) = instance.rollback.as_mut() {
        rollback.steps[step].state.status = match ended {
            Ended::Succeeded(e) => TaskStatus::Succeeded { attempt, output: e.output.clone(), duration_ms: e.duration_ms, at },
            Ended::Failed(e) => TaskStatus::Failed { attempt, error: e.error.clone(), retryable: e.retryable, at },
        };
    }
    Ok(vec![Effect::DeleteOutbox { key }])
}

/// `CompensationRetryScheduled`: a retryable compensation failure within its budget waits for its next attempt.
pub(crate) fn retry_scheduled(cx: Cx<'_>, e: &payload::CompensationRetryScheduled) -> Handled {
    let Cx { instance, workflow, event, .. } = cx;
    let (step, id, attempt) = (e.step, &e.id, e.attempt);
    require(
        instance,
        event,
        matches!(instance.status, InstanceStatus::RollingBack { .. }),
        "compensations are retried while rolling back",
    )?;
    let compensation = rollback_step(instance, event, step, id)?;
    let max_attempts = compensation_step(workflow, compensation).map_or(1, |s| s.retry.max_attempts);
    let error = match &compensation.state.status {
        TaskStatus::Failed { attempt: failed, error, .. } if attempt == failed + 1 && compensation.state.may_retry(max_attempts) => {
            error.clone()
        }
        other @ (TaskStatus::Failed { .. }
        | TaskStatus::Pending
        | TaskStatus::Dispatched { .. }
        | TaskStatus::Succeeded { .. }
        | TaskStatus::RetryWaiting { .. }
        | TaskStatus::Waiting { .. }
        | TaskStatus::Skipped { .. }
        | TaskStatus::Cancelled { .. }) => {
            return Err(Rejected::new(
                event,
                format!("compensation {id} is {}", other.kind()),
                format!("only a retryable failure within max_attempts = {max_attempts} is retried"),
            ));
        }
    };
    if let Some(rollback) = instance.rollback.as_mut() {
        rollback.steps[step].state.status = TaskStatus::RetryWaiting { attempt, due: e.due, error };
    }
    Ok(Vec::new())
}

/// `RollbackCompleted`: every compensation succeeded; the instance ends
/// rolled back, or re-enters the phase the rollback was to.
pub(crate) fn completed(cx: Cx<'_>) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    if !matches!(instance.status, InstanceStatus::RollingBack { .. }) {
        return Err(Rejected::new(event, format!("instance {} is {}", instance.id, instance.status.kind()), "only a rollback completes"));
    }
    let Some(rollback) = &instance.rollback else {
        return Err(Rejected::new(event, "no rollback is recorded", "only a rollback completes"));
    };
    if let Some(open) = rollback.steps.iter().find(|s| !matches!(s.state.status, TaskStatus::Succeeded { .. })) {
        return Err(Rejected::new(
            event,
            format!("compensation {} is {}", open.state.id, open.state.status.kind()),
            "a rollback completes when every compensation succeeded",
        ));
    }
    if !instance.in_flight().is_empty() {
        return Err(Rejected::new(event, "task attempts are still in flight", "a rollback completes once cancelled attempts have settled"));
    }
    let (to, by, reason) = (rollback.to.clone(), rollback.by.clone(), rollback.reason.clone());
    match to.as_deref().and_then(|to| workflow.phase_index(to)) {
        Some(target) => {
            instance.rollback = None;
            instance.status = InstanceStatus::Running;
            Ok(reenter(instance, workflow, target, format!("rollback by {by}: {reason}"), "rolled back", at))
        }
        None => {
            instance.status = InstanceStatus::RolledBack { reason, at };
            Ok(Vec::new())
        }
    }
}

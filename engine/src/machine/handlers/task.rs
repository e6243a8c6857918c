//! Task attempts: dispatch, results, retries and skips.

use super::super::guards::{require_phase_running, require_running, task_index, Cx, Effect, Handled, OutboxEntry};
use super::super::{payload, Event, Instance, Rejected, TaskStatus};
use super::{rollback, trigger};
use crate::machine::state::phase_active;
use crate::plan::{TriggerOn, Workflow};

/// Checks that task `task` of `phase` may begin attempt `attempt` now: the
/// instance runs, the phase runs (or it is an on-demand task a trigger asked
/// for beside a gate), and it is ready, due for retry or was cancelled.
fn may_begin(
    instance: &Instance,
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    task: &str,
    attempt: u32,
) -> Result<(usize, usize), Rejected> {
    require_running(instance, event)?;
    let (p, t) = task_index(workflow, event, phase, task)?;
    // An on-demand task a trigger asked for also runs beside a gate awaiting a decision.
    let on_demand = instance.phases[p].tasks[t].requested && phase_active(&instance.phases[p].status);
    if !on_demand {
        require_phase_running(instance, event, p)?;
    }
    let state = &instance.phases[p].tasks[t];
    let fresh = attempt == state.attempts + 1;
    let allowed = match &state.status {
        TaskStatus::Pending => {
            fresh && workflow.phases[p].tasks[t].depends_on.iter().all(|&d| instance.phases[p].tasks[d].status.is_done())
        }
        TaskStatus::RetryWaiting { attempt: due_attempt, .. } => *due_attempt == attempt && fresh,
        TaskStatus::Cancelled { .. } => fresh,
        TaskStatus::Dispatched { .. }
        | TaskStatus::Waiting { .. }
        | TaskStatus::Succeeded { .. }
        | TaskStatus::Failed { .. }
        | TaskStatus::Skipped { .. } => false,
    };
    if !allowed {
        return Err(Rejected::new(
            event,
            format!("task {task} is {} after {} attempt(s)", state.status.kind(), state.attempts),
            "a task begins when it is ready, due for retry or was cancelled, with the next attempt number",
        ));
    }
    Ok((p, t))
}

/// `TaskDispatched`: a ready, due or cancelled task's next attempt goes to its agent.
pub(crate) fn dispatched(cx: Cx<'_>, e: &payload::TaskDispatched) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let (p, t) = may_begin(instance, workflow, event, &e.phase, &e.task, e.attempt)?;
    if workflow.phases[p].tasks[t].wait.is_some() {
        return Err(Rejected::new(event, format!("task {} is a wait", e.task), "a wait runs on the engine's timer, not an agent"));
    }
    let state = &mut instance.phases[p].tasks[t];
    state.attempts = e.attempt;
    state.status = TaskStatus::Dispatched { attempt: e.attempt, key: e.key.clone(), at };
    let entry = OutboxEntry::Dispatch { phase: e.phase.clone(), task: e.task.clone(), attempt: e.attempt };
    Ok(vec![
        Effect::WriteOutbox { key: e.key.clone(), entry },
        Effect::Dispatch { phase: p, task: t, attempt: e.attempt, key: e.key.clone() },
    ])
}

/// `WaitStarted`: a ready (or cancelled) `wait` task begins; the time it
/// ends is fixed in the event, so a restart resumes it with the time left.
pub(crate) fn wait_started(cx: Cx<'_>, e: &payload::WaitStarted) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let (p, t) = may_begin(instance, workflow, event, &e.phase, &e.task, e.attempt)?;
    if workflow.phases[p].tasks[t].wait.is_none() {
        return Err(Rejected::new(
            event,
            format!("task {} runs agent {}", e.task, workflow.phases[p].tasks[t].agent),
            "only a task with agent = \"wait\" waits",
        ));
    }
    if e.due < at {
        return Err(Rejected::new(
            event,
            format!("the wait would end at {}, before it begins ({at})", e.due),
            "a wait ends after it begins",
        ));
    }
    let state = &mut instance.phases[p].tasks[t];
    state.attempts = e.attempt;
    state.status = TaskStatus::Waiting { attempt: e.attempt, since: at, due: e.due };
    Ok(Vec::new())
}

/// `WaitElapsed`: a wait whose time is up succeeds; its output says how
/// long it waited, from when to when.
pub(crate) fn wait_elapsed(cx: Cx<'_>, e: &payload::WaitElapsed) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    require_running(instance, event)?;
    let (p, t) = task_index(workflow, event, &e.phase, &e.task)?;
    let state = &instance.phases[p].tasks[t];
    let (since, due) = match &state.status {
        TaskStatus::Waiting { attempt, since, due } if *attempt == e.attempt && *due <= at => (*since, *due),
        TaskStatus::Waiting { attempt, due, .. } if *attempt == e.attempt => {
            return Err(Rejected::new(event, format!("task {} waits until {due}", e.task), format!("it is {at}: the wait is not over")));
        }
        TaskStatus::Waiting { .. }
        | TaskStatus::Pending
        | TaskStatus::Dispatched { .. }
        | TaskStatus::Succeeded { .. }
        | TaskStatus::Failed { .. }
        | TaskStatus::RetryWaiting { .. }
        | TaskStatus::Skipped { .. }
        | TaskStatus::Cancelled { .. } => {
            return Err(Rejected::new(
                event,
                format!("task {} is {} (attempt {})", e.task, state.status.kind(), state.attempts),
                format!("no wait attempt {} of it is running", e.attempt),
            ));
        }
    };
    let waited_ms = at.since(since);
    let output = serde_json::json!({ "waited_ms": waited_ms, "since": since.to_string(), "until": due.to_string() });
    instance.phases[p].tasks[t].status = TaskStatus::Succeeded { attempt: e.attempt, output, duration_ms: waited_ms, at };
    Ok(Vec::new())
}

/// How an attempt in flight ended.
pub(crate) enum Ended<'e> {
    /// `TaskSucceeded`.
    Succeeded(&'e payload::TaskSucceeded),
    /// `TaskFailed`.
    Failed(&'e payload::TaskFailed),
    /// `TaskCancelled`.
    Cancelled(&'e payload::TaskCancelled),
}

/// `TaskSucceeded`, `TaskFailed`, `TaskCancelled`: the result of the attempt
/// in flight. Accepted whatever the instance's status: the work happened,
/// and the log must say so.
pub(crate) fn ended(cx: Cx<'_>, ended: Ended<'_>) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let (phase, task, attempt) = match &ended {
        Ended::Succeeded(e) => (&e.phase, &e.task, e.attempt),
        Ended::Failed(e) => (&e.phase, &e.task, e.attempt),
        Ended::Cancelled(e) => (&e.phase, &e.task, e.attempt),
    };
    let (p, t) = task_index(workflow, event, phase, task)?;
    let state = &instance.phases[p].tasks[t];
    let key = match &state.status {
        TaskStatus::Dispatched { attempt: running, key, .. } if *running == attempt => key.clone(),
        TaskStatus::Dispatched { .. }
        | TaskStatus::Pending
        | TaskStatus::Succeeded { .. }
        | TaskStatus::Failed { .. }
        | TaskStatus::RetryWaiting { .. }
        | TaskStatus::Waiting { .. }
        | TaskStatus::Skipped { .. }
        | TaskStatus::Cancelled { .. } => {
            return Err(Rejected::new(
                event,
                format!("task {task} is {} (attempt {})", state.status.kind(), state.attempts),
                format!("no attempt {attempt} of it is in flight"),
            ));
        }
    };
    let state = &mut instance.phases[p].tasks[t];
    state.status = match &ended {
        Ended::Succeeded(e) => TaskStatus::Succeeded { attempt, output: e.output.clone(), duration_ms: e.duration_ms, at },
        Ended::Failed(e) => TaskStatus::Failed { attempt, error: e.error.clone(), retryable: e.retryable, at },
        Ended::Cancelled(_) => TaskStatus::Cancelled { attempt, at },
    };
    match &ended {
        Ended::Succeeded(_) => rollback::journal(instance, workflow, p, Some(t)),
        Ended::Failed(e) if !instance.phases[p].tasks[t].may_retry(workflow.phases[p].tasks[t].retry.max_attempts) => {
            let cause = format!("task {task} failed for good: {}", e.error);
            trigger::queue(
                instance,
                workflow,
                trigger::Scope::Phase(p),
                |on| matches!(on, TriggerOn::TaskFailed(which) if which.is_none_or(|w| w == t)),
                &cause,
            );
        }
        Ended::Failed(_) | Ended::Cancelled(_) => {}
    }
    Ok(vec![Effect::DeleteOutbox { key }])
}

/// `RetryScheduled`: a retryable failure within its budget waits for its next attempt.
pub(crate) fn retry_scheduled(cx: Cx<'_>, e: &payload::RetryScheduled) -> Handled {
    let Cx { instance, workflow, event, .. } = cx;
    require_running(instance, event)?;
    let (p, t) = task_index(workflow, event, &e.phase, &e.task)?;
    let state = &instance.phases[p].tasks[t];
    let policy = &workflow.phases[p].tasks[t].retry;
    let error = match &state.status {
        TaskStatus::Failed { attempt: failed, error, .. } if e.attempt == failed + 1 && state.may_retry(policy.max_attempts) => {
            error.clone()
        }
        TaskStatus::Failed { .. }
        | TaskStatus::Pending
        | TaskStatus::Dispatched { .. }
        | TaskStatus::Succeeded { .. }
        | TaskStatus::RetryWaiting { .. }
        | TaskStatus::Waiting { .. }
        | TaskStatus::Skipped { .. }
        | TaskStatus::Cancelled { .. } => {
            return Err(Rejected::new(
                event,
                format!("task {} is {} after {} attempt(s)", e.task, state.status.kind(), state.attempts),
                format!("only a retryable failure within max_attempts = {} is retried", policy.max_attempts),
            ));
        }
    };
    instance.phases[p].tasks[t].status = TaskStatus::RetryWaiting { attempt: e.attempt, due: e.due, error };
    Ok(Vec::new())
}

/// `TaskSkipped`: a pending task whose `when` did not hold.
pub(crate) fn skipped(cx: Cx<'_>, e: &payload::TaskSkipped) -> Handled {
    let Cx { instance, workflow, event, .. } = cx;
    require_running(instance, event)?;
    let (p, t) = task_index(workflow, event, &e.phase, &e.task)?;
    require_phase_running(instance, event, p)?;
    let state = &instance.phases[p].tasks[t];
    match &state.status {
        TaskStatus::Pending => {}
        TaskStatus::Dispatched { .. }
        | TaskStatus::Succeeded { .. }
        | TaskStatus::Failed { .. }
        | TaskStatus::RetryWaiting { .. }
        | TaskStatus::Waiting { .. }
        | TaskStatus::Skipped { .. }
        | TaskStatus::Cancelled { .. } => {
            return Err(Rejected::new(event, format!("task {} is {}", e.task, state.status.kind()), "only a pending task is skipped"));
        }
    }
    instance.phases[p].tasks[t].status = TaskStatus::Skipped { reason: e.reason.clone() };
    Ok(Vec::new())
}

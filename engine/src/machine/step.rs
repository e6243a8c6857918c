//! `step`: applies one event to an instance.
//!
//! Every handler checks first and mutates after, so a [`Rejected`] event
//! leaves the state exactly as it was (a property test holds it to that).
//! Conceptually `step` is `(state, event, now) -> Result<(state, effects),
//! Rejected>`; it mutates in place because copying a thousand-task state for
//! every event would make long workflows quadratic.

use super::{
    Event, Instance, InstanceStatus, PhaseStatus, Record, Rejected, TaskStatus, Timestamp,
};
use crate::plan::Workflow;

/// What the runtime must do once the event that caused it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Run a task attempt on its agent.
    Dispatch {
        /// Phase index.
        phase: usize,
        /// Task index within the phase.
        task: usize,
        /// The attempt.
        attempt: u32,
        /// Its idempotency key.
        key: String,
    },
    /// Stop an in-flight attempt.
    Cancel {
        /// The attempt's idempotency key.
        key: String,
        /// Why, for the TaskCancelled event.
        reason: String,
    },
}

fn phase_index(workflow: &Workflow, event: &Event, id: &str) -> Result<usize, Rejected> {
    workflow.phase_index(id).ok_or_else(|| {
        Rejected::new(
            event,
            format!("workflow `{}` has no phase `{id}`", workflow.name),
            "unknown phase",
        )
    })
}

fn task_index(
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    task: &str,
) -> Result<(usize, usize), Rejected> {
    let p = phase_index(workflow, event, phase)?;
    match workflow.task_location(task) {
        Some((tp, t)) if tp == p => Ok((p, t)),
        _ => Err(Rejected::new(
            event,
            format!("phase `{phase}` has no task `{task}`"),
            "unknown task",
        )),
    }
}

fn require_running(instance: &Instance, event: &Event) -> Result<(), Rejected> {
    match &instance.status {
        InstanceStatus::Running => Ok(()),
        InstanceStatus::Halted { .. }
        | InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. } => Err(Rejected::new(
            event,
            format!("instance {} is {}", instance.id, instance.status.kind()),
            "only a running instance takes this event",
        )),
    }
}

fn require_phase_running(instance: &Instance, event: &Event, p: usize) -> Result<(), Rejected> {
    let phase = &instance.phases[p];
    match &phase.status {
        PhaseStatus::Running { .. } => Ok(()),
        PhaseStatus::Pending
        | PhaseStatus::AwaitingApproval { .. }
        | PhaseStatus::Passed { .. }
        | PhaseStatus::Failed { .. } => Err(Rejected::new(
            event,
            format!("phase {} is {}", phase.id, phase.status.kind()),
            "the phase is not running",
        )),
    }
}

/// Cancel effects for every in-flight attempt (of one phase, or all).
fn cancel_in_flight(instance: &Instance, phase: Option<usize>, reason: &str) -> Vec<Effect> {
    instance
        .in_flight()
        .into_iter()
        .filter(|(p, ..)| phase.is_none_or(|only| only == *p))
        .map(|(_, _, _, key)| Effect::Cancel {
            key,
            reason: reason.to_owned(),
        })
        .collect()
}

/// The tasks of a phase that must finish before it can complete (on-demand
/// tasks only count once started).
fn phase_tasks_done(instance: &Instance, workflow: &Workflow, p: usize) -> bool {
    instance.phases[p]
        .tasks
        .iter()
        .zip(&workflow.phases[p].tasks)
        .all(|(state, task)| {
            state.status.is_done()
                || (task.on_demand && matches!(state.status, TaskStatus::Pending))
        })
}

/// Applies `event` (which happened at `at`) to `instance`.
pub fn step(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
    let effects = match event {
        Event::InstanceStarted { .. } => {
            return Err(Rejected::new(
                event,
                format!("instance {} already started", instance.id),
                "an instance starts once",
            ));
        }
        Event::PhaseStarted { phase, attempt } => {
            require_running(instance, event)?;
            let p = phase_index(workflow, event, phase)?;
            let state = &instance.phases[p];
            match &state.status {
                PhaseStatus::Pending => {}
                PhaseStatus::Running { .. }
                | PhaseStatus::AwaitingApproval { .. }
                | PhaseStatus::Passed { .. }
                | PhaseStatus::Failed { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("phase {phase} is {}", state.status.kind()),
                        "only a pending phase starts",
                    ));
                }
            }
            if *attempt != state.attempt + 1 {
                return Err(Rejected::new(
                    event,
                    format!("phase {phase} is at attempt {}", state.attempt),
                    "attempts count up by one",
                ));
            }
            if let Some(&blocking) = workflow.phases[p]
                .after
                .iter()
                .find(|&&u| !matches!(instance.phases[u].status, PhaseStatus::Passed { .. }))
            {
                let upstream = &instance.phases[blocking];
                return Err(Rejected::new(
                    event,
                    format!("phase {} is {}", upstream.id, upstream.status.kind()),
                    format!("phase {phase} runs after it"),
                ));
            }
            let state = &mut instance.phases[p];
            state.attempt = *attempt;
            state.status = PhaseStatus::Running { since: at };
            for task in &mut state.tasks {
                task.status = TaskStatus::Pending;
                task.attempts = 0;
                task.budget_from = 0;
            }
            Vec::new()
        }
        Event::TaskDispatched {
            phase,
            task,
            attempt,
            key,
        } => {
            require_running(instance, event)?;
            let (p, t) = task_index(workflow, event, phase, task)?;
            require_phase_running(instance, event, p)?;
            let state = &instance.phases[p].tasks[t];
            let fresh = *attempt == state.attempts + 1;
            let allowed = match &state.status {
                TaskStatus::Pending => {
                    fresh
                        && workflow.phases[p].tasks[t]
                            .depends_on
                            .iter()
                            .all(|&d| instance.phases[p].tasks[d].status.is_done())
                }
                TaskStatus::RetryWaiting {
                    attempt: due_attempt,
                    ..
                } => due_attempt == attempt && fresh,
                TaskStatus::Cancelled { .. } => fresh,
                TaskStatus::Dispatched { .. }
                | TaskStatus::Succeeded { .. }
                | TaskStatus::Failed { .. }
                | TaskStatus::Skipped { .. } => false,
            };
            if !allowed {
                return Err(Rejected::new(
                    event,
                    format!("task {task} is {} after {} attempt(s)", state.status.kind(), state.attempts),
                    "a task is dispatched when it is ready, due for retry or was cancelled, with the next attempt number",
                ));
            }
            let state = &mut instance.phases[p].tasks[t];
            state.attempts = *attempt;
            state.status = TaskStatus::Dispatched {
                attempt: *attempt,
                key: key.clone(),
                at,
            };
            vec![Effect::Dispatch {
                phase: p,
                task: t,
                attempt: *attempt,
                key: key.clone(),
            }]
        }
        Event::TaskSucceeded {
            phase,
            task,
            attempt,
            ..
        }
        | Event::TaskFailed {
            phase,
            task,
            attempt,
            ..
        }
        | Event::TaskCancelled {
            phase,
            task,
            attempt,
            ..
        } => {
            // Results of in-flight attempts are accepted whatever the instance
            // status: the work happened, and the log must say so.
            let (p, t) = task_index(workflow, event, phase, task)?;
            let state = &instance.phases[p].tasks[t];
            match &state.status {
                TaskStatus::Dispatched {
                    attempt: running, ..
                } if running == attempt => {}
                TaskStatus::Dispatched { .. }
                | TaskStatus::Pending
                | TaskStatus::Succeeded { .. }
                | TaskStatus::Failed { .. }
                | TaskStatus::RetryWaiting { .. }
                | TaskStatus::Skipped { .. }
                | TaskStatus::Cancelled { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!(
                            "task {task} is {} (attempt {})",
                            state.status.kind(),
                            state.attempts
                        ),
                        format!("no attempt {attempt} of it is in flight"),
                    ));
                }
            }
            let state = &mut instance.phases[p].tasks[t];
            state.status = match event {
                Event::TaskSucceeded {
                    output,
                    duration_ms,
                    ..
                } => TaskStatus::Succeeded {
                    attempt: *attempt,
                    output: output.clone(),
                    duration_ms: *duration_ms,
                    at,
                },
                Event::TaskFailed {
                    error, retryable, ..
                } => TaskStatus::Failed {
                    attempt: *attempt,
                    error: error.clone(),
                    retryable: *retryable,
                    at,
                },
                _ => TaskStatus::Cancelled {
                    attempt: *attempt,
                    at,
                },
            };
            Vec::new()
        }
        Event::RetryScheduled {
            phase,
            task,
            attempt,
            due,
        } => {
            require_running(instance, event)?;
            let (p, t) = task_index(workflow, event, phase, task)?;
            let state = &instance.phases[p].tasks[t];
            let policy = &workflow.phases[p].tasks[t].retry;
            let error = match &state.status {
                TaskStatus::Failed {
                    attempt: failed,
                    retryable: true,
                    error,
                    ..
                } if *attempt == failed + 1
                    && failed.saturating_sub(state.budget_from) < policy.max_attempts =>
                {
                    error.clone()
                }
                TaskStatus::Failed { .. }
                | TaskStatus::Pending
                | TaskStatus::Dispatched { .. }
                | TaskStatus::Succeeded { .. }
                | TaskStatus::RetryWaiting { .. }
                | TaskStatus::Skipped { .. }
                | TaskStatus::Cancelled { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!(
                            "task {task} is {} after {} attempt(s)",
                            state.status.kind(),
                            state.attempts
                        ),
                        format!(
                            "only a retryable failure within max_attempts = {} is retried",
                            policy.max_attempts
                        ),
                    ));
                }
            };
            instance.phases[p].tasks[t].status = TaskStatus::RetryWaiting {
                attempt: *attempt,
                due: *due,
                error,
            };
            Vec::new()
        }
        Event::TaskSkipped { phase, task, .. } => {
            require_running(instance, event)?;
            let (p, t) = task_index(workflow, event, phase, task)?;
            require_phase_running(instance, event, p)?;
            let state = &instance.phases[p].tasks[t];
            match &state.status {
                TaskStatus::Pending => {}
                TaskStatus::Dispatched { .. }
                | TaskStatus::Succeeded { .. }
                | TaskStatus::Failed { .. }
                | TaskStatus::RetryWaiting { .. }
                | TaskStatus::Skipped { .. }
                | TaskStatus::Cancelled { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("task {task} is {}", state.status.kind()),
                        "only a pending task is skipped",
                    ));
                }
            }
            let reason = match event {
                Event::TaskSkipped { reason, .. } => reason.clone(),
                _ => String::new(),
            };
            instance.phases[p].tasks[t].status = TaskStatus::Skipped { reason };
            Vec::new()
        }
        Event::PhaseAwaitingApproval { phase } | Event::PhaseCompleted { phase } => {
            require_running(instance, event)?;
            let p = phase_index(workflow, event, phase)?;
            require_phase_running(instance, event, p)?;
            if !phase_tasks_done(instance, workflow, p) {
                return Err(Rejected::new(
                    event,
                    format!("phase {phase} still has tasks to finish"),
                    "a phase completes when its tasks are done",
                ));
            }
            let has_gates = !workflow.phases[p].gates.is_empty();
            let awaiting = matches!(event, Event::PhaseAwaitingApproval { .. });
            if awaiting != has_gates {
                let reason = if has_gates {
                    "the phase has gates to decide first"
                } else {
                    "the phase has no gate to wait for"
                };
                return Err(Rejected::new(
                    event,
                    format!("phase {phase} is running"),
                    reason,
                ));
            }
            instance.phases[p].status = if awaiting {
                PhaseStatus::AwaitingApproval { since: at }
            } else {
                PhaseStatus::Passed { at }
            };
            Vec::new()
        }
        Event::PhaseFailed { phase, reason } => {
            require_running(instance, event)?;
            let p = phase_index(workflow, event, phase)?;
            require_phase_running(instance, event, p)?;
            let effects = cancel_in_flight(instance, Some(p), &format!("phase {phase} failed"));
            instance.phases[p].status = PhaseStatus::Failed {
                reason: reason.clone(),
                at,
            };
            effects
        }
        Event::InstanceCompleted => {
            require_running(instance, event)?;
            if let Some(phase) = instance
                .phases
                .iter()
                .find(|p| !matches!(p.status, PhaseStatus::Passed { .. }))
            {
                return Err(Rejected::new(
                    event,
                    format!("phase {} is {}", phase.id, phase.status.kind()),
                    "an instance completes when every phase passed",
                ));
            }
            instance.status = InstanceStatus::Completed { at };
            Vec::new()
        }
        Event::InstanceFailed { reason } => {
            require_running(instance, event)?;
            if !instance
                .phases
                .iter()
                .any(|p| matches!(p.status, PhaseStatus::Failed { .. }))
            {
                return Err(Rejected::new(
                    event,
                    "no phase has failed",
                    "an instance fails when a phase failed",
                ));
            }
            let effects = cancel_in_flight(instance, None, "the instance failed");
            instance.status = InstanceStatus::Failed {
                reason: reason.clone(),
                at,
            };
            effects
        }
        Event::Halted {
            by,
            reason,
            cancel_running,
        } => {
            match &instance.status {
                InstanceStatus::Running => {}
                InstanceStatus::Halted {
                    by: halted_by,
                    at: halted_at,
                    ..
                } => {
                    return Err(Rejected::new(
                        event,
                        format!(
                            "instance {} was halted by {halted_by} at {halted_at}",
                            instance.id
                        ),
                        "it is already halted",
                    ));
                }
                InstanceStatus::Completed { .. }
                | InstanceStatus::Failed { .. }
                | InstanceStatus::Cancelled { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("instance {} is {}", instance.id, instance.status.kind()),
                        "only a running instance can be halted",
                    ));
                }
            }
            let effects = if *cancel_running {
                cancel_in_flight(instance, None, &format!("halted by {by}"))
            } else {
                Vec::new()
            };
            instance.status = InstanceStatus::Halted {
                by: by.clone(),
                reason: reason.clone(),
                cancel_running: *cancel_running,
                at,
            };
            effects
        }
        Event::Resumed { .. } => {
            match &instance.status {
                InstanceStatus::Halted { .. } => {}
                InstanceStatus::Running
                | InstanceStatus::Completed { .. }
                | InstanceStatus::Failed { .. }
                | InstanceStatus::Cancelled { .. } => {
                    let hint = match &instance.status {
                        InstanceStatus::Failed { .. } => {
                            "a failed instance is redriven with `retry`"
                        }
                        _ => "only a halted instance can be resumed",
                    };
                    return Err(Rejected::new(
                        event,
                        format!(
                            "instance {} is {}",
                            instance.id,
                            instance.effective_status()
                        ),
                        hint,
                    ));
                }
            }
            instance.status = InstanceStatus::Running;
            Vec::new()
        }
        Event::Cancelled { by, reason } => {
            match &instance.status {
                InstanceStatus::Running
                | InstanceStatus::Halted { .. }
                | InstanceStatus::Failed { .. } => {}
                InstanceStatus::Completed { .. } | InstanceStatus::Cancelled { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("instance {} is {}", instance.id, instance.status.kind()),
                        "it is already finished",
                    ));
                }
            }
            let effects = cancel_in_flight(instance, None, &format!("cancelled by {by}"));
            instance.status = InstanceStatus::Cancelled {
                by: by.clone(),
                reason: reason.clone(),
                at,
            };
            effects
        }
        Event::Redriven { tasks, .. } => {
            match &instance.status {
                InstanceStatus::Failed { .. } => {}
                InstanceStatus::Running
                | InstanceStatus::Halted { .. }
                | InstanceStatus::Completed { .. }
                | InstanceStatus::Cancelled { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!(
                            "instance {} is {}",
                            instance.id,
                            instance.effective_status()
                        ),
                        "only a failed instance can be redriven",
                    ));
                }
            }
            if tasks.is_empty() {
                return Err(Rejected::new(
                    event,
                    format!("instance {} has no failed task", instance.id),
                    "there is nothing to retry",
                ));
            }
            let mut positions = Vec::with_capacity(tasks.len());
            for task in tasks {
                let Some((p, t)) = workflow.task_location(task) else {
                    return Err(Rejected::new(
                        event,
                        format!("workflow `{}` has no task `{task}`", workflow.name),
                        "unknown task",
                    ));
                };
                let state = &instance.phases[p].tasks[t];
                match &state.status {
                    TaskStatus::Failed { .. } | TaskStatus::Cancelled { .. } => {
                        positions.push((p, t))
                    }
                    TaskStatus::Pending
                    | TaskStatus::Dispatched { .. }
                    | TaskStatus::Succeeded { .. }
                    | TaskStatus::RetryWaiting { .. }
                    | TaskStatus::Skipped { .. } => {
                        return Err(Rejected::new(
                            event,
                            format!("task {task} is {}", state.status.kind()),
                            "only a failed or cancelled task can be retried",
                        ));
                    }
                }
            }
            for (p, t) in positions {
                let state = &mut instance.phases[p].tasks[t];
                state.budget_from = state.attempts;
                state.status = TaskStatus::Pending;
            }
            for phase in &mut instance.phases {
                if matches!(phase.status, PhaseStatus::Failed { .. }) {
                    phase.status = PhaseStatus::Running { since: at };
                }
            }
            instance.status = InstanceStatus::Running;
            Vec::new()
        }
    };
    instance.updated_at = at;
    Ok(effects)
}

/// Rebuilds an instance from its whole log (the first record must be
/// `InstanceStarted`). Used to check snapshots and by tests; the runtime loads
/// from a snapshot plus the events after it.
pub fn replay(id: &str, workflow: &Workflow, records: &[Record]) -> Result<Instance, Rejected> {
    let mut records = records.iter();
    let Some(first) = records.next() else {
        return Err(Rejected {
            event: "(nothing)".to_owned(),
            state: format!("instance {id} has no events"),
            reason: "a log starts with InstanceStarted".to_owned(),
        });
    };
    let mut instance = start(id, workflow, first.event(), first.at())?;
    instance.seq = first.seq();
    for record in records {
        step(&mut instance, workflow, record.event(), record.at())?;
        instance.seq = record.seq();
    }
    Ok(instance)
}

/// Creates an instance from its `InstanceStarted` event.
pub(crate) fn start(
    id: &str,
    workflow: &Workflow,
    event: &Event,
    at: Timestamp,
) -> Result<Instance, Rejected> {
    match event {
        Event::InstanceStarted {
            workflow: name,
            definition_hash,
            vars,
            started_by,
        } => {
            if name != &workflow.name {
                return Err(Rejected::new(
                    event,
                    format!("the pinned definition is workflow `{}`", workflow.name),
                    format!("the event names workflow `{name}`"),
                ));
            }
            Ok(Instance::new(
                id,
                workflow,
                definition_hash,
                vars.clone(),
                started_by,
                at,
            ))
        }
        other => Err(Rejected::new(
            other,
            format!("instance {id} has not started"),
            "a log starts with InstanceStarted",
        )),
    }
}

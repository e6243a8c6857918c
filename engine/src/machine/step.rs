//! `step`: applies one event to an instance.
//!
//! Every handler checks first and mutates after, so a [`Rejected`] event
//! leaves the state exactly as it was (a property test holds it to that).
//! Conceptually `step` is `(state, event, now) -> Result<(state, effects),
//! Rejected>`; it mutates in place because copying a thousand-task state for
//! every event would make long workflows quadratic.

use super::gate::{self, Decision, DecisionKind, GateState, GateStatus};
use super::guards::{cancel_in_flight, phase_index, Effect};
use super::react::{self, phase_active};
use super::{Event, Instance, InstanceStatus, PhaseStatus, Record, RejectKind, Rejected, TaskStatus, Timestamp, WatchState};
use crate::model::OnTimeout;
use crate::plan::TriggerOn;

use crate::plan::Workflow;

/// A notification effect when the gate's approval asks for one.
fn notify(workflow: &Workflow, p: usize, g: usize, what: &str, status: &GateStatus) -> Vec<Effect> {
    let wants = workflow.phases[p].gates[g].approval.as_ref().is_some_and(|a| a.notify.is_some());
    let relevant = matches!(
        status,
        GateStatus::AwaitingDecision { .. } | GateStatus::OnHold { .. } | GateStatus::Failed { .. } | GateStatus::Passed { .. }
    );
    if wants && relevant {
        vec![Effect::Notify { phase: p, gate: g, what: what.to_owned() }]
    } else {
        Vec::new()
    }
}

pub(super) fn task_index(workflow: &Workflow, event: &Event, phase: &str, task: &str) -> Result<(usize, usize), Rejected> {
    let p = phase_index(workflow, event, phase)?;
    match workflow.task_location(task) {
        Some((tp, t)) if tp == p => Ok((p, t)),
        _ => Err(Rejected::of(RejectKind::Unknown, event, format!("phase `{phase}` has no task `{task}`"), "unknown task")),
    }
}

pub(super) fn require_running(instance: &Instance, event: &Event) -> Result<(), Rejected> {
    match &instance.status {
        InstanceStatus::Running => Ok(()),
        InstanceStatus::Halted { .. }
        | InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::AwaitingDecision { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. } => Err(Rejected::new(
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
        | PhaseStatus::OnHold { .. }
        | PhaseStatus::Passed { .. }
        | PhaseStatus::Failed { .. } => Err(Rejected::of(
            RejectKind::Unknown,
            event,
            format!("phase {} is {}", phase.id, phase.status.kind()),
            "the phase is not running",
        )),
    }
}

fn gate_index(workflow: &Workflow, event: &Event, p: usize, id: &str) -> Result<usize, Rejected> {
    workflow.phases[p]
        .gates
        .iter()
        .position(|g| g.id == id)
        .ok_or_else(|| Rejected::new(event, format!("phase `{}` has no gate `{id}`", workflow.phases[p].id), "unknown gate"))
}

/// The level and approvals of a gate awaiting a decision, or a rejection
/// saying who already decided it.
fn awaiting<'s>(state: &'s GateState, event: &Event) -> Result<(usize, &'s [String]), Rejected> {
    match &state.status {
        GateStatus::AwaitingDecision { level, approvals, .. } => Ok((*level, approvals)),
        GateStatus::Pending => {
            Err(Rejected::new(event, format!("gate {} has not been evaluated yet", state.id), "it is not awaiting a decision"))
        }
        GateStatus::OnHold { .. } | GateStatus::Passed { .. } | GateStatus::Failed { .. } => {
            let decided = match state.settling_decision() {
                Some((at, decision)) => format!("gate {} was already {} by {} at {at}", state.id, decision.kind.past(), decision.principal),
                None => format!("gate {} is already {}", state.id, state.status.kind()),
            };
            Err(Rejected::new(event, decided, "it is not awaiting a decision"))
        }
    }
}

fn awaiting_status(state: &GateState, approvals: Vec<String>) -> GateStatus {
    match &state.status {
        GateStatus::AwaitingDecision { since, level, deadline, .. } => {
            GateStatus::AwaitingDecision { since: *since, level: *level, deadline: *deadline, approvals }
        }
        other => other.clone(),
    }
}

pub(super) fn rejection(decision: &Decision) -> String {
    if decision.comment.is_empty() {
        format!("rejected by {}", decision.principal)
    } else {
        format!("rejected by {}: {}", decision.principal, decision.comment)
    }
}

/// A phase whose tasks are done reflects its gates: on hold if one is, waiting
/// if one awaits a decision, running otherwise (decide then completes or
/// fails it).
pub(super) fn settle_phase(phase: &mut super::PhaseState, at: Timestamp) {
    let held = phase.gates.iter().any(|g| matches!(g.status, GateStatus::OnHold { .. }));
    let waiting = phase.gates.iter().any(|g| matches!(g.status, GateStatus::AwaitingDecision { .. }));
    let since = match phase.status {
        PhaseStatus::Running { since } | PhaseStatus::AwaitingApproval { since } | PhaseStatus::OnHold { since } => since,
        PhaseStatus::Pending | PhaseStatus::Passed { .. } | PhaseStatus::Failed { .. } => return,
    };
    phase.status = match (held, waiting) {
        (true, _) => PhaseStatus::OnHold { since: if matches!(phase.status, PhaseStatus::OnHold { .. }) { since } else { at } },
        (false, true) => {
            PhaseStatus::AwaitingApproval { since: if matches!(phase.status, PhaseStatus::AwaitingApproval { .. }) { since } else { at } }
        }
        (false, false) => PhaseStatus::Running { since: at },
    };
}

/// After a gate's status changed: a failed gate queues the phase's
/// `gate_failed` triggers; a passed gate keeps the evidence its criteria
/// compare with as its baseline for the next cycle.
fn gate_settled(instance: &mut Instance, workflow: &Workflow, p: usize, g: usize, at: Timestamp) {
    if matches!(instance.phases[p].gates[g].status, GateStatus::Passed { .. }) {
        react::record_baseline(instance, workflow, p, g, at);
    }
    if let GateStatus::Failed { reason, .. } = &instance.phases[p].gates[g].status {
        let cause = format!("gate {} failed: {reason}", instance.phases[p].gates[g].id);
        react::queue(instance, workflow, Some(p), |on| matches!(on, TriggerOn::GateFailed(which) if which.is_none_or(|w| w == g)), &cause);
    }
}

/// The tasks of a phase that must finish before it can complete (on-demand
/// tasks only count once started).
pub(super) fn phase_tasks_done(instance: &Instance, workflow: &Workflow, p: usize) -> bool {
    instance.phases[p]
        .tasks
        .iter()
        .zip(&workflow.phases[p].tasks)
        .all(|(state, task)| state.status.is_done() || (task.on_demand && !state.requested && matches!(state.status, TaskStatus::Pending)))
}

/// Applies `event` (which happened at `at`) to `instance`.
pub fn step(instance: &mut Instance, workflow: &Workflow, event: &Event, at: Timestamp) -> Result<Vec<Effect>, Rejected> {
    // One exhaustive dispatcher: every event is named here, and reactions
    // (watches, triggers, rollback, schedules) go to their handlers in react.rs.
    let effects = match event {
        Event::InstanceStarted { .. } => {
            return Err(Rejected::new(event, format!("instance {} already started", instance.id), "an instance starts once"));
        }
        Event::PhaseStarted { phase, attempt } => {
            require_running(instance, event)?;
            let p = phase_index(workflow, event, phase)?;
            let state = &instance.phases[p];
            match &state.status {
                PhaseStatus::Pending => {}
                PhaseStatus::Running { .. }
                | PhaseStatus::AwaitingApproval { .. }
                | PhaseStatus::OnHold { .. }
                | PhaseStatus::Passed { .. }
                | PhaseStatus::Failed { .. } => {
                    return Err(Rejected::new(event, format!("phase {phase} is {}", state.status.kind()), "only a pending phase starts"));
                }
            }
            if *attempt != state.attempt + 1 {
                return Err(Rejected::new(event, format!("phase {phase} is at attempt {}", state.attempt), "attempts count up by one"));
            }
            if let Some(&blocking) =
                workflow.phases[p].after.iter().find(|&&u| !matches!(instance.phases[u].status, PhaseStatus::Passed { .. }))
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
                task.requested = false;
            }
            for gate in &mut state.gates {
                *gate = GateState::new(&gate.id);
            }
            for watch in &mut state.watches {
                *watch = WatchState::new(&watch.id);
            }
            react::journal(instance, workflow, p, None);
            Vec::new()
        }

        Event::TaskDispatched { phase, task, attempt, key } => {
            require_running(instance, event)?;
            let (p, t) = task_index(workflow, event, phase, task)?;
            // An on-demand task a trigger asked for also runs beside a gate awaiting a decision.
            let on_demand = instance.phases[p].tasks[t].requested && phase_active(&instance.phases[p].status);
            if !on_demand {
                require_phase_running(instance, event, p)?;
            }
            let state = &instance.phases[p].tasks[t];
            let fresh = *attempt == state.attempts + 1;

            let allowed = match &state.status {
                TaskStatus::Pending => {
                    fresh && workflow.phases[p].tasks[t].depends_on.iter().all(|&d| instance.phases[p].tasks[d].status.is_done())
                }
                TaskStatus::RetryWaiting { attempt: due_attempt, .. } => due_attempt == attempt && fresh,
                TaskStatus::Cancelled { .. } => fresh,
                TaskStatus::Dispatched { .. } | TaskStatus::Succeeded { .. } | TaskStatus::Failed { .. } | TaskStatus::Skipped { .. } => {
                    false
                }
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
            state.status = TaskStatus::Dispatched { attempt: *attempt, key: key.clone(), at };
            vec![Effect::Dispatch { phase: p, task: t, attempt: *attempt, key: key.clone() }]
        }
        Event::TaskSucceeded { phase, task, attempt, .. }
        | Event::TaskFailed { phase, task, attempt, .. }
        | Event::TaskCancelled { phase, task, attempt, .. } => {
            // Results of in-flight attempts are accepted whatever the instance
            // status: the work happened, and the log must say so.
            let (p, t) = task_index(workflow, event, phase, task)?;
            let state = &instance.phases[p].tasks[t];
            match &state.status {
                TaskStatus::Dispatched { attempt: running, .. } if running == attempt => {}
                TaskStatus::Dispatched { .. }
                | TaskStatus::Pending
                | TaskStatus::Succeeded { .. }
                | TaskStatus::Failed { .. }
                | TaskStatus::RetryWaiting { .. }
                | TaskStatus::Skipped { .. }
                | TaskStatus::Cancelled { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("task {task} is {} (attempt {})", state.status.kind(), state.attempts),
                        format!("no attempt {attempt} of it is in flight"),
                    ));
                }
            }
            let state = &mut instance.phases[p].tasks[t];
            state.status = match event {
                Event::TaskSucceeded { output, duration_ms, .. } => {
                    TaskStatus::Succeeded { attempt: *attempt, output: output.clone(), duration_ms: *duration_ms, at }
                }
                Event::TaskFailed { error, retryable, .. } => {
                    TaskStatus::Failed { attempt: *attempt, error: error.clone(), retryable: *retryable, at }
                }
                _ => TaskStatus::Cancelled { attempt: *attempt, at },
            };
            match event {
                Event::TaskSucceeded { .. } => react::journal(instance, workflow, p, Some(t)),
                Event::TaskFailed { error, .. }
                    if !instance.phases[p].tasks[t].may_retry(workflow.phases[p].tasks[t].retry.max_attempts) =>
                {
                    let cause = format!("task {task} failed for good: {error}");
                    react::queue(
                        instance,
                        workflow,
                        Some(p),
                        |on| matches!(on, TriggerOn::TaskFailed(which) if which.is_none_or(|w| w == t)),
                        &cause,
                    );
                }
                _ => {}
            }
            Vec::new()
        }
        Event::RetryScheduled { phase, task, attempt, due } => {
            require_running(instance, event)?;
            let (p, t) = task_index(workflow, event, phase, task)?;
            let state = &instance.phases[p].tasks[t];
            let policy = &workflow.phases[p].tasks[t].retry;
            let error = match &state.status {
                TaskStatus::Failed { attempt: failed, error, .. } if *attempt == failed + 1 && state.may_retry(policy.max_attempts) => {
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
                        format!("task {task} is {} after {} attempt(s)", state.status.kind(), state.attempts),
                        format!("only a retryable failure within max_attempts = {} is retried", policy.max_attempts),
                    ));
                }
            };
            instance.phases[p].tasks[t].status = TaskStatus::RetryWaiting { attempt: *attempt, due: *due, error };
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
                    return Err(Rejected::new(event, format!("task {task} is {}", state.status.kind()), "only a pending task is skipped"));
                }
            }
            let reason = match event {
                Event::TaskSkipped { reason, .. } => reason.clone(),
                _ => String::new(),
            };
            instance.phases[p].tasks[t].status = TaskStatus::Skipped { reason };
            Vec::new()
        }
        Event::PhaseCompleted { phase } => {
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
                .is_none_or(|when| when.evaluate(&super::evidence(instance)) == crate::expr::Outcome::True);
            instance.phases[p].next_cycle =
                workflow.phases[p].schedule.as_ref().filter(|_| repeat).and_then(|schedule| schedule.next_after(at.0)).map(Timestamp);
            Vec::new()
        }
        Event::GateEvaluated { phase, gate, evaluation } => {
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
                    return Err(Rejected::new(
                        event,
                        format!("gate {gate} is {}", state.status.kind()),
                        "only a pending gate is evaluated",
                    ));
                }
            }
            if let Some(before) = instance.phases[p].gates[..g].iter().find(|x| !matches!(x.status, GateStatus::Passed { .. })) {
                return Err(Rejected::new(
                    event,
                    format!("gate {} is {}", before.id, before.status.kind()),
                    "gates are evaluated in order",
                ));
            }
            let plan = &workflow.phases[p].gates[g];
            let band = evaluation.score.map(|score| score.band);
            let status = if let Some(failed) = evaluation.failed_must() {
                let detail = if failed.detail.is_empty() { String::new() } else { format!(": {}", failed.detail) };
                GateStatus::Failed { at, reason: format!("must criterion {} ({}) failed{detail}", failed.id, failed.label) }
            } else if let (Some(gate::Band::Fail), Some(score)) = (band, evaluation.score) {
                GateStatus::Failed { at, reason: format!("score {}% is below the warning band ({}%)", score.percent, score.bands.warning) }
            } else if plan.approval.is_some() || evaluation.inconclusive() || band == Some(gate::Band::Warning) {
                match gate::authority(plan, workflow.phases[p].owner.as_ref(), 0) {
                    Some(authority) => GateStatus::AwaitingDecision {
                        since: at,
                        level: 0,
                        deadline: authority.timeout.map(|t| at.after(t)),
                        approvals: Vec::new(),
                    },
                    // Evidence is missing and nobody is named to judge it:
                    // fail closed rather than pass silently.
                    None => GateStatus::Failed {
                        at,
                        reason: format!("evidence is missing and neither gate {gate} nor phase {phase} names anyone to judge it (add an approval or a phase owner)"),
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
            settle_phase(&mut instance.phases[p], at);
            gate_settled(instance, workflow, p, g, at);
            effects
        }
        Event::DecisionRecorded { phase, gate, decision } => {
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
            let p = phase_index(workflow, event, phase)?;
            let g = gate_index(workflow, event, p, gate)?;
            let plan = &workflow.phases[p].gates[g];
            let state = &instance.phases[p].gates[g];
            let (level, approvals) = awaiting(state, event)?;
            let owner = workflow.phases[p].owner.as_ref();
            let subject = format!("gate {gate}");
            let (authority, next_level) =
                gate::check_decision(event, &subject, plan.approval.as_ref(), owner, level, approvals, decision, instance)?;
            let mut approvals = approvals.to_vec();
            let status = match decision.kind {
                DecisionKind::Approve => {
                    approvals.push(decision.principal.clone());
                    if approvals.len() >= authority.required as usize {
                        GateStatus::Passed { at, by: approvals }
                    } else {
                        awaiting_status(state, approvals)
                    }
                }
                DecisionKind::Reject => GateStatus::Failed { at, reason: rejection(decision) },
                DecisionKind::Hold => GateStatus::OnHold { since: at, by: decision.principal.clone() },
                DecisionKind::Escalate => {
                    let timeout = next_level.and_then(|l| l.timeout);
                    GateStatus::AwaitingDecision {
                        since: at,
                        level: level + 1,
                        deadline: timeout.map(|t| at.after(t)),
                        approvals: Vec::new(),
                    }
                }
            };
            let state = &mut instance.phases[p].gates[g];
            let effects = if decision.kind == DecisionKind::Escalate { notify(workflow, p, g, "escalated", &status) } else { Vec::new() };
            state.decisions.push((at, decision.clone()));
            state.status = status;
            settle_phase(&mut instance.phases[p], at);
            gate_settled(instance, workflow, p, g, at);
            effects
        }
        Event::GateTimedOut { phase, gate, level, action } => {
            require_running(instance, event)?;
            let p = phase_index(workflow, event, phase)?;
            let g = gate_index(workflow, event, p, gate)?;
            let plan = &workflow.phases[p].gates[g];
            let state = &instance.phases[p].gates[g];
            let (current, approvals) = awaiting(state, event)?;
            let deadline = match &state.status {
                GateStatus::AwaitingDecision { deadline, .. } => *deadline,
                _ => None,
            };
            if current != *level || deadline.is_none_or(|d| d > at) {
                return Err(Rejected::new(
                    event,
                    format!("gate {gate} is at level {current}, deadline {deadline:?}"),
                    "the deadline has not passed at that level",
                ));
            }
            let declared = plan.approval.as_ref().and_then(|a| a.on_timeout);
            if declared != Some(*action) {
                return Err(Rejected::new(
                    event,
                    format!("gate {gate} declares on_timeout {declared:?}"),
                    "the action must be the declared one",
                ));
            }
            let owner = workflow.phases[p].owner.as_ref();
            let status = match action {
                OnTimeout::Approve => GateStatus::Passed { at, by: approvals.to_vec() },
                OnTimeout::Reject => {
                    GateStatus::Failed { at, reason: format!("no decision before the deadline of level {level}; on_timeout = reject") }
                }
                OnTimeout::Hold => GateStatus::OnHold { since: at, by: "phasegate".to_owned() },
                OnTimeout::Escalate => match gate::authority(plan, owner, level + 1) {
                    Some(next) => GateStatus::AwaitingDecision {
                        since: at,
                        level: level + 1,
                        deadline: next.timeout.map(|t| at.after(t)),
                        approvals: Vec::new(),
                    },
                    None => {
                        GateStatus::Failed { at, reason: format!("no decision by the deadline of the last escalation level ({level})") }
                    }
                },
            };
            let what = format!(
                "timed_out: {}",
                match action {
                    OnTimeout::Escalate => "escalate",
                    OnTimeout::Reject => "reject",
                    OnTimeout::Hold => "hold",
                    OnTimeout::Approve => "approve",
                }
            );
            let effects = notify(workflow, p, g, &what, &status);
            let state = &mut instance.phases[p].gates[g];
            state.status = status;
            settle_phase(&mut instance.phases[p], at);
            gate_settled(instance, workflow, p, g, at);
            effects
        }
        Event::PhaseFailed { phase, reason } => {
            require_running(instance, event)?;
            let p = phase_index(workflow, event, phase)?;
            require_phase_running(instance, event, p)?;
            let effects = cancel_in_flight(instance, Some(p), &format!("phase {phase} failed"));
            instance.phases[p].status = PhaseStatus::Failed { reason: reason.clone(), at };
            effects
        }
        Event::InstanceCompleted => {
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
            Vec::new()
        }
        Event::InstanceFailed { reason } => {
            require_running(instance, event)?;
            if !instance.phases.iter().any(|p| matches!(p.status, PhaseStatus::Failed { .. })) {
                return Err(Rejected::new(event, "no phase has failed", "an instance fails when a phase failed"));
            }
            let effects = cancel_in_flight(instance, None, "the instance failed");
            instance.status = InstanceStatus::Failed { reason: reason.clone(), at };
            effects
        }
        Event::Halted { by, reason, cancel_running } => {
            match &instance.status {
                InstanceStatus::Running | InstanceStatus::RollingBack { .. } => {}
                InstanceStatus::Halted { by: halted_by, at: halted_at, .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("instance {} was halted by {halted_by} at {halted_at}", instance.id),
                        "it is already halted",
                    ));
                }
                InstanceStatus::Completed { .. }
                | InstanceStatus::Failed { .. }
                | InstanceStatus::Cancelled { .. }
                | InstanceStatus::AwaitingDecision { .. }
                | InstanceStatus::RolledBack { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("instance {} is {}", instance.id, instance.status.kind()),
                        "only a running or rolling-back instance can be halted",
                    ));
                }
            }
            let effects = if *cancel_running { cancel_in_flight(instance, None, &format!("halted by {by}")) } else { Vec::new() };
            instance.status = InstanceStatus::Halted { by: by.clone(), reason: reason.clone(), cancel_running: *cancel_running, at };
            effects
        }
        Event::Resumed { .. } => {
            match &instance.status {
                InstanceStatus::Halted { .. } => {}
                InstanceStatus::Running
                | InstanceStatus::Completed { .. }
                | InstanceStatus::Failed { .. }
                | InstanceStatus::Cancelled { .. }
                | InstanceStatus::AwaitingDecision { .. }
                | InstanceStatus::RollingBack { .. }
                | InstanceStatus::RolledBack { .. } => {
                    let hint = match &instance.status {
                        InstanceStatus::Failed { .. } => "a failed instance is redriven with `retry`",
                        InstanceStatus::AwaitingDecision { .. } => "it awaits a decision: approve or reject it",
                        _ => "only a halted instance can be resumed",
                    };
                    return Err(Rejected::new(event, format!("instance {} is {}", instance.id, instance.effective_status()), hint));
                }
            }
            match instance.rollback.as_mut() {
                // A rollback halted part-way goes on; compensations that
                // failed for good get a fresh retry budget.
                Some(rollback) => {
                    for step in &mut rollback.steps {
                        if matches!(step.state.status, TaskStatus::Failed { .. } | TaskStatus::Cancelled { .. }) {
                            step.state.budget_from = step.state.attempts;
                            step.state.status = TaskStatus::Pending;
                        }
                    }
                    instance.status = InstanceStatus::RollingBack { since: at };
                }
                None => instance.status = InstanceStatus::Running,
            }
            Vec::new()
        }
        Event::Cancelled { by, reason } => {
            match &instance.status {
                InstanceStatus::Running
                | InstanceStatus::Halted { .. }
                | InstanceStatus::Failed { .. }
                | InstanceStatus::AwaitingDecision { .. }
                | InstanceStatus::RollingBack { .. } => {}
                InstanceStatus::Completed { .. } | InstanceStatus::Cancelled { .. } | InstanceStatus::RolledBack { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("instance {} is {}", instance.id, instance.status.kind()),
                        "it is already finished",
                    ));
                }
            }
            let mut effects = cancel_in_flight(instance, None, &format!("cancelled by {by}"));
            if let Some((_, _, key)) = instance.compensation_in_flight() {
                effects.push(Effect::Cancel { key, reason: format!("cancelled by {by}") });
            }
            instance.status = InstanceStatus::Cancelled { by: by.clone(), reason: reason.clone(), at };
            effects
        }
        Event::Redriven { tasks, .. } => {
            let held: Vec<usize> = instance
                .phases
                .iter()
                .enumerate()
                .filter(|(_, p)| matches!(p.status, PhaseStatus::OnHold { .. }))
                .map(|(p, _)| p)
                .collect();
            let remediation = match &instance.status {
                InstanceStatus::Failed { .. } => false,
                InstanceStatus::Running | InstanceStatus::Halted { .. } if !held.is_empty() => true,
                InstanceStatus::Running
                | InstanceStatus::Halted { .. }
                | InstanceStatus::Completed { .. }
                | InstanceStatus::Cancelled { .. }
                | InstanceStatus::AwaitingDecision { .. }
                | InstanceStatus::RollingBack { .. }
                | InstanceStatus::RolledBack { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("instance {} is {}", instance.id, instance.effective_status()),
                        "only a failed instance, or one with a phase on hold, can be redriven",
                    ));
                }
            };
            if tasks.is_empty() && !remediation {
                return Err(Rejected::new(event, format!("instance {} has no failed task", instance.id), "there is nothing to retry"));
            }
            let mut positions = Vec::with_capacity(tasks.len());
            for task in tasks {
                let Some((p, t)) = workflow.task_location(task) else {
                    return Err(Rejected::of(
                        RejectKind::Unknown,
                        event,
                        format!("workflow `{}` has no task `{task}`", workflow.name),
                        "unknown task",
                    ));
                };
                let state = &instance.phases[p].tasks[t];
                let allowed = if remediation {
                    held.contains(&p) && !matches!(state.status, TaskStatus::Dispatched { .. })
                } else {
                    matches!(state.status, TaskStatus::Failed { .. } | TaskStatus::Cancelled { .. })
                };
                if !allowed {
                    let reason = if remediation {
                        format!(
                            "while a phase is on hold, only its tasks can be re-run (on hold: {})",
                            held.iter().map(|&h| instance.phases[h].id.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    } else {
                        "only a failed or cancelled task can be retried".to_owned()
                    };
                    return Err(Rejected::new(
                        event,
                        format!("task {task} is {} in phase {}", state.status.kind(), instance.phases[p].id),
                        reason,
                    ));
                }
                positions.push((p, t));
            }
            // Re-running a task invalidates what was built on it: the tasks
            // downstream of it in its phase run again too (Airflow's "clear
            // downstream"), so no task stays succeeded on stale inputs.
            let mut index = 0;
            while index < positions.len() {
                let (p, t) = positions[index];
                for (d, def) in workflow.phases[p].tasks.iter().enumerate() {
                    if def.depends_on.contains(&t) && !positions.contains(&(p, d)) {
                        if matches!(instance.phases[p].tasks[d].status, TaskStatus::Dispatched { .. }) {
                            return Err(Rejected::new(
                                event,
                                format!("task {} is running in phase {}", instance.phases[p].tasks[d].id, instance.phases[p].id),
                                "wait for it to finish before re-running what it depends on",
                            ));
                        }
                        if !matches!(instance.phases[p].tasks[d].status, TaskStatus::Pending) {
                            positions.push((p, d));
                        }
                    }
                }
                index += 1;
            }
            for (p, t) in positions {
                let state = &mut instance.phases[p].tasks[t];
                state.budget_from = state.attempts;
                state.status = TaskStatus::Pending;
            }
            for phase in &mut instance.phases {
                match phase.status {
                    PhaseStatus::Failed { .. } if !remediation => phase.status = PhaseStatus::Running { since: at },
                    PhaseStatus::OnHold { .. } if remediation => {
                        // The gates are evaluated again once the re-run tasks are done.
                        for gate in &mut phase.gates {
                            gate.status = GateStatus::Pending;
                        }
                        phase.status = PhaseStatus::Running { since: at };
                    }
                    _ => {}
                }
            }
            if !remediation {
                instance.status = InstanceStatus::Running;
            }
            Vec::new()
        }
        Event::SignalReceived { name, data, .. } => {
            match &instance.status {
                InstanceStatus::Running
                | InstanceStatus::Halted { .. }
                | InstanceStatus::AwaitingDecision { .. }
                | InstanceStatus::RollingBack { .. } => {}
                InstanceStatus::Completed { .. }
                | InstanceStatus::Failed { .. }
                | InstanceStatus::Cancelled { .. }
                | InstanceStatus::RolledBack { .. } => {
                    return Err(Rejected::new(
                        event,
                        format!("instance {} is {}", instance.id, instance.status.kind()),
                        "signals go to instances that have not finished",
                    ));
                }
            }

            if !workflow.signals.contains_key(name) {
                let declared: Vec<&str> = workflow.signals.keys().map(String::as_str).collect();
                return Err(Rejected::new(
                    event,
                    format!("workflow `{}` declares no signal `{name}`", workflow.name),
                    format!("declared signals: {}", if declared.is_empty() { "none".to_owned() } else { declared.join(", ") }),
                ));
            }
            instance.signals.insert(name.clone(), data.clone());
            let count = instance.signal_counts.entry(name.clone()).or_insert(0);
            *count += 1;
            let cause = format!("signal {name} #{count}: {data}");
            react::queue(instance, workflow, None, |on| matches!(on, TriggerOn::Signal(signal) if signal == name), &cause);
            Vec::new()
        }

        Event::WatchSampled { phase, watch, value, verdict, detail } => {
            react::watch_sampled(instance, workflow, event, phase, watch, *value, *verdict, detail, at)?
        }
        Event::WatchInconclusive { phase, watch, .. } => react::watch_inconclusive(instance, workflow, event, phase, watch, at)?,
        Event::TriggerFired { phase, trigger, cause } => react::trigger_fired(instance, workflow, event, phase, trigger, cause, at)?,
        Event::TriggerSkipped { phase, trigger, .. } => react::trigger_skipped(instance, workflow, event, phase, trigger)?,
        Event::TriggerDecided { phase, trigger, decision } => {
            react::trigger_decided(instance, workflow, event, phase, trigger, decision, at)?
        }
        Event::TriggerTimedOut { phase, trigger, level, action } => {
            react::trigger_timed_out(instance, workflow, event, phase, trigger, *level, *action, at)?
        }
        Event::RollbackStarted { by, reason, to } => react::rollback_started(instance, workflow, event, by, reason, to.as_deref(), at)?,
        Event::CompensationDispatched { step, id, attempt, key } => {
            react::compensation_dispatched(instance, event, *step, id, *attempt, key, at)?
        }
        Event::CompensationSucceeded { step, id, attempt, .. } | Event::CompensationFailed { step, id, attempt, .. } => {
            react::compensation_result(instance, event, *step, id, *attempt, at)?
        }
        Event::CompensationRetryScheduled { step, id, attempt, due } => {
            react::compensation_retry(instance, workflow, event, *step, id, *attempt, *due)?
        }
        Event::RollbackCompleted => react::rollback_completed(instance, workflow, event, at)?,
        Event::ScheduleFired { phase } => react::schedule_fired(instance, workflow, event, phase, at)?,
        Event::BaselinesLoaded { baselines } => react::baselines_loaded(instance, event, baselines)?,
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
            kind: RejectKind::WrongState,
            action: "replay".to_owned(),
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
pub(crate) fn start(id: &str, workflow: &Workflow, event: &Event, at: Timestamp) -> Result<Instance, Rejected> {
    match event {
        Event::InstanceStarted { workflow: name, definition_hash, vars, started_by } => {
            if name != &workflow.name {
                return Err(Rejected::new(
                    event,
                    format!("the pinned definition is workflow `{}`", workflow.name),
                    format!("the event names workflow `{name}`"),
                ));
            }
            Ok(Instance::new(id, workflow, definition_hash, vars.clone(), started_by, at))
        }
        other => Err(Rejected::new(other, format!("instance {id} has not started"), "a log starts with InstanceStarted")),
    }
}

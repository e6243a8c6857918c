//! `decide`: what should happen next to an instance, as events.

use super::handlers::rollback::compensation_step;
use super::live::deadlines;
use super::payload;
use super::state::reaction_live;
use super::{evidence, Evaluation, Event, GateStatus, Instance, InstanceStatus, PendingTrigger, PhaseStatus, TaskStatus, Timestamp};
use crate::expr::Outcome;
use crate::model::DeadlineOutcome;
use crate::plan::{format_duration, Action, Workflow};

/// The events that should happen now, and when to look again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Next {
    /// Events to append, in order; each is legal once the previous ones are applied.
    pub events: Vec<Event>,
    /// The earliest future time something becomes due (a retry), if any.
    pub wake_at: Option<Timestamp>,
}

impl Next {
    /// Something falls due at `due`: look again then at the latest.
    fn wake_no_later_than(&mut self, due: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(due, |w| w.min(due)));
    }
}

/// The idempotency key of a task attempt: stable across re-dispatch after a
/// crash, different for every attempt and every phase attempt.
pub fn idempotency_key(instance: &str, phase: &str, phase_attempt: u32, task: &str, attempt: u32) -> String {
    format!("{instance}/{phase}.{phase_attempt}/{task}/{attempt}")
}

/// A number in [0, 1) derived from a key: the jitter of a retry delay. It is
/// a hash rather than a random draw so that `decide` stays a pure function
/// while retries of different tasks and instances still spread apart.
fn jitter_unit(key: &str) -> f64 {
    // FNV-1a, 64-bit.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// The idempotency key of a compensation attempt.
pub fn compensation_key(instance: &str, rollback: u32, step: usize, id: &str, attempt: u32) -> String {
    format!("{instance}/rollback.{rollback}/{step}-{id}/{attempt}")
}

/// Decides what should happen next. A running instance moves on its own; a
/// rolling-back one runs its compensations; one awaiting a trigger decision
/// only reacts to triggers and deadlines; halted, failed and finished ones
/// wait for an operator.
pub fn decide(instance: &Instance, workflow: &Workflow, now: Timestamp) -> Next {
    let mut next = Next::default();
    match &instance.status {
        InstanceStatus::Running | InstanceStatus::AwaitingDecision { .. } => {}
        InstanceStatus::RollingBack { .. } => {
            decide_rollback(instance, workflow, now, &mut next);
            return next;
        }
        InstanceStatus::Halted { .. }
        | InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RolledBack { .. } => {
            return next;
        }
    }
    // Triggers first: a task that failed for good may loop back rather than fail its phase.
    if let Some(pending) = instance.pending_triggers.first() {
        next.events.push(decide_trigger(instance, workflow, pending));
        return next;
    }
    if matches!(instance.status, InstanceStatus::Running) {
        for (p, phase) in instance.phases.iter().enumerate() {
            let live = |w: usize| reaction_live(instance, p, workflow.phases[p].watches.get(w).and_then(|plan| plan.span.as_ref()));
            let halting = phase.watches.iter().enumerate().find(|(w, watch)| watch.no_data_reason.is_some() && live(*w));
            if let Some((_, watch)) = halting {
                next.events.push(Event::WatchInconclusive(payload::WatchInconclusive {
                    phase: phase.id.clone(),
                    watch: watch.id.clone(),
                    reason: watch.no_data_reason.clone().unwrap_or_default(),
                }));
                return next;
            }
        }
    }
    if matches!(instance.status, InstanceStatus::Running) {
        if let Some(passed) = deadline_due(instance, workflow, now, &mut next) {
            next.events.push(passed);
            return next;
        }
    }
    if let InstanceStatus::AwaitingDecision { phase, trigger, approval, .. } = &instance.status {
        if let GateStatus::AwaitingDecision { level, deadline: Some(deadline), .. } = &approval.status {
            let on_timeout = workflow.trigger(phase, trigger).and_then(|(_, t)| match &t.action {
                Action::HaltForApproval { approval, .. } => approval.on_timeout_at(*level),
                _ => None,
            });
            match on_timeout {
                Some(action) if *deadline <= now => next.events.push(Event::TriggerTimedOut(payload::TriggerTimedOut {
                    phase: phase.clone(),
                    trigger: trigger.clone(),
                    level: *level,
                    action,
                })),
                Some(_) => next.wake_at = Some(*deadline),
                None => {}
            }
        }
        return next;
    }
    let failed = instance.phases.iter().find_map(|p| match &p.status {
        PhaseStatus::Failed { reason, .. } => Some(format!("phase {} failed: {reason}", p.id)),
        PhaseStatus::Pending
        | PhaseStatus::Running { .. }
        | PhaseStatus::AwaitingApproval { .. }
        | PhaseStatus::OnHold { .. }
        | PhaseStatus::Passed { .. } => None,
    });
    if let Some(reason) = failed {
        next.events.push(Event::InstanceFailed(payload::InstanceFailed { reason }));
        return next;
    }
    if instance.phases.iter().all(|p| matches!(p.status, PhaseStatus::Passed { .. } if p.next_cycle.is_none())) {
        next.events.push(Event::InstanceCompleted);
        return next;
    }
    let mut evidence_cache = None;
    for &p in &workflow.phase_order {
        let plan = &workflow.phases[p];
        let phase = &instance.phases[p];
        match &phase.status {
            PhaseStatus::Pending => {
                if plan.after.iter().all(|&u| matches!(instance.phases[u].status, PhaseStatus::Passed { .. })) {
                    next.events.push(Event::PhaseStarted(payload::PhaseStarted { phase: phase.id.clone(), attempt: phase.attempt + 1 }));
                }
            }
            PhaseStatus::Running { .. } => {
                let (tasks_done, failure) = decide_tasks(instance, false, plan, phase, now, &mut next, &mut evidence_cache);
                if let Some(reason) = failure {
                    next.events.push(Event::PhaseFailed(payload::PhaseFailed { phase: phase.id.clone(), reason }));
                } else if tasks_done {
                    decide_gates(instance, p, plan, phase, &mut next, &mut evidence_cache);
                }
            }
            PhaseStatus::AwaitingApproval { .. } => {
                decide_tasks(instance, true, plan, phase, now, &mut next, &mut evidence_cache);
                for (g, gate) in phase.gates.iter().enumerate() {
                    if let GateStatus::AwaitingDecision { level, deadline: Some(deadline), .. } = &gate.status {
                        let action = plan.gates[g].approval.as_ref().and_then(|a| a.on_timeout_at(*level));
                        match action {
                            Some(action) if *deadline <= now => next.events.push(Event::GateTimedOut(payload::GateTimedOut {
                                phase: phase.id.clone(),
                                gate: gate.id.clone(),
                                level: *level,
                                action,
                            })),
                            Some(_) => next.wake_no_later_than(*deadline),
                            None => {}
                        }
                    }
                }
            }
            PhaseStatus::OnHold { .. } => {
                decide_tasks(instance, true, plan, phase, now, &mut next, &mut evidence_cache);
            }
            PhaseStatus::Passed { .. } => match phase.next_cycle {
                Some(due) if due <= now => next.events.push(Event::ScheduleFired(payload::ScheduleFired { phase: phase.id.clone() })),
                Some(due) => next.wake_no_later_than(due),
                None => {}
            },
            PhaseStatus::Failed { .. } => {}
        }
    }
    next
}

/// The first deadline that has passed (the instance's, then each active
/// phase's, in order) as the event that applies its outcome; otherwise the
/// earliest one still ahead is folded into `wake_at`.
fn deadline_due(instance: &Instance, workflow: &Workflow, now: Timestamp, next: &mut Next) -> Option<Event> {
    for deadline in deadlines(instance, workflow) {
        let Some(due) = deadline.due.filter(|_| !deadline.acted) else { continue };
        if due > now {
            next.wake_no_later_than(due);
            continue;
        }
        let then = match deadline.outcome {
            DeadlineOutcome::Fail => String::new(),
            DeadlineOutcome::Rollback => "; rolling back".to_owned(),
            DeadlineOutcome::Halt => format!("; `phasegate resume {}` lets it go on", instance.id),
        };
        let since = Timestamp(due.0.saturating_sub(deadline.after_ms));
        let after = format_duration(std::time::Duration::from_millis(deadline.after_ms));
        let reason = format!("{}'s deadline of {after} passed (started {since}){then}", deadline.whose());
        return Some(Event::DeadlinePassed(payload::DeadlinePassed { phase: deadline.phase, outcome: deadline.outcome, reason }));
    }
    None
}

/// Acts on, or skips, the oldest pending trigger occurrence.
fn decide_trigger(instance: &Instance, workflow: &Workflow, pending: &PendingTrigger) -> Event {
    let skipped = |reason: String| {
        Event::TriggerSkipped(payload::TriggerSkipped { phase: pending.phase.clone(), trigger: pending.trigger.clone(), reason })
    };
    let Some((_, trigger)) = workflow.trigger(&pending.phase, &pending.trigger) else {
        return skipped("the trigger is not in the pinned definition".to_owned());
    };
    if let (Action::HaltForApproval { .. }, InstanceStatus::AwaitingDecision { trigger: waiting, .. }) = (&trigger.action, &instance.status)
    {
        return skipped(format!("a decision on trigger {waiting} is already awaited"));
    }
    match &trigger.when {
        None => Event::TriggerFired(payload::TriggerFired {
            phase: pending.phase.clone(),
            trigger: pending.trigger.clone(),
            cause: pending.cause.clone(),
        }),
        Some(condition) => match condition.evaluate(&evidence(instance)) {
            Outcome::True => Event::TriggerFired(payload::TriggerFired {
                phase: pending.phase.clone(),
                trigger: pending.trigger.clone(),
                cause: pending.cause.clone(),
            }),
            Outcome::False => skipped(format!("`{}` is false ({})", condition.source(), pending.cause)),
            Outcome::Missing(why) | Outcome::Error(why) => skipped(format!("`{}` could not be evaluated: {why}", condition.source())),
        },
    }
}

/// Runs compensations one at a time, in order, once no task attempt is in
/// flight; halts for a person when one fails for good.
fn decide_rollback(instance: &Instance, workflow: &Workflow, now: Timestamp, next: &mut Next) {
    let Some(rollback) = &instance.rollback else {
        return;
    };
    if !instance.in_flight().is_empty() {
        return;
    }
    for (i, step) in rollback.steps.iter().enumerate() {
        let state = &step.state;
        let policy = compensation_step(workflow, step).map(|s| s.retry.clone()).unwrap_or_else(crate::plan::RetryPolicy::none);
        let dispatch = |attempt: u32| {
            Event::CompensationDispatched(payload::CompensationDispatched {
                step: i,
                id: state.id.clone(),
                attempt,
                key: compensation_key(&instance.id, instance.rollbacks, i, &state.id, attempt),
            })
        };
        match &state.status {
            TaskStatus::Succeeded { .. } | TaskStatus::Skipped { .. } => continue,
            TaskStatus::Pending | TaskStatus::Cancelled { .. } => next.events.push(dispatch(state.attempts + 1)),
            // A compensation is a step an agent runs: it never waits.
            TaskStatus::Dispatched { .. } | TaskStatus::Waiting { .. } => {}
            TaskStatus::RetryWaiting { attempt, due, .. } => {
                if *due <= now {
                    next.events.push(dispatch(*attempt));
                } else {
                    next.wake_at = Some(*due);
                }
            }
            TaskStatus::Failed { attempt, error, .. } => {
                if state.may_retry(policy.max_attempts) {
                    let key = compensation_key(&instance.id, instance.rollbacks, i, &state.id, attempt + 1);
                    let due = now.after(policy.delay(state.attempts_used() + 1, jitter_unit(&key)));
                    next.events.push(Event::CompensationRetryScheduled(payload::CompensationRetryScheduled {
                        step: i,
                        id: state.id.clone(),
                        attempt: attempt + 1,
                        due,
                    }));
                } else {
                    next.events.push(Event::Halted(payload::Halted {
                        by: "phasegate".to_owned(),
                        reason: format!(
                            "compensation {} (undoing {}) failed after {} attempt(s): {error}; fix the cause, then `phasegate resume {}` \
                             runs it again (finished compensations are not repeated)",
                            state.id,
                            step.task.as_deref().map_or_else(|| format!("phase {}", step.phase), |t| format!("task {t}")),
                            state.attempts_used(),
                            instance.id
                        ),
                        cancel_running: false,
                    }));
                }
            }
        }
        return;
    }
    next.events.push(Event::RollbackCompleted);
}

/// The watches due for a sample: (phase index, watch index, due time) for
/// every watch of an active phase of a running instance. The runtime takes
/// samples through agents and records them as `WatchSampled`.
pub fn watches_due(instance: &Instance, workflow: &Workflow) -> Vec<(usize, usize, Timestamp)> {
    // Watches keep sampling while a trigger's halt waits for people: a
    // breach during the wait (a P0 while a P1 is decided) is still acted on.
    if !matches!(instance.status, InstanceStatus::Running | InstanceStatus::AwaitingDecision { .. }) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (p, phase) in instance.phases.iter().enumerate() {
        for (w, watch) in phase.watches.iter().enumerate() {
            let Some(plan) = workflow.phases[p].watches.get(w) else { continue };
            if !reaction_live(instance, p, plan.span.as_ref()) {
                continue;
            }
            let interval = plan.interval_for(&instance.vars);
            out.push((p, w, watch.last_at().map_or(Timestamp(0), |last| last.after(interval))));
        }
    }
    out
}

/// Dispatches, skips and retries the tasks of a running phase; says whether
/// they are all done and, if one failed for good, why the phase fails.
fn decide_tasks(
    instance: &Instance,
    only_requested: bool,
    plan: &crate::plan::Phase,
    phase: &super::PhaseState,
    now: Timestamp,
    next: &mut Next,
    evidence_cache: &mut Option<serde_json::Map<String, serde_json::Value>>,
) -> (bool, Option<String>) {
    let mut all_done = true;
    let mut failure = None;
    for &t in &plan.task_order {
        let task_plan = &plan.tasks[t];
        let task = &phase.tasks[t];
        // Beside a gate awaiting a decision, only on-demand tasks a trigger asked for run.
        if only_requested && !task.requested {
            continue;
        }
        let next_attempt = task.attempts + 1;
        // A wait begins its timer; any other task goes to its agent.
        let dispatch = |attempt: u32| match &task_plan.wait {
            Some(wait) => Event::WaitStarted(payload::WaitStarted {
                phase: phase.id.clone(),
                task: task.id.clone(),
                attempt,
                due: now.after(wait.duration_for(&instance.vars)),
            }),
            None => Event::TaskDispatched(payload::TaskDispatched {
                phase: phase.id.clone(),
                task: task.id.clone(),
                attempt,
                key: idempotency_key(&instance.id, &phase.id, phase.attempt, &task.id, attempt),
            }),
        };
        match &task.status {
            TaskStatus::Succeeded { .. } | TaskStatus::Skipped { .. } => {}
            TaskStatus::Pending if task_plan.on_demand && !task.requested => {}
            TaskStatus::Pending => {
                all_done = false;
                if !task_plan.depends_on.iter().all(|&d| phase.tasks[d].status.is_done()) {
                    continue;
                }
                match &task_plan.when {
                    None => next.events.push(dispatch(next_attempt)),
                    Some(condition) => {
                        let evidence = evidence_cache.get_or_insert_with(|| evidence(instance));
                        match condition.evaluate(evidence) {
                            Outcome::True => next.events.push(dispatch(next_attempt)),
                            Outcome::False => next.events.push(Event::TaskSkipped(payload::TaskSkipped {
                                phase: phase.id.clone(),
                                task: task.id.clone(),
                                reason: format!("`{}` is false", condition.source()),
                            })),
                            Outcome::Missing(why) | Outcome::Error(why) => next.events.push(Event::TaskSkipped(payload::TaskSkipped {
                                phase: phase.id.clone(),
                                task: task.id.clone(),
                                reason: format!("`{}` could not be evaluated: {why}", condition.source()),
                            })),
                        }
                    }
                }
            }
            TaskStatus::Dispatched { .. } => all_done = false,
            TaskStatus::Waiting { attempt, due, .. } => {
                all_done = false;
                if *due <= now {
                    next.events.push(Event::WaitElapsed(payload::WaitElapsed {
                        phase: phase.id.clone(),
                        task: task.id.clone(),
                        attempt: *attempt,
                    }));
                } else {
                    next.wake_no_later_than(*due);
                }
            }
            TaskStatus::Cancelled { .. } => {
                all_done = false;
                next.events.push(dispatch(next_attempt));
            }
            TaskStatus::RetryWaiting { attempt, due, .. } => {
                all_done = false;
                if *due <= now {
                    next.events.push(dispatch(*attempt));
                } else {
                    next.wake_no_later_than(*due);
                }
            }
            TaskStatus::Failed { attempt, error, retryable, .. } => {
                all_done = false;
                let used = task.attempts_used();
                if task.may_retry(task_plan.retry.max_attempts) {
                    let key = idempotency_key(&instance.id, &phase.id, phase.attempt, &task.id, attempt + 1);
                    let due = now.after(task_plan.retry.delay(used + 1, jitter_unit(&key)));
                    next.events.push(Event::RetryScheduled(payload::RetryScheduled {
                        phase: phase.id.clone(),
                        task: task.id.clone(),
                        attempt: attempt + 1,
                        due,
                    }));
                } else if failure.is_none() {
                    let why = if *retryable { format!("after {used} attempt(s)") } else { "permanently".to_owned() };
                    failure = Some(format!("task {} failed {why}: {error}", task.id));
                }
            }
        }
    }
    (all_done, failure)
}

/// Evaluates the next pending gate, fails the phase on a failed gate, or
/// completes it when every gate passed.
fn decide_gates(
    instance: &Instance,
    _p: usize,
    plan: &crate::plan::Phase,
    phase: &super::PhaseState,
    next: &mut Next,
    evidence_cache: &mut Option<serde_json::Map<String, serde_json::Value>>,
) {
    for (g, gate) in phase.gates.iter().enumerate() {
        match &gate.status {
            GateStatus::Passed { .. } => {}
            GateStatus::Pending => {
                let evidence = evidence_cache.get_or_insert_with(|| evidence(instance));
                let gate_plan = &plan.gates[g];
                let evaluation = if gate_plan.baseline_paths.is_empty() {
                    Evaluation::of(gate_plan, evidence)
                } else {
                    // No baseline yet: `baseline.…` is missing, so its criteria are inconclusive.
                    let mut with = evidence.clone();
                    if let Some(baseline) = instance.baselines.get(&format!("{}/{}", plan.id, gate_plan.id)) {
                        with.insert("baseline".to_owned(), baseline.evidence.clone());
                    }
                    Evaluation::of(gate_plan, &with)
                };
                next.events.push(Event::GateEvaluated(payload::GateEvaluated {
                    phase: phase.id.clone(),
                    gate: gate.id.clone(),
                    evaluation,
                }));
                return;
            }
            GateStatus::Failed { reason, .. } => {
                next.events.push(Event::PhaseFailed(payload::PhaseFailed {
                    phase: phase.id.clone(),
                    reason: format!("gate {} failed: {reason}", gate.id),
                }));
                return;
            }
            GateStatus::AwaitingDecision { .. } | GateStatus::OnHold { .. } => return,
        }
    }
    next.events.push(Event::PhaseCompleted(payload::PhaseCompleted { phase: phase.id.clone() }));
}

#[cfg(test)]
mod tests {
    use super::jitter_unit;

    #[test]
    fn jitter_is_a_stable_unit_value() {
        let a = jitter_unit("i/p.1/t/2");
        assert_eq!(a, jitter_unit("i/p.1/t/2"));
        assert!((0.0..1.0).contains(&a));
        assert_ne!(a, jitter_unit("i/p.1/t/3"));
    }
}

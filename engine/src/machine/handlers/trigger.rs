//! Triggers: queueing them when their event happens, firing or skipping
//! them, their actions, and decisions and deadlines on a halt for approval.

use super::super::approval::{Outcome, Subject, Target};
use super::super::gate::{DecisionKind, GateState, GateStatus};
use super::super::guards::{cancel_in_flight, request_write, trigger_index, Cx, Effect, Handled};
use super::super::{payload, Event, Instance, InstanceStatus, PendingTrigger, PhaseStatus, Rejected, TaskStatus, Timestamp};
use super::rollback;
use crate::machine::state::reaction_live;
use crate::plan::{Action, TriggerOn, Workflow};

/// Where an event happened, which decides the triggers that may react to it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    /// A watch kept under this phase fired: only triggers kept under the
    /// same phase name it (watch indexes are per phase).
    Watch(usize),
    /// A task or gate of this phase failed: the phase's own triggers and
    /// every live workflow-level trigger.
    Phase(usize),
    /// A signal: every active phase's triggers and every live workflow-level one.
    Any,
}

/// Queues the triggers that react to an event: those in scope whose `on`
/// matches and that are live (a phase's own while its phase is active, a
/// workflow-level one during its span). Nothing is queued once the
/// instance is finished, failed or rolling back.
pub(crate) fn queue(instance: &mut Instance, workflow: &Workflow, scope: Scope, on: impl Fn(&TriggerOn) -> bool, cause: &str) {
    match &instance.status {
        InstanceStatus::Running | InstanceStatus::Halted { .. } | InstanceStatus::AwaitingDecision { .. } => {}
        InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. } => return,
    }
    for (p, plan) in workflow.phases.iter().enumerate() {
        let in_scope = |trigger: &crate::plan::Trigger| match (scope, trigger.span) {
            (Scope::Watch(home), _) => home == p,
            (Scope::Phase(phase), None) => phase == p,
            (Scope::Phase(_), Some(_)) | (Scope::Any, _) => true,
        };
        let listening: Vec<PendingTrigger> = plan
            .triggers
            .iter()
            .filter(|t| in_scope(t) && on(&t.on) && reaction_live(instance, p, t.span.as_ref()))
            .map(|t| PendingTrigger { phase: plan.id.clone(), trigger: t.id.clone(), cause: cause.to_owned() })
            .collect();
        instance.pending_triggers.extend(listening);
    }
}

/// Applies a trigger's action (directly, or once its halt was approved).
fn act(instance: &mut Instance, workflow: &Workflow, p: usize, k: usize, action: &Action, cause: &str, at: Timestamp) -> Vec<Effect> {
    let trigger = &workflow.phases[p].triggers[k];
    let by = format!("trigger:{}", trigger.id);
    match action {
        Action::HaltForApproval { approval, .. } => {
            let mut state = GateState::new(&trigger.id);
            if let Some(target) = Target::halt(workflow, p, k) {
                state.status = target.open(at);
            }
            instance.status = InstanceStatus::AwaitingDecision {
                phase: workflow.phases[p].id.clone(),
                trigger: trigger.id.clone(),
                cause: cause.to_owned(),
                since: at,
                approval: state,
            };
            notify(approval.notify.is_some() || workflow.notify.is_some(), p, k, "awaiting_decision")
        }
        Action::Rollback { to } => {
            let mut effects = notify(workflow.notify.is_some(), p, k, &format!("acted: rollback ({cause})"));
            effects.extend(rollback::start(instance, workflow, &by, cause, *to, at));
            effects
        }
        Action::Goto { phase: target, code, reason, max_loops } => {
            resume_running(instance);
            let taken = instance.loops.get(&trigger.id).copied().unwrap_or(0);
            let code = code.as_deref().map(|c| format!("{c} ")).unwrap_or_default();
            if taken >= *max_loops {
                let source = &workflow.phases[p].id;
                let why = format!(
                    "loop-back {code}to {} was taken {taken} time(s); max_loops = {max_loops} ({cause})",
                    workflow.phases[*target].id
                );
                let mut effects = notify(workflow.notify.is_some(), p, k, &format!("failed the phase: {why}"));
                effects.extend(cancel_in_flight(instance, Some(p), &why, at));
                instance.phases[p].status = PhaseStatus::Failed { reason: why, at };
                instance.pending_triggers.retain(|t| t.phase != *source);
                return effects;
            }
            instance.loops.insert(trigger.id.clone(), taken + 1);
            let entered = format!("loop-back {code}from {} ({}): {reason}", workflow.phases[p].id, trigger.id);
            instance.phases[*target].loops += 1;
            let mut effects = notify(workflow.notify.is_some(), p, k, &format!("acted: {entered} ({cause})"));
            effects.extend(rollback::reenter(
                instance,
                workflow,
                *target,
                entered,
                &format!("loop-back to {}", workflow.phases[*target].id),
                at,
            ));
            effects
        }
        Action::Notify(_) => notify(true, p, k, cause),
        Action::Run { task } => {
            let state = &mut instance.phases[p].tasks[*task];
            match &state.status {
                TaskStatus::Dispatched { .. } | TaskStatus::RetryWaiting { .. } | TaskStatus::Waiting { .. } => {}
                TaskStatus::Pending => state.requested = true,
                TaskStatus::Succeeded { .. } | TaskStatus::Failed { .. } | TaskStatus::Skipped { .. } | TaskStatus::Cancelled { .. } => {
                    state.budget_from = state.attempts;
                    state.status = TaskStatus::Pending;
                    state.requested = true;
                }
            }
            let task = &workflow.phases[p].tasks[*task].id;
            notify(workflow.notify.is_some(), p, k, &format!("acted: runs task {task} ({cause})"))
        }
    }
}

/// Whether trigger `k`'s halt is announced: by its approval's own step or the workflow's.
fn halt_notifies(workflow: &Workflow, p: usize, k: usize) -> bool {
    workflow.notify.is_some() || Target::halt(workflow, p, k).is_some_and(|t| t.notifies())
}

fn notify(wanted: bool, phase: usize, trigger: usize, what: &str) -> Vec<Effect> {
    if wanted {
        vec![Effect::TriggerNotify { phase, trigger, what: what.to_owned() }]
    } else {
        Vec::new()
    }
}

/// A trigger halt is over: the instance runs again.
fn resume_running(instance: &mut Instance) {
    if matches!(instance.status, InstanceStatus::AwaitingDecision { .. }) {
        instance.status = InstanceStatus::Running;
    }
}

fn pending_position(instance: &Instance, event: &Event, phase: &str, trigger: &str) -> Result<usize, Rejected> {
    instance.pending_triggers.iter().position(|t| t.phase == phase && t.trigger == trigger).ok_or_else(|| {
        Rejected::new(
            event,
            format!("trigger {trigger} of phase {phase} has no pending occurrence"),
            "a trigger acts on an event that happened",
        )
    })
}

fn require_listening(instance: &Instance, event: &Event) -> Result<(), Rejected> {
    match &instance.status {
        InstanceStatus::Running | InstanceStatus::AwaitingDecision { .. } => Ok(()),
        other @ (InstanceStatus::Halted { .. }
        | InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. }) => Err(Rejected::new(
            event,
            format!("instance {} is {}", instance.id, other.kind()),
            "triggers act while the instance runs or awaits a decision",
        )),
    }
}

/// `TriggerFired`: a queued occurrence whose `when` held takes the trigger's action.
pub(crate) fn fired(cx: Cx<'_>, e: &payload::TriggerFired) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    require_listening(instance, event)?;
    let (p, k) = trigger_index(workflow, event, &e.phase, &e.trigger)?;
    let position = pending_position(instance, event, &e.phase, &e.trigger)?;
    let action = &workflow.phases[p].triggers[k].action;
    if let (Action::HaltForApproval { .. }, InstanceStatus::AwaitingDecision { trigger: waiting, .. }) = (action, &instance.status) {
        return Err(Rejected::new(
            event,
            format!("instance {} already awaits a decision on trigger {waiting}", instance.id),
            "one halt for approval at a time",
        ));
    }
    instance.pending_triggers.remove(position);
    Ok(act(instance, workflow, p, k, action, &e.cause, at))
}

/// `TriggerSkipped`: a queued occurrence that does not act (its `when` did not hold).
pub(crate) fn skipped(cx: Cx<'_>, e: &payload::TriggerSkipped) -> Handled {
    let Cx { instance, workflow, event, .. } = cx;
    require_listening(instance, event)?;
    trigger_index(workflow, event, &e.phase, &e.trigger)?;
    let position = pending_position(instance, event, &e.phase, &e.trigger)?;
    instance.pending_triggers.remove(position);
    Ok(Vec::new())
}

/// The halt the instance awaits a decision on, checked against the event:
/// its approval rule, its wait, what it does once approved, and its cause.
fn halt<'i, 'w>(
    instance: &'i Instance,
    workflow: &'w Workflow,
    event: &Event,
    phase: &str,
    trigger: &str,
) -> Result<(usize, usize, Target<'w>, &'w Action, &'i GateState), Rejected> {
    let (p, k) = trigger_index(workflow, event, phase, trigger)?;
    let (Some(target), Action::HaltForApproval { then, .. }) = (Target::halt(workflow, p, k), &workflow.phases[p].triggers[k].action)
    else {
        return Err(Rejected::new(event, format!("trigger {trigger} does not halt for approval"), "only a halt takes decisions"));
    };
    match &instance.status {
        InstanceStatus::AwaitingDecision { phase: waiting_phase, trigger: waiting, approval, .. }
            if waiting_phase == phase && waiting == trigger =>
        {
            Ok((p, k, target, then, approval))
        }
        InstanceStatus::AwaitingDecision { trigger: waiting, .. } => Err(Rejected::new(
            event,
            format!("instance {} awaits a decision on trigger {waiting}", instance.id),
            format!("not on trigger {trigger}"),
        )),
        other @ (InstanceStatus::Running
        | InstanceStatus::Halted { .. }
        | InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. }) => {
            Err(Rejected::new(event, format!("instance {} is {}", instance.id, other.kind()), "no trigger awaits a decision"))
        }
    }
}

/// How a halt's wait moved: a person's decision, or a deadline's answer.
struct Answer<'a> {
    /// The halt: phase and trigger indexes.
    halt: (usize, usize),
    /// What the halt does once approved.
    then: &'a Action,
    /// The decision (a deadline's is by `phasegate`).
    decision: super::super::Decision,
    /// Whether a deadline gave it.
    timed_out: bool,
}

/// Carries out where a halt's wait stands: approved, its `then` action is
/// taken; rejected, the instance runs on without it; held or still
/// waiting, the decision is recorded on the wait.
fn settle(instance: &mut Instance, workflow: &Workflow, answer: Answer<'_>, outcome: Outcome, at: Timestamp) -> Vec<Effect> {
    let Answer { halt: (p, k), then, decision, timed_out } = answer;
    // Only called while the instance awaits this halt (checked by `halt`).
    let (cause, waiting) = match &instance.status {
        InstanceStatus::AwaitingDecision { cause, approval, .. } => (cause.clone(), approval.status.clone()),
        InstanceStatus::Running
        | InstanceStatus::Halted { .. }
        | InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. } => return Vec::new(),
    };
    let status = match outcome {
        Outcome::Approved(approvals) => {
            instance.status = InstanceStatus::Running;
            let cause = if timed_out {
                format!("{cause}; no decision before the deadline, on_timeout = approve")
            } else {
                format!("{cause}; approved by {}", approvals.join(", "))
            };
            return act(instance, workflow, p, k, then, &cause, at);
        }
        // Rejected: the action is not taken; the decision, with its comment, is the record.
        Outcome::Rejected(_) => {
            instance.status = InstanceStatus::Running;
            return if timed_out { notify(halt_notifies(workflow, p, k), p, k, "timed_out: rejected") } else { Vec::new() };
        }
        // Held: the deadline no longer applies; someone decides later.
        Outcome::Held(_) => match waiting {
            GateStatus::AwaitingDecision { since, level, approvals, .. } => {
                GateStatus::AwaitingDecision { since, level, deadline: None, approvals }
            }
            other @ (GateStatus::Pending | GateStatus::OnHold { .. } | GateStatus::Passed { .. } | GateStatus::Failed { .. }) => other,
        },
        Outcome::Waiting(status) => status,
    };
    let escalated = decision.kind == DecisionKind::Escalate;
    if let InstanceStatus::AwaitingDecision { approval: state, .. } = &mut instance.status {
        state.decisions.push((at, decision));
        state.status = status;
    }
    let wanted = halt_notifies(workflow, p, k);
    match (timed_out, escalated) {
        (true, true) => notify(wanted, p, k, "timed_out: escalated"),
        (true, false) => notify(wanted, p, k, "timed_out"),
        (false, true) => notify(wanted, p, k, "escalated"),
        (false, false) => Vec::new(),
    }
}

/// `TriggerDecided`: a person's decision on the halt, by the one approval rule.
pub(crate) fn decided(cx: Cx<'_>, e: &payload::TriggerDecided) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let (p, k, target, then, state) = halt(instance, workflow, event, &e.phase, &e.trigger)?;
    let outcome = target.decide(event, instance, state, &e.decision, at)?;
    let answer = Answer { halt: (p, k), then, decision: e.decision.clone(), timed_out: false };
    let mut effects = settle(instance, workflow, answer, outcome, at);
    effects.extend(request_write(Subject::Trigger, &e.phase, &e.trigger, &e.decision));
    Ok(effects)
}

/// `TriggerTimedOut`: the halt's deadline passed; the declared `on_timeout`
/// answers, recorded as a decision by `phasegate`.
pub(crate) fn timed_out(cx: Cx<'_>, e: &payload::TriggerTimedOut) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let (p, k, target, then, state) = halt(instance, workflow, event, &e.phase, &e.trigger)?;
    let (outcome, decision) = target.time_out(event, state, e.level, e.action, at)?;
    Ok(settle(instance, workflow, Answer { halt: (p, k), then, decision, timed_out: true }, outcome, at))
}

//! Reactions: watch samples, triggers and their actions (halt for approval,
//! rollback, loop-back, notify, run), compensations, and scheduled cycles.
//!
//! `step` calls into here for the events of this part of the machine; the
//! same rule holds: check everything first, then mutate.

use super::gate::{self, Decision, DecisionKind, GateState, GateStatus};
use super::guards::{cancel_in_flight, phase_index, Effect};
pub(crate) use super::state::phase_active;
use super::{
    Compensation, Done, Event, Instance, InstanceStatus, PendingTrigger, PhaseState, PhaseStatus, Rejected, Rollback, Sample,
    SampleVerdict, TaskState, TaskStatus, Timestamp, WatchState, WATCH_WINDOW,
};
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Baseline, RejectKind};
use crate::model::{NoDataPolicy, OnTimeout};
use crate::plan::{Action, TriggerOn, Workflow};

/// Queues the triggers that react to an event: those of phase `only` (or of
/// every active phase) whose `on` matches. Nothing is queued once the
/// instance is finished, failed or rolling back.
pub(super) fn queue(instance: &mut Instance, workflow: &Workflow, only: Option<usize>, on: impl Fn(&TriggerOn) -> bool, cause: &str) {
    match &instance.status {
        InstanceStatus::Running | InstanceStatus::Halted { .. } | InstanceStatus::AwaitingDecision { .. } => {}
        InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. } => return,
    }
    for (p, plan) in workflow.phases.iter().enumerate() {
        if only.is_some_and(|o| o != p) || !phase_active(&instance.phases[p].status) {
            continue;
        }
        for trigger in plan.triggers.iter().filter(|t| on(&t.on)) {
            instance.pending_triggers.push(PendingTrigger { phase: plan.id.clone(), trigger: trigger.id.clone(), cause: cause.to_owned() });
        }
    }
}

/// Refuses the event, naming the instance's status, unless `ok`.
fn require(instance: &Instance, event: &Event, ok: bool, why: &str) -> Result<(), Rejected> {
    if ok {
        Ok(())
    } else {
        Err(Rejected::new(event, format!("instance {} is {}", instance.id, instance.status.kind()), why))
    }
}

/// The phase and trigger indexes of a trigger id.
fn trigger_index(workflow: &Workflow, event: &Event, phase: &str, trigger: &str) -> Result<(usize, usize), Rejected> {
    let p = phase_index(workflow, event, phase)?;
    workflow.phases[p]
        .triggers
        .iter()
        .position(|t| t.id == trigger)
        .map(|k| (p, k))
        .ok_or_else(|| Rejected::of(RejectKind::Unknown, event, format!("phase `{phase}` has no trigger `{trigger}`"), "unknown trigger"))
}

/// Resets a phase to pending so it runs again as a new attempt.
fn reset_phase(state: &mut PhaseState) {
    state.status = PhaseStatus::Pending;
    state.next_cycle = None;
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
fn reenter(instance: &mut Instance, workflow: &Workflow, target: usize, entered: String, reason: &str) -> Vec<Effect> {
    let scope: Vec<usize> = (0..workflow.phases.len()).filter(|&p| workflow.is_upstream(target, p)).collect();
    let mut effects = Vec::new();
    for &p in &scope {
        effects.extend(cancel_in_flight(instance, Some(p), reason));
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
pub(super) fn journal(instance: &mut Instance, workflow: &Workflow, p: usize, t: Option<usize>) {
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
fn start_rollback(instance: &mut Instance, workflow: &Workflow, by: &str, reason: &str, to: Option<usize>, at: Timestamp) -> Vec<Effect> {
    let steps = rollback_plan(instance, workflow, to);
    let effects = cancel_in_flight(instance, None, &format!("rolling back: {reason}"));
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

/// Applies a trigger's action (directly, or once its halt was approved).
fn act(instance: &mut Instance, workflow: &Workflow, p: usize, k: usize, action: &Action, cause: &str, at: Timestamp) -> Vec<Effect> {
    let trigger = &workflow.phases[p].triggers[k];
    let by = format!("trigger:{}", trigger.id);
    match action {
        Action::HaltForApproval { approval, .. } => {
            let owner = workflow.phases[p].owner.as_ref();
            let deadline = gate::authority_of(Some(approval), owner, 0).and_then(|a| a.timeout).map(|t| at.after(t));
            let mut state = GateState::new(&trigger.id);
            state.status = GateStatus::AwaitingDecision { since: at, level: 0, deadline, approvals: Vec::new() };
            instance.status = InstanceStatus::AwaitingDecision {
                phase: workflow.phases[p].id.clone(),
                trigger: trigger.id.clone(),
                cause: cause.to_owned(),
                since: at,
                approval: state,
            };
            notify(approval.notify.is_some(), p, k, "awaiting_decision")
        }
        Action::Rollback { to } => start_rollback(instance, workflow, &by, cause, *to, at),
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
                let effects = cancel_in_flight(instance, Some(p), &why);
                instance.phases[p].status = PhaseStatus::Failed { reason: why, at };
                instance.pending_triggers.retain(|t| t.phase != *source);
                return effects;
            }
            instance.loops.insert(trigger.id.clone(), taken + 1);
            let entered = format!("loop-back {code}from {} ({}): {reason}", workflow.phases[p].id, trigger.id);
            instance.phases[*target].loops += 1;
            reenter(instance, workflow, *target, entered, &format!("loop-back to {}", workflow.phases[*target].id))
        }
        Action::Notify(_) => notify(true, p, k, cause),
        Action::Run { task } => {
            let state = &mut instance.phases[p].tasks[*task];
            match &state.status {
                TaskStatus::Dispatched { .. } | TaskStatus::RetryWaiting { .. } => {}
                TaskStatus::Pending => state.requested = true,
                TaskStatus::Succeeded { .. } | TaskStatus::Failed { .. } | TaskStatus::Skipped { .. } | TaskStatus::Cancelled { .. } => {
                    state.budget_from = state.attempts;
                    state.status = TaskStatus::Pending;
                    state.requested = true;
                }
            }
            Vec::new()
        }
    }
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

/// A watch's sample: the breach clock, consecutive failures and no-data rules.
#[allow(clippy::too_many_arguments)]
pub(super) fn watch_sampled(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    watch: &str,
    value: Option<f64>,
    verdict: SampleVerdict,
    detail: &str,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
    require(instance, event, matches!(instance.status, InstanceStatus::Running), "watches sample while the instance runs")?;
    let p = phase_index(workflow, event, phase)?;
    let Some(w) = workflow.phases[p].watches.iter().position(|x| x.id == watch) else {
        return Err(Rejected::of(RejectKind::Unknown, event, format!("phase `{phase}` has no watch `{watch}`"), "unknown watch"));
    };
    if !phase_active(&instance.phases[p].status) {
        return Err(Rejected::new(
            event,
            format!("phase {phase} is {}", instance.phases[p].status.kind()),
            "watches sample while their phase is active",
        ));
    }
    let plan = &workflow.phases[p].watches[w];
    let effective = match (verdict, plan.no_data) {
        (SampleVerdict::NoData, NoDataPolicy::Breach) => SampleVerdict::Breach,
        (SampleVerdict::NoData, NoDataPolicy::Ok) => SampleVerdict::Ok,
        (other, _) => other,
    };
    let sustain = u64::try_from(plan.sustain_for(&instance.vars).as_millis()).unwrap_or(u64::MAX);
    let state = &mut instance.phases[p].watches[w];
    state.taken += 1;
    state.samples.push(Sample { at, value, verdict: effective });
    if state.samples.len() > WATCH_WINDOW {
        state.samples.remove(0);
    }
    let mut fired = None;
    let mut inconclusive = None;
    match effective {
        SampleVerdict::Breach => {
            state.breaching_run += 1;
            let since = *state.breaching_since.get_or_insert(at);
            state.no_data_since = None;
            state.no_data_run = 0;
            state.inconclusive = false;
            state.no_data_reason = None;
            let lasted = at.since(since);
            let by_count = plan.consecutive_failures.is_some_and(|n| state.breaching_run >= n);
            if !state.firing && (lasted >= sustain || by_count) {
                state.firing = true;
                let shown = value.map_or_else(|| "no data".to_owned(), |v| v.to_string());
                let why = if by_count && lasted < sustain {
                    format!("{} breaching samples in a row", state.breaching_run)
                } else {
                    // Whole seconds: sample timing jitter is not news.
                    let shown = if lasted >= 1_000 { lasted / 1_000 * 1_000 } else { lasted };
                    format!("breaching for {}", crate::plan::format_duration(std::time::Duration::from_millis(shown)))
                };
                fired = Some(format!("watch {watch} fired: `{}` held ({why}; latest value {shown})", plan.condition.source()));
            }
        }
        SampleVerdict::Ok => {
            state.breaching_run = 0;
            state.breaching_since = None;
            state.firing = false;
            state.no_data_since = None;
            state.no_data_run = 0;
            state.inconclusive = false;
            state.no_data_reason = None;
        }
        SampleVerdict::NoData => {
            state.no_data_run += 1;
            let since = *state.no_data_since.get_or_insert(at);
            let by_count = plan.consecutive_failures.is_some_and(|n| state.no_data_run >= n);
            if !state.inconclusive && (at.since(since) >= sustain || by_count) {
                state.inconclusive = true;
                let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
                inconclusive = Some(format!(
                    "watch {watch} has had no data since {since}{detail}; no_data = inconclusive asks a person: \
                     check the metric, then `phasegate resume {id}` to go on or `phasegate rollback {id}` to roll back",
                    id = instance.id
                ));
            }
        }
    }
    if let Some(cause) = fired {
        queue(instance, workflow, Some(p), |on| *on == TriggerOn::Watch(w), &cause);
    }
    if let Some(reason) = inconclusive {
        instance.phases[p].watches[w].no_data_reason = Some(reason);
    }
    Ok(Vec::new())
}

/// Missing data lasted as long as the watch's `for`: a person decides.
pub(super) fn watch_inconclusive(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    watch: &str,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
    require(instance, event, matches!(instance.status, InstanceStatus::Running), "only a running instance halts for missing data")?;
    let p = phase_index(workflow, event, phase)?;
    let Some(w) = workflow.phases[p].watches.iter().position(|x| x.id == watch) else {
        return Err(Rejected::of(RejectKind::Unknown, event, format!("phase `{phase}` has no watch `{watch}`"), "unknown watch"));
    };
    let Some(reason) = instance.phases[p].watches[w].no_data_reason.take() else {
        return Err(Rejected::new(event, format!("watch {watch} has data"), "a watch is inconclusive after missing data for its `for`"));
    };
    instance.status = InstanceStatus::Halted { by: "phasegate".to_owned(), reason, cancel_running: false, at };
    Ok(Vec::new())
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
        other => Err(Rejected::new(
            event,
            format!("instance {} is {}", instance.id, other.kind()),
            "triggers act while the instance runs or awaits a decision",
        )),
    }
}

pub(super) fn trigger_fired(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    trigger: &str,
    cause: &str,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
    require_listening(instance, event)?;
    let (p, k) = trigger_index(workflow, event, phase, trigger)?;
    let position = pending_position(instance, event, phase, trigger)?;
    let action = &workflow.phases[p].triggers[k].action;
    if let (Action::HaltForApproval { .. }, InstanceStatus::AwaitingDecision { trigger: waiting, .. }) = (action, &instance.status) {
        return Err(Rejected::new(
            event,
            format!("instance {} already awaits a decision on trigger {waiting}", instance.id),
            "one halt for approval at a time",
        ));
    }
    instance.pending_triggers.remove(position);
    Ok(act(instance, workflow, p, k, action, cause, at))
}

pub(super) fn trigger_skipped(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    trigger: &str,
) -> Result<Vec<Effect>, Rejected> {
    require_listening(instance, event)?;
    trigger_index(workflow, event, phase, trigger)?;
    let position = pending_position(instance, event, phase, trigger)?;
    instance.pending_triggers.remove(position);
    Ok(Vec::new())
}

/// The trigger halt the instance awaits a decision on, checked against the event.
fn halt<'i>(
    instance: &'i Instance,
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    trigger: &str,
) -> Result<(usize, usize, &'i GateState), Rejected> {
    let (p, k) = trigger_index(workflow, event, phase, trigger)?;
    match &instance.status {
        InstanceStatus::AwaitingDecision { phase: waiting_phase, trigger: waiting, approval, .. }
            if waiting_phase == phase && waiting == trigger =>
        {
            Ok((p, k, approval))
        }
        InstanceStatus::AwaitingDecision { trigger: waiting, .. } => Err(Rejected::new(
            event,
            format!("instance {} awaits a decision on trigger {waiting}", instance.id),
            format!("not on trigger {trigger}"),
        )),
        other => Err(Rejected::new(event, format!("instance {} is {}", instance.id, other.kind()), "no trigger awaits a decision")),
    }
}

pub(super) fn trigger_decided(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    trigger: &str,
    decision: &Decision,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
    let (p, k, state) = halt(instance, workflow, event, phase, trigger)?;
    let Action::HaltForApproval { approval, then } = &workflow.phases[p].triggers[k].action else {
        return Err(Rejected::new(event, format!("trigger {trigger} does not halt for approval"), "only a halt takes decisions"));
    };
    let GateStatus::AwaitingDecision { level, approvals, since, deadline } = &state.status else {
        return Err(Rejected::new(event, format!("trigger {trigger} is {}", state.status.kind()), "it is not awaiting a decision"));
    };
    let owner = workflow.phases[p].owner.as_ref();
    let subject = format!("trigger {trigger}");
    let (authority, next_level) = gate::check_decision(event, &subject, Some(approval), owner, *level, approvals, decision, instance)?;
    let mut approvals = approvals.clone();
    let (level, since, deadline) = (*level, *since, *deadline);
    let cause = match &instance.status {
        InstanceStatus::AwaitingDecision { cause, .. } => cause.clone(),
        _ => String::new(),
    };
    let status = match decision.kind {
        DecisionKind::Approve => {
            approvals.push(decision.principal.clone());
            if approvals.len() >= authority.required as usize {
                instance.status = InstanceStatus::Running;
                let cause = format!("{cause}; approved by {}", approvals.join(", "));
                return Ok(act(instance, workflow, p, k, then, &cause, at));
            }
            GateStatus::AwaitingDecision { since, level, deadline, approvals }
        }
        // Rejected: the action is not taken; the decision, with its comment, is the record.
        DecisionKind::Reject => {
            instance.status = InstanceStatus::Running;
            return Ok(Vec::new());
        }
        // Held: the deadline no longer applies; someone decides later.
        DecisionKind::Hold => GateStatus::AwaitingDecision { since, level, deadline: None, approvals },
        DecisionKind::Escalate => GateStatus::AwaitingDecision {
            since: at,
            level: level + 1,
            deadline: next_level.and_then(|l| l.timeout).map(|t| at.after(t)),
            approvals: Vec::new(),
        },
    };
    if let InstanceStatus::AwaitingDecision { approval: state, .. } = &mut instance.status {
        state.decisions.push((at, decision.clone()));
        state.status = status;
    }
    let escalated = decision.kind == DecisionKind::Escalate && approval.notify.is_some();
    Ok(notify(escalated, p, k, "escalated"))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn trigger_timed_out(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    trigger: &str,
    level: usize,
    action: OnTimeout,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
    let (p, k, state) = halt(instance, workflow, event, phase, trigger)?;
    let Action::HaltForApproval { approval, then } = &workflow.phases[p].triggers[k].action else {
        return Err(Rejected::new(event, format!("trigger {trigger} does not halt for approval"), "only a halt times out"));
    };
    let (current, deadline, approvals) = match &state.status {
        GateStatus::AwaitingDecision { level, deadline, approvals, .. } => (*level, *deadline, approvals.clone()),
        other => return Err(Rejected::new(event, format!("trigger {trigger} is {}", other.kind()), "it is not awaiting a decision")),
    };
    if current != level || deadline.is_none_or(|d| d > at) {
        return Err(Rejected::new(
            event,
            format!("trigger {trigger} is at level {current}, deadline {deadline:?}"),
            "the deadline has not passed at that level",
        ));
    }
    if approval.on_timeout != Some(action) {
        return Err(Rejected::new(
            event,
            format!("trigger {trigger} declares on_timeout {:?}", approval.on_timeout),
            "the action must be the declared one",
        ));
    }
    let cause = match &instance.status {
        InstanceStatus::AwaitingDecision { cause, .. } => cause.clone(),
        _ => String::new(),
    };
    let owner = workflow.phases[p].owner.as_ref();
    let timed_out = Decision {
        kind: DecisionKind::Hold,
        principal: "phasegate".to_owned(),
        via: String::new(),
        comment: format!("no decision before the deadline of level {level}"),
        request_id: String::new(),
        level,
        seen: Default::default(),
    };
    let status = match action {
        OnTimeout::Approve => {
            instance.status = InstanceStatus::Running;
            return Ok(act(instance, workflow, p, k, then, &format!("{cause}; no decision before the deadline, on_timeout = approve"), at));
        }
        OnTimeout::Reject => {
            instance.status = InstanceStatus::Running;
            return Ok(Vec::new());
        }
        OnTimeout::Hold => GateStatus::AwaitingDecision { since: at, level, deadline: None, approvals },
        OnTimeout::Escalate => match gate::authority_of(Some(approval), owner, level + 1) {
            Some(next) => GateStatus::AwaitingDecision {
                since: at,
                level: level + 1,
                deadline: next.timeout.map(|t| at.after(t)),
                approvals: Vec::new(),
            },
            None => {
                instance.status = InstanceStatus::Running;
                return Ok(Vec::new());
            }
        },
    };
    if let InstanceStatus::AwaitingDecision { approval: state, .. } = &mut instance.status {
        state.decisions.push((at, timed_out));
        state.status = status;
    }
    Ok(notify(approval.notify.is_some(), p, k, "timed_out"))
}

pub(super) fn rollback_started(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    by: &str,
    reason: &str,
    to: Option<&str>,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
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
    let target = match to {
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
        let scope = match to {
            Some(to) => format!(" in phase {to} or after it"),
            None => String::new(),
        };
        return Err(Rejected::new(
            event,
            format!("instance {} has no completed work with a compensation{scope}", instance.id),
            "nothing to compensate: no task with a `rollback` step succeeded and no phase with `rollback` steps started",
        ));
    }
    Ok(start_rollback(instance, workflow, by, reason, target, at))
}

fn rollback_step<'i>(instance: &'i Instance, event: &Event, step: usize, id: &str) -> Result<&'i Compensation, Rejected> {
    let Some(rollback) = &instance.rollback else {
        return Err(Rejected::new(event, format!("instance {} is not rolling back", instance.id), "compensations run during a rollback"));
    };
    match rollback.steps.get(step) {
        Some(compensation) if compensation.state.id == id => Ok(compensation),
        _ => Err(Rejected::of(RejectKind::Unknown, event, format!("the rollback has no step {step} named {id}"), "unknown compensation")),
    }
}

pub(super) fn compensation_dispatched(
    instance: &mut Instance,
    event: &Event,
    step: usize,
    id: &str,
    attempt: u32,
    key: &str,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
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
        TaskStatus::Dispatched { .. } | TaskStatus::Succeeded { .. } | TaskStatus::Failed { .. } | TaskStatus::Skipped { .. } => false,
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
        state.status = TaskStatus::Dispatched { attempt, key: key.to_owned(), at };
    }
    Ok(vec![Effect::Compensate { step, attempt, key: key.to_owned() }])
}

pub(super) fn compensation_result(
    instance: &mut Instance,
    event: &Event,
    step: usize,
    id: &str,
    attempt: u32,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
    let compensation = rollback_step(instance, event, step, id)?;
    match &compensation.state.status {
        TaskStatus::Dispatched { attempt: running, .. } if *running == attempt => {}
        other => {
            return Err(Rejected::new(
                event,
                format!("compensation {id} is {}", other.kind()),
                format!("no attempt {attempt} of it is in flight"),
            ));
        }
    }
    if let Some(rollback) = instance.rollback.as_mut() {
        rollback.steps[step].state.status = match event {
            Event::CompensationSucceeded { output, duration_ms, .. } => {
                TaskStatus::Succeeded { attempt, output: output.clone(), duration_ms: *duration_ms, at }
            }
            Event::CompensationFailed { error, retryable, .. } => {
                TaskStatus::Failed { attempt, error: error.clone(), retryable: *retryable, at }
            }
            _ => TaskStatus::Cancelled { attempt, at },
        };
    }
    Ok(Vec::new())
}

pub(super) fn compensation_retry(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    step: usize,
    id: &str,
    attempt: u32,
    due: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
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
        other => {
            return Err(Rejected::new(
                event,
                format!("compensation {id} is {}", other.kind()),
                format!("only a retryable failure within max_attempts = {max_attempts} is retried"),
            ));
        }
    };
    if let Some(rollback) = instance.rollback.as_mut() {
        rollback.steps[step].state.status = TaskStatus::RetryWaiting { attempt, due, error };
    }
    Ok(Vec::new())
}

pub(super) fn rollback_completed(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
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
            Ok(reenter(instance, workflow, target, format!("rollback by {by}: {reason}"), "rolled back"))
        }
        None => {
            instance.status = InstanceStatus::RolledBack { reason, at };
            Ok(Vec::new())
        }
    }
}

pub(super) fn schedule_fired(
    instance: &mut Instance,
    workflow: &Workflow,
    event: &Event,
    phase: &str,
    at: Timestamp,
) -> Result<Vec<Effect>, Rejected> {
    require(instance, event, matches!(instance.status, InstanceStatus::Running), "scheduled cycles start while the instance runs")?;
    let p = phase_index(workflow, event, phase)?;
    let state = &instance.phases[p];
    match (&state.status, state.next_cycle) {
        (PhaseStatus::Passed { .. }, Some(due)) if due <= at => {}
        (status, next) => {
            return Err(Rejected::new(
                event,
                format!("phase {phase} is {} (next cycle {next:?})", status.kind()),
                "a phase runs its next cycle once it passed and the cycle is due",
            ));
        }
    }
    let cycle = state.attempt + 1;
    let state = &mut instance.phases[p];
    reset_phase(state);
    state.entered = Some(format!("scheduled cycle {cycle}"));
    Ok(Vec::new())
}

/// Keeps what a passed gate's criteria read under `baseline.` as the
/// gate's baseline for its next evaluation (this instance's next cycle; the
/// runtime indexes it for later instances of the workflow).
pub(super) fn record_baseline(instance: &mut Instance, workflow: &Workflow, p: usize, g: usize, at: Timestamp) {
    let plan = &workflow.phases[p].gates[g];
    if plan.baseline_paths.is_empty() {
        return;
    }
    let evidence = Value::Object(super::evidence(instance));
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
    instance.baselines.insert(key, Baseline { instance: instance.id.clone(), at, evidence: snapshot });
}

/// Baselines an instance starts with, from earlier instances (recorded
/// right after `InstanceStarted`).
pub(super) fn baselines_loaded(
    instance: &mut Instance,
    event: &Event,
    baselines: &BTreeMap<String, Baseline>,
) -> Result<Vec<Effect>, Rejected> {
    require(instance, event, matches!(instance.status, InstanceStatus::Running), "baselines are loaded when the instance starts")?;
    if instance.phases.iter().any(|p| p.attempt > 0) {
        return Err(Rejected::new(event, "a phase has already started", "baselines are loaded before any phase starts"));
    }
    instance.baselines.extend(baselines.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(Vec::new())
}

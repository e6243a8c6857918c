//! What the handlers of every concern share: the context they work in, the
//! effects they return, and the lookups and guards they start with. Every
//! handler module imports from here and none imports the dispatcher, so no
//! import runs in a circle.

use super::gate::GateStatus;
use super::{Event, Instance, InstanceStatus, PhaseState, PhaseStatus, RejectKind, Rejected, TaskStatus, Timestamp};
use crate::plan::Workflow;

/// What a handler works with: the state it may change, the pinned
/// definition, the event (named in rejections) and the time it happened.
pub(crate) struct Cx<'a> {
    /// The instance the event applies to.
    pub(crate) instance: &'a mut Instance,
    /// Its pinned definition.
    pub(crate) workflow: &'a Workflow,
    /// The event, for rejections.
    pub(crate) event: &'a Event,
    /// When it happened.
    pub(crate) at: Timestamp,
}

/// What a handler answers: the effects to carry out once the event is
/// durable, or why the event does not fit.
pub(crate) type Handled = Result<Vec<Effect>, Rejected>;

/// What the runtime must do for an event: write something with it (the
/// `Write*` effects, in the same atomic batch as the event), or act once it
/// is durable (everything else). The machine says what to write, so the
/// driver only applies it and a store never re-derives it from events.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write an outbox entry with the batch: an attempt is now in flight,
    /// and recovery re-dispatches it if no result is recorded.
    WriteOutbox {
        /// The attempt's idempotency key.
        key: String,
        /// What is in flight.
        entry: OutboxEntry,
    },
    /// Delete an outbox entry with the batch: the attempt it recorded has a result.
    DeleteOutbox {
        /// The attempt's idempotency key, as it was dispatched.
        key: String,
    },
    /// Index a decision's request id with the batch, so reusing the id is
    /// recognised once the instance has moved on (or from another instance).
    WriteRequest {
        /// The client's request id.
        request_id: String,
        /// A gate or a trigger's halt.
        subject: super::Subject,
        /// The phase.
        phase: String,
        /// The gate's or trigger's id.
        id: String,
        /// The decision.
        decision: Box<super::Decision>,
    },
    /// Index a passed gate's baseline with the batch, for later cycles and
    /// later instances of the workflow.
    WriteBaseline {
        /// `phase/gate`.
        gate: String,
        /// What the gate read.
        baseline: super::Baseline,
    },
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
    /// Run a gate approval's `notify` step: the gate started waiting,
    /// escalated or timed out.
    Notify {
        /// Phase index.
        phase: usize,
        /// Gate index within the phase.
        gate: usize,
        /// What happened, e.g. `awaiting_decision`.
        what: String,
    },
    /// Run a compensation attempt on its agent.
    Compensate {
        /// Its index in the rollback.
        step: usize,
        /// The attempt.
        attempt: u32,
        /// Its idempotency key.
        key: String,
    },
    /// Run a trigger's notification: its `notify` action, or its halt's
    /// approval `notify` step.
    TriggerNotify {
        /// Phase index.
        phase: usize,
        /// Trigger index within the phase.
        trigger: usize,
        /// What happened.
        what: String,
    },
}

/// The write of a decision's request id, if it has one.
pub(crate) fn request_write(subject: super::Subject, phase: &str, id: &str, decision: &super::Decision) -> Option<Effect> {
    (!decision.request_id.is_empty()).then(|| Effect::WriteRequest {
        request_id: decision.request_id.clone(),
        subject,
        phase: phase.to_owned(),
        id: id.to_owned(),
        decision: Box::new(decision.clone()),
    })
}

/// What an outbox entry says is in flight (stored as JSON:
/// `{"dispatch": {...}}` or `{"compensate": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxEntry {
    /// A task attempt.
    Dispatch {
        /// The phase's id.
        phase: String,
        /// The task's id.
        task: String,
        /// The attempt.
        attempt: u32,
    },
    /// A compensation attempt.
    Compensate {
        /// Its index in the rollback.
        step: usize,
        /// Its id.
        id: String,
        /// The attempt.
        attempt: u32,
    },
}

impl Effect {
    /// True for what is written with the event's batch rather than done after it.
    pub fn is_write(&self) -> bool {
        match self {
            Effect::WriteOutbox { .. } | Effect::DeleteOutbox { .. } | Effect::WriteRequest { .. } | Effect::WriteBaseline { .. } => true,
            Effect::Dispatch { .. }
            | Effect::Cancel { .. }
            | Effect::Notify { .. }
            | Effect::Compensate { .. }
            | Effect::TriggerNotify { .. } => false,
        }
    }
}

pub(crate) fn phase_index(workflow: &Workflow, event: &Event, id: &str) -> Result<usize, Rejected> {
    workflow.phase_index(id).ok_or_else(|| {
        Rejected::of(RejectKind::Unknown, event, format!("workflow `{}` has no phase `{id}`", workflow.name), "unknown phase")
    })
}

/// Stops the work in progress (of one phase, or all): cancel effects for
/// every attempt an agent runs (its result is recorded when it stops), and
/// every wait is cancelled here and now, since no agent reports on it.
pub(crate) fn cancel_in_flight(instance: &mut Instance, phase: Option<usize>, reason: &str, at: Timestamp) -> Vec<Effect> {
    for (p, state) in instance.phases.iter_mut().enumerate() {
        if phase.is_some_and(|only| only != p) {
            continue;
        }
        for task in &mut state.tasks {
            if let TaskStatus::Waiting { attempt, .. } = task.status {
                task.status = TaskStatus::Cancelled { attempt, at };
            }
        }
    }
    instance
        .in_flight()
        .into_iter()
        .filter(|(p, ..)| phase.is_none_or(|only| only == *p))
        .map(|(_, _, _, key)| Effect::Cancel { key, reason: reason.to_owned() })
        .collect()
}

/// The phase and task indexes of a task id, which must be in that phase.
pub(crate) fn task_index(workflow: &Workflow, event: &Event, phase: &str, task: &str) -> Result<(usize, usize), Rejected> {
    let p = phase_index(workflow, event, phase)?;
    match workflow.task_location(task) {
        Some((tp, t)) if tp == p => Ok((p, t)),
        _ => Err(Rejected::of(RejectKind::Unknown, event, format!("phase `{phase}` has no task `{task}`"), "unknown task")),
    }
}

/// The index of a gate of phase `p`.
pub(crate) fn gate_index(workflow: &Workflow, event: &Event, p: usize, id: &str) -> Result<usize, Rejected> {
    workflow.phases[p]
        .gates
        .iter()
        .position(|g| g.id == id)
        .ok_or_else(|| Rejected::new(event, format!("phase `{}` has no gate `{id}`", workflow.phases[p].id), "unknown gate"))
}

/// The phase and trigger indexes of a trigger id.
pub(crate) fn trigger_index(workflow: &Workflow, event: &Event, phase: &str, trigger: &str) -> Result<(usize, usize), Rejected> {
    let p = phase_index(workflow, event, phase)?;
    workflow.phases[p]
        .triggers
        .iter()
        .position(|t| t.id == trigger)
        .map(|k| (p, k))
        .ok_or_else(|| Rejected::of(RejectKind::Unknown, event, format!("phase `{phase}` has no trigger `{trigger}`"), "unknown trigger"))
}

/// The phase and watch indexes of a watch id.
pub(crate) fn watch_index(workflow: &Workflow, event: &Event, phase: &str, watch: &str) -> Result<(usize, usize), Rejected> {
    let p = phase_index(workflow, event, phase)?;
    match workflow.phases[p].watches.iter().position(|x| x.id == watch) {
        Some(w) => Ok((p, w)),
        None => Err(Rejected::of(RejectKind::Unknown, event, format!("phase `{phase}` has no watch `{watch}`"), "unknown watch")),
    }
}

/// Refuses the event unless the instance is running.
pub(crate) fn require_running(instance: &Instance, event: &Event) -> Result<(), Rejected> {
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

/// Refuses the event, naming the instance's status, unless `ok`.
pub(crate) fn require(instance: &Instance, event: &Event, ok: bool, why: &str) -> Result<(), Rejected> {
    if ok {
        Ok(())
    } else {
        Err(Rejected::new(event, format!("instance {} is {}", instance.id, instance.status.kind()), why))
    }
}

/// Refuses the event unless phase `p` is running.
pub(crate) fn require_phase_running(instance: &Instance, event: &Event, p: usize) -> Result<(), Rejected> {
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

/// The tasks of a phase that must finish before it can complete (on-demand
/// tasks only count once started).
pub(crate) fn phase_tasks_done(instance: &Instance, workflow: &Workflow, p: usize) -> bool {
    instance.phases[p]
        .tasks
        .iter()
        .zip(&workflow.phases[p].tasks)
        .all(|(state, task)| state.status.is_done() || (task.on_demand && !state.requested && matches!(state.status, TaskStatus::Pending)))
}

/// A phase whose tasks are done reflects its gates: on hold if one is, waiting
/// if one awaits a decision, running otherwise (decide then completes or
/// fails it).
pub(crate) fn settle_phase(phase: &mut PhaseState, at: Timestamp) {
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

//! What the handlers of every concern share: the effects they return and
//! the lookups and guards they start with. Both the dispatcher (`step.rs`)
//! and the reaction handlers (`react.rs`) import from here, so neither
//! imports the other back.

use super::{Event, Instance, RejectKind, Rejected};
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

pub(crate) fn phase_index(workflow: &Workflow, event: &Event, id: &str) -> Result<usize, Rejected> {
    workflow.phase_index(id).ok_or_else(|| {
        Rejected::of(RejectKind::Unknown, event, format!("workflow `{}` has no phase `{id}`", workflow.name), "unknown phase")
    })
}

/// Cancel effects for every in-flight attempt (of one phase, or all).
pub(crate) fn cancel_in_flight(instance: &Instance, phase: Option<usize>, reason: &str) -> Vec<Effect> {
    instance
        .in_flight()
        .into_iter()
        .filter(|(p, ..)| phase.is_none_or(|only| only == *p))
        .map(|(_, _, _, key)| Effect::Cancel { key, reason: reason.to_owned() })
        .collect()
}

//! The pure state machine: instance, phase and task states, the events that
//! move them, one [`step`] function and one [`decide`] function.
//!
//! Nothing here does I/O or reads a clock: time is an argument. `step`
//! applies one event to a state and returns the effects the runtime must carry
//! out once the event is durable, or a typed [`Rejected`] that names the state
//! and the event; a rejected event leaves the state untouched. `decide` looks
//! at a state and says which events should happen next (start a phase,
//! dispatch a task, schedule a retry, complete) and when to look again.
//! Replaying an instance's log through `step` rebuilds its state exactly.
//!
//! The legal transitions are declared in [`table`]; a test checks that `step`
//! accepts exactly those, and docs/state-machine.md is generated from it.

mod blockers;
mod decide;
mod event;
mod evidence;
pub mod gate;
mod react;
mod state;
mod step;
pub mod table;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use blockers::{blockers, Blocker};
pub use decide::{compensation_key, decide, idempotency_key, watches_due, Next};
pub use react::{compensation_step, rollback_plan};

pub use event::{Event, Record, RECORD_VERSION};
pub use gate::{Authority, CriterionResult, Decision, DecisionKind, Evaluation, GateState, GateStatus, Roles, Verdict};

pub use evidence::evidence;
pub use state::{
    Baseline, Compensation, Done, Instance, InstanceStatus, PendingTrigger, PhaseState, PhaseStatus, Rollback, Sample, SampleVerdict,
    TaskState, TaskStatus, WatchState, WATCH_WINDOW,
};
pub use step::{replay, step, Effect};

/// Milliseconds since the Unix epoch. The machine never reads a clock; the
/// runtime passes the time in, and records store it with each event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// This time plus a duration (saturating).
    pub fn after(self, duration: std::time::Duration) -> Self {
        Timestamp(self.0.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)))
    }

    /// Milliseconds from `earlier` to this time (0 if earlier is later).
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The current wall-clock time; for the runtime and the CLI, never for the machine.
    pub fn now() -> Self {
        let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0);
        write!(f, "{}", humantime::format_rfc3339_millis(time))
    }
}

/// An event that does not fit the state it was applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot apply {event} when {state}: {reason}")]
pub struct Rejected {
    /// The event's name, e.g. `TaskSucceeded(deploy)`.
    pub event: String,
    /// The relevant state, e.g. `task deploy is pending`.
    pub state: String,
    /// Why, in words.
    pub reason: String,
}

impl Rejected {
    pub(crate) fn new(event: &Event, state: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { event: event.describe(), state: state.into(), reason: reason.into() }
    }
}

#[cfg(test)]
mod react_tests;
#[cfg(test)]
mod tests;

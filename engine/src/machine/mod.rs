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

pub mod approval;
mod blockers;
mod decide;
mod event;
mod evidence;
pub mod gate;
mod guards;
mod handlers;
mod live;
pub mod payload;
mod state;
mod status;
mod step;
pub mod table;
mod watch_state;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use approval::{Authority, Group, GroupProgress, Subject, Target};
pub use blockers::{blockers, Blocker};
pub use decide::{compensation_key, decide, idempotency_key, watches_due, Next};
pub use handlers::rollback::{compensation_step, rollback_plan};
pub use handlers::watch::{sample_event, SampleResult};

pub use event::{Event, Record, RECORD_VERSION};
pub use gate::{Authentication, CriterionResult, Decision, DecisionKind, Evaluation, GateState, GateStatus, Roles, Verdict};

pub use evidence::{decision_inputs, evidence};
pub use guards::{Effect, OutboxEntry};
pub use live::{deadlines, watch_liveness, DeadlineState, WatchLiveness};
pub use state::{
    Baseline, Compensation, Done, Instance, InstanceStatus, PendingTrigger, PhaseState, PhaseStatus, Rollback, TaskState, TaskStatus,
};
pub use status::EffectiveStatus;
pub use step::{replay, step};
pub use watch_state::{Sample, SampleVerdict, WatchState, WATCH_WINDOW};

/// Milliseconds since the Unix epoch. The machine never reads a clock; the
/// runtime passes the time in (from its [`Clock`](crate::runtime::Clock)),
/// and records store it with each event.
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

    /// The time from `now` until this time, rounded up to whole seconds
    /// (zero once it has passed): what status shows as "time left".
    pub fn left(self, now: Timestamp) -> std::time::Duration {
        std::time::Duration::from_secs(self.since(now).div_ceil(1000))
    }
}

/// The first instant RFC 3339 cannot write (year 10000), in milliseconds.
const RFC3339_END_MS: u64 = 253_402_300_800_000;

impl fmt::Display for Timestamp {
    /// RFC 3339 with milliseconds. A time past year 9999 (which only a
    /// store written before durations were bounded can hold) prints as the
    /// number of milliseconds instead of panicking in the formatter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= RFC3339_END_MS {
            return write!(f, "after 9999-12-31 ({} ms since 1970)", self.0);
        }
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0);
        write!(f, "{}", humantime::format_rfc3339_millis(time))
    }
}

/// An event that does not fit the state it was applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action}: {state} ({reason})")]
pub struct Rejected {
    /// Why, as a kind: what the API answers (409, 404, 403) and scripts match on.
    pub kind: RejectKind,
    /// What was asked for, in a person's words: `retry`, `approve gate qa`.
    pub action: String,
    /// The event's name, e.g. `TaskSucceeded(deploy)`, for logs.
    pub event: String,
    /// The relevant state, e.g. `task deploy is pending`.
    pub state: String,
    /// Why, in words.
    pub reason: String,
}

/// The kinds of rejection, each mapped once to an HTTP status and an error
/// kind (`Error::kind`); the CLI exits 1 for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// The event does not fit the state (a task already succeeded, a gate
    /// already decided, an instance already finished): 409.
    WrongState,
    /// It names a phase, task, gate, trigger, watch or step the pinned
    /// definition does not have: 404.
    Unknown,
    /// The principal may not do it (self-approval, a second vote, another
    /// escalation level): 403.
    NotAllowed,
}

impl RejectKind {
    /// The stable name scripts and API clients match on.
    pub fn name(self) -> &'static str {
        match self {
            RejectKind::WrongState => "rejected",
            RejectKind::Unknown => "not_found",
            RejectKind::NotAllowed => "forbidden",
        }
    }
}

impl Rejected {
    /// The event does not fit the state.
    pub(crate) fn new(event: &Event, state: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::of(RejectKind::WrongState, event, state, reason)
    }

    /// A rejection of the given kind.
    pub(crate) fn of(kind: RejectKind, event: &Event, state: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { kind, action: event.action(), event: event.describe(), state: state.into(), reason: reason.into() }
    }
}

#[cfg(test)]
mod react_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod timestamp_tests {
    use super::Timestamp;

    /// Regression (hardening issue): `status` of an instance with a
    /// deadline far in the future exited 101 in the RFC 3339 formatter.
    #[test]
    fn regression_a_time_past_year_9999_prints_without_panicking() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp(253_402_300_799_999).to_string(), "9999-12-31T23:59:59.999Z");
        assert!(Timestamp(253_402_300_800_000).to_string().starts_with("after 9999-12-31"));
        assert!(Timestamp(u64::MAX).to_string().contains(&u64::MAX.to_string()));
    }
}

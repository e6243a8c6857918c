//! Events: every state change is one, persisted before it counts.

use serde::{Deserialize, Serialize};

use super::{payload, Timestamp};

/// Something that happened to an instance. Events name phases and tasks by
/// id, so a log reads on its own; the pinned definition keeps ids stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "type")]
#[strum_discriminants(name(EventKind), vis(pub), derive(Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::VariantArray))]
#[strum_discriminants(doc = "The kinds of event, without their data: what the transition table is declared over.")]
pub enum Event {
    /// The instance was created from a pinned definition.
    InstanceStarted(payload::InstanceStarted),
    /// A phase began (a new attempt of it).
    PhaseStarted(payload::PhaseStarted),
    /// A task attempt was handed to its agent.
    TaskDispatched(payload::TaskDispatched),
    /// A task attempt succeeded.
    TaskSucceeded(payload::TaskSucceeded),
    /// A task attempt failed.
    TaskFailed(payload::TaskFailed),
    /// A failed task will be dispatched again at `due`.
    RetryScheduled(payload::RetryScheduled),
    /// A task was not run because its `when` condition did not hold.
    TaskSkipped(payload::TaskSkipped),
    /// A `wait` task began: the engine's timer ends it at `due`.
    WaitStarted(payload::WaitStarted),
    /// A `wait` task's time is up: it succeeded.
    WaitElapsed(payload::WaitElapsed),
    /// A phase's or the instance's deadline passed before it was done;
    /// its `outcome` was applied.
    DeadlinePassed(payload::DeadlinePassed),
    /// An in-flight attempt was cancelled.
    TaskCancelled(payload::TaskCancelled),
    /// A gate's criteria were evaluated against the evidence.
    GateEvaluated(payload::GateEvaluated),
    /// A person decided at a gate.
    DecisionRecorded(payload::DecisionRecorded),
    /// A gate's deadline passed with no decision; `action` was applied.
    GateTimedOut(payload::GateTimedOut),
    /// A phase passed.
    PhaseCompleted(payload::PhaseCompleted),
    /// A phase failed.
    PhaseFailed(payload::PhaseFailed),
    /// Every phase passed.
    InstanceCompleted,
    /// The instance failed.
    InstanceFailed(payload::InstanceFailed),
    /// An operator stopped new dispatch.
    Halted(payload::Halted),
    /// An operator let a halted instance go on.
    Resumed(payload::Resumed),
    /// An operator cancelled the instance.
    Cancelled(payload::Cancelled),
    /// An operator redrove a failed instance from its failed tasks.
    Redriven(payload::Redriven),
    /// An external event arrived (an incident with its severity, say);
    /// conditions read its data as `signals.<name>`.
    SignalReceived(payload::SignalReceived),
    /// A watch took a sample.
    WatchSampled(payload::WatchSampled),
    /// A watch had no data for as long as its `for` and its `no_data` is
    /// `inconclusive`: the instance halts for a person.
    WatchInconclusive(payload::WatchInconclusive),
    /// A trigger's event happened and its `when` held: its action is taken.
    TriggerFired(payload::TriggerFired),
    /// A trigger's event happened but it did not act (its `when` did not hold, say).
    TriggerSkipped(payload::TriggerSkipped),
    /// A person decided on a trigger's halt for approval.
    TriggerDecided(payload::TriggerDecided),
    /// A trigger halt's deadline passed with no decision; `action` was applied.
    TriggerTimedOut(payload::TriggerTimedOut),
    /// An operator asked to compensate completed work.
    RollbackStarted(payload::RollbackStarted),
    /// A compensation attempt was handed to its agent.
    CompensationDispatched(payload::CompensationDispatched),
    /// A compensation attempt succeeded.
    CompensationSucceeded(payload::CompensationSucceeded),
    /// A compensation attempt failed.
    CompensationFailed(payload::CompensationFailed),
    /// A failed compensation will be dispatched again at `due`.
    CompensationRetryScheduled(payload::CompensationRetryScheduled),
    /// Every compensation succeeded.
    RollbackCompleted,
    /// A scheduled phase's next cycle is due: it runs again.
    ScheduleFired(payload::ScheduleFired),
    /// The baselines the instance's gates compare with, from earlier
    /// instances of the workflow (or the one named at start).
    BaselinesLoaded(payload::BaselinesLoaded),
}

impl EventKind {
    /// The event type's name, as the log and the transition table write it.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

impl Event {
    /// The event's type name, as the transition table writes it.
    pub fn kind(&self) -> &'static str {
        EventKind::from(self).into()
    }

    /// What a person asked for when they caused this event (`retry`,
    /// `approve gate launch/go`), for refusals that speak of commands, not
    /// events.
    pub fn action(&self) -> String {
        match self {
            Event::Halted(_) => "halt".to_owned(),
            Event::Resumed(_) => "resume".to_owned(),
            Event::Cancelled(_) => "cancel".to_owned(),
            Event::Redriven(payload::Redriven { tasks, .. }) if tasks.len() == 1 => format!("retry task {}", tasks[0]),
            Event::Redriven(_) => "retry".to_owned(),
            Event::SignalReceived(payload::SignalReceived { name, .. }) => format!("deliver signal {name}"),
            Event::DecisionRecorded(payload::DecisionRecorded { phase, gate, decision }) => {
                format!("{} gate {phase}/{gate}", decision.kind.verb())
            }
            Event::TriggerDecided(payload::TriggerDecided { phase, trigger, decision }) => {
                format!("{} trigger {phase}/{trigger}", decision.kind.verb())
            }
            Event::RollbackStarted(payload::RollbackStarted { to: Some(to), .. }) => format!("roll back to phase {to}"),
            Event::RollbackStarted(payload::RollbackStarted { to: None, .. }) => "roll back".to_owned(),
            Event::InstanceStarted(_) => "start".to_owned(),
            // The engine's own steps: named as the history names them.
            _ => format!("record {}", self.describe()),
        }
    }

    /// The event's name with its subject, e.g. `TaskSucceeded(deploy#2)`, for logs.
    pub fn describe(&self) -> String {
        match self {
            Event::PhaseStarted(payload::PhaseStarted { phase, attempt }) => format!("PhaseStarted({phase}#{attempt})"),
            Event::TaskDispatched(payload::TaskDispatched { task, attempt, .. })
            | Event::TaskSucceeded(payload::TaskSucceeded { task, attempt, .. })
            | Event::TaskFailed(payload::TaskFailed { task, attempt, .. })
            | Event::RetryScheduled(payload::RetryScheduled { task, attempt, .. })
            | Event::TaskCancelled(payload::TaskCancelled { task, attempt, .. }) => {
                format!("{}({task}#{attempt})", self.kind())
            }
            Event::TaskSkipped(payload::TaskSkipped { task, .. }) => format!("TaskSkipped({task})"),
            Event::WaitStarted(payload::WaitStarted { task, attempt, due, .. }) => format!("WaitStarted({task}#{attempt} until {due})"),
            Event::WaitElapsed(payload::WaitElapsed { task, attempt, .. }) => format!("WaitElapsed({task}#{attempt})"),
            Event::DeadlinePassed(payload::DeadlinePassed { phase, outcome, .. }) => {
                format!("DeadlinePassed({}: {})", phase.as_deref().unwrap_or("instance"), outcome.name())
            }
            Event::GateEvaluated(payload::GateEvaluated { gate, .. }) | Event::GateTimedOut(payload::GateTimedOut { gate, .. }) => {
                format!("{}({gate})", self.kind())
            }
            Event::DecisionRecorded(payload::DecisionRecorded { gate, decision, .. }) => {
                format!("DecisionRecorded({gate}: {} by {})", decision.kind.verb(), decision.principal)
            }
            Event::PhaseCompleted(payload::PhaseCompleted { phase }) | Event::PhaseFailed(payload::PhaseFailed { phase, .. }) => {
                format!("{}({phase})", self.kind())
            }
            Event::InstanceStarted(_)
            | Event::InstanceCompleted
            | Event::InstanceFailed(_)
            | Event::Halted(_)
            | Event::Resumed(_)
            | Event::Cancelled(_)
            | Event::Redriven(_) => self.kind().to_owned(),
            Event::SignalReceived(payload::SignalReceived { name, .. }) => format!("SignalReceived({name})"),
            Event::WatchSampled(payload::WatchSampled { watch, value, verdict, .. }) => match value {
                Some(value) => format!("WatchSampled({watch}={value}: {})", verdict.name()),
                None => format!("WatchSampled({watch}: {})", verdict.name()),
            },
            Event::TriggerFired(payload::TriggerFired { trigger, .. })
            | Event::TriggerSkipped(payload::TriggerSkipped { trigger, .. })
            | Event::TriggerTimedOut(payload::TriggerTimedOut { trigger, .. }) => {
                format!("{}({trigger})", self.kind())
            }
            Event::TriggerDecided(payload::TriggerDecided { trigger, decision, .. }) => {
                format!("TriggerDecided({trigger}: {} by {})", decision.kind.verb(), decision.principal)
            }
            Event::RollbackStarted(payload::RollbackStarted { to: Some(to), .. }) => format!("RollbackStarted(to {to})"),
            Event::RollbackStarted(payload::RollbackStarted { to: None, .. }) | Event::RollbackCompleted => self.kind().to_owned(),
            Event::CompensationDispatched(payload::CompensationDispatched { id, attempt, .. })
            | Event::CompensationSucceeded(payload::CompensationSucceeded { id, attempt, .. })
            | Event::CompensationFailed(payload::CompensationFailed { id, attempt, .. })
            | Event::CompensationRetryScheduled(payload::CompensationRetryScheduled { id, attempt, .. }) => {
                format!("{}({id}#{attempt})", self.kind())
            }
            Event::ScheduleFired(payload::ScheduleFired { phase }) => format!("ScheduleFired({phase})"),
            Event::WatchInconclusive(payload::WatchInconclusive { watch, .. }) => format!("WatchInconclusive({watch})"),
            Event::BaselinesLoaded(payload::BaselinesLoaded { baselines }) => format!("BaselinesLoaded({})", baselines.len()),
        }
    }
}

/// The version of [`Record`] this build writes.
pub const RECORD_VERSION: u32 = 1;

/// An event as stored: versioned, with its sequence number and time. Decoding
/// accepts exactly the versions listed here; anything else quarantines the
/// instance instead of guessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum Record {
    /// Version 1.
    #[serde(rename = "1")]
    V1 {
        /// Sequence number (1-based, contiguous per instance).
        seq: u64,
        /// When it happened.
        at: Timestamp,
        /// What happened.
        event: Event,
        /// Its link in the instance's audit chain: the hash of the record
        /// before it (for event 1, of the instance's id). The runtime sets
        /// it as it writes the record; records written before the chain
        /// existed have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev: Option<String>,
    },
}

impl Record {
    /// A version-1 record, not linked yet.
    pub fn new(seq: u64, at: Timestamp, event: Event) -> Self {
        Record::V1 { seq, at, event, prev: None }
    }

    /// Its link in the audit chain, if it has one.
    pub fn prev(&self) -> Option<&str> {
        match self {
            Record::V1 { prev, .. } => prev.as_deref(),
        }
    }

    /// Its sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Record::V1 { seq, .. } => *seq,
        }
    }

    /// Its time.
    pub fn at(&self) -> Timestamp {
        match self {
            Record::V1 { at, .. } => *at,
        }
    }

    /// Its event.
    pub fn event(&self) -> &Event {
        match self {
            Record::V1 { event, .. } => event,
        }
    }
}

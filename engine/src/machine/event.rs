//! Events: every state change is one, persisted before it counts.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Decision, Evaluation, SampleVerdict, Timestamp};
use crate::model::OnTimeout;

/// Something that happened to an instance. Events name phases and tasks by
/// id, so a log reads on its own; the pinned definition keeps ids stable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// The instance was created from a pinned definition.
    InstanceStarted {
        /// The workflow's name.
        workflow: String,
        /// Content hash of the pinned definition.
        definition_hash: String,
        /// Variables after defaults and overrides.
        vars: Map<String, Value>,
        /// Who started it.
        started_by: String,
    },
    /// A phase began (a new attempt of it).
    PhaseStarted {
        /// The phase.
        phase: String,
        /// Its attempt number.
        attempt: u32,
    },
    /// A task attempt was handed to its agent.
    TaskDispatched {
        /// The phase.
        phase: String,
        /// The task.
        task: String,
        /// The attempt.
        attempt: u32,
        /// The idempotency key the agent receives (the same on re-dispatch after a crash).
        key: String,
    },
    /// A task attempt succeeded.
    TaskSucceeded {
        /// The phase.
        phase: String,
        /// The task.
        task: String,
        /// The attempt.
        attempt: u32,
        /// The agent's output.
        output: Value,
        /// How long the attempt took.
        duration_ms: u64,
    },
    /// A task attempt failed.
    TaskFailed {
        /// The phase.
        phase: String,
        /// The task.
        task: String,
        /// The attempt.
        attempt: u32,
        /// The agent's message.
        error: String,
        /// Whether retrying could help.
        retryable: bool,
    },
    /// A failed task will be dispatched again at `due`.
    RetryScheduled {
        /// The phase.
        phase: String,
        /// The task.
        task: String,
        /// The attempt that will run.
        attempt: u32,
        /// When.
        due: Timestamp,
    },
    /// A task was not run because its `when` condition did not hold.
    TaskSkipped {
        /// The phase.
        phase: String,
        /// The task.
        task: String,
        /// Why.
        reason: String,
    },
    /// An in-flight attempt was cancelled.
    TaskCancelled {
        /// The phase.
        phase: String,
        /// The task.
        task: String,
        /// The attempt.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// A gate's criteria were evaluated against the evidence.
    GateEvaluated {
        /// The phase.
        phase: String,
        /// The gate.
        gate: String,
        /// Each criterion's result and the values it read.
        evaluation: Evaluation,
    },
    /// A person decided at a gate.
    DecisionRecorded {
        /// The phase.
        phase: String,
        /// The gate.
        gate: String,
        /// The decision.
        decision: Decision,
    },
    /// A gate's deadline passed with no decision; `action` was applied.
    GateTimedOut {
        /// The phase.
        phase: String,
        /// The gate.
        gate: String,
        /// The escalation level whose deadline passed.
        level: usize,
        /// What the definition's `on_timeout` said to do.
        action: OnTimeout,
    },
    /// A phase passed.
    PhaseCompleted {
        /// The phase.
        phase: String,
    },
    /// A phase failed.
    PhaseFailed {
        /// The phase.
        phase: String,
        /// Why.
        reason: String,
    },
    /// Every phase passed.
    InstanceCompleted,
    /// The instance failed.
    InstanceFailed {
        /// Why.
        reason: String,
    },
    /// An operator stopped new dispatch.
    Halted {
        /// Who.
        by: String,
        /// Why.
        reason: String,
        /// Whether in-flight tasks are cancelled too.
        cancel_running: bool,
    },
    /// An operator let a halted instance go on.
    Resumed {
        /// Who.
        by: String,
    },
    /// An operator cancelled the instance.
    Cancelled {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// An operator redrove a failed instance from its failed tasks.
    Redriven {
        /// Who.
        by: String,
        /// The tasks to run again (ids).
        tasks: Vec<String>,
    },
    /// An external event arrived (an incident with its severity, say);
    /// conditions read its data as `signals.<name>`.
    SignalReceived {
        /// The declared signal's name.
        name: String,
        /// Its data.
        data: Value,
        /// Who sent it.
        by: String,
    },
    /// A watch took a sample.
    WatchSampled {
        /// The phase.
        phase: String,
        /// The watch.
        watch: String,
        /// The value, if the agent returned one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
        /// What it meant for the breach condition (missing data before the `no_data` policy applies).
        verdict: SampleVerdict,
        /// The agent's error or why the condition could not be applied, verbatim.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        detail: String,
    },
    /// A watch had no data for as long as its `for` and its `no_data` is
    /// `inconclusive`: the instance halts for a person.
    WatchInconclusive {
        /// The phase.
        phase: String,
        /// The watch.
        watch: String,
        /// Why, and what the person can do.
        reason: String,
    },
    /// A trigger's event happened and its `when` held: its action is taken.
    TriggerFired {
        /// The phase declaring it.
        phase: String,
        /// The trigger.
        trigger: String,
        /// What happened.
        cause: String,
    },
    /// A trigger's event happened but it did not act (its `when` did not hold, say).
    TriggerSkipped {
        /// The phase declaring it.
        phase: String,
        /// The trigger.
        trigger: String,
        /// Why.
        reason: String,
    },
    /// A person decided on a trigger's halt for approval.
    TriggerDecided {
        /// The phase declaring the trigger.
        phase: String,
        /// The trigger.
        trigger: String,
        /// The decision.
        decision: Decision,
    },
    /// A trigger halt's deadline passed with no decision; `action` was applied.
    TriggerTimedOut {
        /// The phase declaring the trigger.
        phase: String,
        /// The trigger.
        trigger: String,
        /// The escalation level whose deadline passed.
        level: usize,
        /// What the approval's `on_timeout` said to do.
        action: OnTimeout,
    },
    /// An operator asked to compensate completed work.
    RollbackStarted {
        /// Who.
        by: String,
        /// Why.
        reason: String,
        /// Re-enter this phase afterwards instead of ending rolled back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// A compensation attempt was handed to its agent.
    CompensationDispatched {
        /// Its index in the rollback.
        step: usize,
        /// Its id.
        id: String,
        /// The attempt.
        attempt: u32,
        /// The idempotency key the agent receives.
        key: String,
    },
    /// A compensation attempt succeeded.
    CompensationSucceeded {
        /// Its index in the rollback.
        step: usize,
        /// Its id.
        id: String,
        /// The attempt.
        attempt: u32,
        /// The agent's output.
        output: Value,
        /// How long it took.
        duration_ms: u64,
    },
    /// A compensation attempt failed.
    CompensationFailed {
        /// Its index in the rollback.
        step: usize,
        /// Its id.
        id: String,
        /// The attempt.
        attempt: u32,
        /// The agent's message.
        error: String,
        /// Whether retrying could help.
        retryable: bool,
    },
    /// A failed compensation will be dispatched again at `due`.
    CompensationRetryScheduled {
        /// Its index in the rollback.
        step: usize,
        /// Its id.
        id: String,
        /// The attempt that will run.
        attempt: u32,
        /// When.
        due: Timestamp,
    },
    /// Every compensation succeeded.
    RollbackCompleted,
    /// A scheduled phase's next cycle is due: it runs again.
    ScheduleFired {
        /// The phase.
        phase: String,
    },
    /// The baselines the instance's gates compare with, from earlier
    /// instances of the workflow (or the one named at start).
    BaselinesLoaded {
        /// `phase/gate` → baseline.
        baselines: std::collections::BTreeMap<String, super::Baseline>,
    },
}

impl Event {
    /// The event's type name, as the transition table writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::InstanceStarted { .. } => "InstanceStarted",
            Event::PhaseStarted { .. } => "PhaseStarted",
            Event::TaskDispatched { .. } => "TaskDispatched",
            Event::TaskSucceeded { .. } => "TaskSucceeded",
            Event::TaskFailed { .. } => "TaskFailed",
            Event::RetryScheduled { .. } => "RetryScheduled",
            Event::TaskSkipped { .. } => "TaskSkipped",
            Event::TaskCancelled { .. } => "TaskCancelled",
            Event::GateEvaluated { .. } => "GateEvaluated",
            Event::DecisionRecorded { .. } => "DecisionRecorded",
            Event::GateTimedOut { .. } => "GateTimedOut",
            Event::PhaseCompleted { .. } => "PhaseCompleted",
            Event::PhaseFailed { .. } => "PhaseFailed",
            Event::InstanceCompleted => "InstanceCompleted",
            Event::InstanceFailed { .. } => "InstanceFailed",
            Event::Halted { .. } => "Halted",
            Event::Resumed { .. } => "Resumed",
            Event::Cancelled { .. } => "Cancelled",
            Event::Redriven { .. } => "Redriven",
            Event::SignalReceived { .. } => "SignalReceived",
            Event::WatchSampled { .. } => "WatchSampled",
            Event::WatchInconclusive { .. } => "WatchInconclusive",
            Event::TriggerFired { .. } => "TriggerFired",
            Event::TriggerSkipped { .. } => "TriggerSkipped",
            Event::TriggerDecided { .. } => "TriggerDecided",
            Event::TriggerTimedOut { .. } => "TriggerTimedOut",
            Event::RollbackStarted { .. } => "RollbackStarted",
            Event::CompensationDispatched { .. } => "CompensationDispatched",
            Event::CompensationSucceeded { .. } => "CompensationSucceeded",
            Event::CompensationFailed { .. } => "CompensationFailed",
            Event::CompensationRetryScheduled { .. } => "CompensationRetryScheduled",
            Event::RollbackCompleted => "RollbackCompleted",
            Event::ScheduleFired { .. } => "ScheduleFired",
            Event::BaselinesLoaded { .. } => "BaselinesLoaded",
        }
    }

    /// What a person asked for when they caused this event (`retry`,
    /// `approve gate launch/go`), for refusals that speak of commands, not
    /// events.
    pub fn action(&self) -> String {
        match self {
            Event::Halted { .. } => "halt".to_owned(),
            Event::Resumed { .. } => "resume".to_owned(),
            Event::Cancelled { .. } => "cancel".to_owned(),
            Event::Redriven { tasks, .. } if tasks.len() == 1 => format!("retry task {}", tasks[0]),
            Event::Redriven { .. } => "retry".to_owned(),
            Event::SignalReceived { name, .. } => format!("deliver signal {name}"),
            Event::DecisionRecorded { phase, gate, decision } => format!("{} gate {phase}/{gate}", decision.kind.verb()),
            Event::TriggerDecided { phase, trigger, decision } => format!("{} trigger {phase}/{trigger}", decision.kind.verb()),
            Event::RollbackStarted { to: Some(to), .. } => format!("roll back to phase {to}"),
            Event::RollbackStarted { to: None, .. } => "roll back".to_owned(),
            Event::InstanceStarted { .. } => "start".to_owned(),
            // The engine's own steps: named as the history names them.
            _ => format!("record {}", self.describe()),
        }
    }

    /// The event's name with its subject, e.g. `TaskSucceeded(deploy#2)`, for logs.
    pub fn describe(&self) -> String {
        match self {
            Event::PhaseStarted { phase, attempt } => format!("PhaseStarted({phase}#{attempt})"),
            Event::TaskDispatched { task, attempt, .. }
            | Event::TaskSucceeded { task, attempt, .. }
            | Event::TaskFailed { task, attempt, .. }
            | Event::RetryScheduled { task, attempt, .. }
            | Event::TaskCancelled { task, attempt, .. } => {
                format!("{}({task}#{attempt})", self.kind())
            }
            Event::TaskSkipped { task, .. } => format!("TaskSkipped({task})"),
            Event::GateEvaluated { gate, .. } | Event::GateTimedOut { gate, .. } => {
                format!("{}({gate})", self.kind())
            }
            Event::DecisionRecorded { gate, decision, .. } => {
                format!("DecisionRecorded({gate}: {} by {})", decision.kind.verb(), decision.principal)
            }
            Event::PhaseCompleted { phase } | Event::PhaseFailed { phase, .. } => {
                format!("{}({phase})", self.kind())
            }
            Event::InstanceStarted { .. }
            | Event::InstanceCompleted
            | Event::InstanceFailed { .. }
            | Event::Halted { .. }
            | Event::Resumed { .. }
            | Event::Cancelled { .. }
            | Event::Redriven { .. } => self.kind().to_owned(),
            Event::SignalReceived { name, .. } => format!("SignalReceived({name})"),
            Event::WatchSampled { watch, value, verdict, .. } => match value {
                Some(value) => format!("WatchSampled({watch}={value}: {})", verdict.name()),
                None => format!("WatchSampled({watch}: {})", verdict.name()),
            },
            Event::TriggerFired { trigger, .. } | Event::TriggerSkipped { trigger, .. } | Event::TriggerTimedOut { trigger, .. } => {
                format!("{}({trigger})", self.kind())
            }
            Event::TriggerDecided { trigger, decision, .. } => {
                format!("TriggerDecided({trigger}: {} by {})", decision.kind.verb(), decision.principal)
            }
            Event::RollbackStarted { to: Some(to), .. } => format!("RollbackStarted(to {to})"),
            Event::RollbackStarted { to: None, .. } | Event::RollbackCompleted => self.kind().to_owned(),
            Event::CompensationDispatched { id, attempt, .. }
            | Event::CompensationSucceeded { id, attempt, .. }
            | Event::CompensationFailed { id, attempt, .. }
            | Event::CompensationRetryScheduled { id, attempt, .. } => format!("{}({id}#{attempt})", self.kind()),
            Event::ScheduleFired { phase } => format!("ScheduleFired({phase})"),
            Event::WatchInconclusive { watch, .. } => format!("WatchInconclusive({watch})"),
            Event::BaselinesLoaded { baselines } => format!("BaselinesLoaded({})", baselines.len()),
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
    },
}

impl Record {
    /// A version-1 record.
    pub fn new(seq: u64, at: Timestamp, event: Event) -> Self {
        Record::V1 { seq, at, event }
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

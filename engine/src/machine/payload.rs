//! The data each [`Event`](super::Event) carries, one struct per event, so
//! handlers take one argument and a stored field is renamed in one place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Baseline, Decision, Evaluation, SampleVerdict, Timestamp};
use crate::model::{DeadlineOutcome, OnTimeout};

/// The instance was created from a pinned definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStarted {
    /// The workflow's name.
    pub workflow: String,
    /// Content hash of the pinned definition.
    pub definition_hash: String,
    /// Variables after defaults and overrides.
    pub vars: Map<String, Value>,
    /// Who started it.
    pub started_by: String,
}

/// A phase began (a new attempt of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseStarted {
    /// The phase.
    pub phase: String,
    /// Its attempt number.
    pub attempt: u32,
}

/// A task attempt was handed to its agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDispatched {
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// The attempt.
    pub attempt: u32,
    /// The idempotency key the agent receives (the same on re-dispatch after a crash).
    pub key: String,
}

/// A task attempt succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSucceeded {
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// The attempt.
    pub attempt: u32,
    /// The agent's output.
    pub output: Value,
    /// How long the attempt took.
    pub duration_ms: u64,
}

/// A task attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskFailed {
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// The attempt.
    pub attempt: u32,
    /// The agent's message.
    pub error: String,
    /// Whether retrying could help.
    pub retryable: bool,
}

/// A `wait` task began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitStarted {
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// The attempt.
    pub attempt: u32,
    /// When the wait ends: fixed here, so a restart resumes it with the time left.
    pub due: Timestamp,
}

/// A `wait` task's time is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitElapsed {
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// The attempt.
    pub attempt: u32,
}

/// A deadline passed before its phase (or the instance) was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlinePassed {
    /// The phase whose deadline it is; `None` for the instance's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// What was done, as the definition declares.
    pub outcome: DeadlineOutcome,
    /// What passed, in words (`phase launch's deadline of 2h passed`).
    pub reason: String,
}

/// A failed task will be dispatched again at `due`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryScheduled {
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// The attempt that will run.
    pub attempt: u32,
    /// When.
    pub due: Timestamp,
}

/// A task was not run because its `when` condition did not hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSkipped {
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// Why.
    pub reason: String,
}

/// An in-flight attempt was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCancelled {
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// The attempt.
    pub attempt: u32,
    /// Why.
    pub reason: String,
}

/// A gate's criteria were evaluated against the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateEvaluated {
    /// The phase.
    pub phase: String,
    /// The gate.
    pub gate: String,
    /// Each criterion's result and the values it read.
    pub evaluation: Evaluation,
}

/// A person decided at a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecorded {
    /// The phase.
    pub phase: String,
    /// The gate.
    pub gate: String,
    /// The decision.
    pub decision: Decision,
}

/// A gate's deadline passed with no decision; `action` was applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateTimedOut {
    /// The phase.
    pub phase: String,
    /// The gate.
    pub gate: String,
    /// The escalation level whose deadline passed.
    pub level: usize,
    /// What the definition's `on_timeout` said to do.
    pub action: OnTimeout,
}

/// A phase passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseCompleted {
    /// The phase.
    pub phase: String,
}

/// A phase failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseFailed {
    /// The phase.
    pub phase: String,
    /// Why.
    pub reason: String,
}

/// The instance failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceFailed {
    /// Why.
    pub reason: String,
}

/// An operator stopped new dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Halted {
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Whether in-flight tasks are cancelled too.
    pub cancel_running: bool,
}

/// An operator let a halted instance go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resumed {
    /// Who.
    pub by: String,
}

/// An operator cancelled the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancelled {
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// An operator redrove a failed instance from its failed tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redriven {
    /// Who.
    pub by: String,
    /// The tasks to run again (ids).
    pub tasks: Vec<String>,
    /// Run this whole phase again instead: every task, then its gates
    /// (`retry --phase`), after a gate failed or while it is on hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// An external event arrived (an incident with its severity, say);
/// conditions read its data as `signals.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalReceived {
    /// The declared signal's name.
    pub name: String,
    /// Its data.
    pub data: Value,
    /// Who sent it.
    pub by: String,
}

/// A watch took a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchSampled {
    /// The phase.
    pub phase: String,
    /// The watch.
    pub watch: String,
    /// The value, if the agent returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What it meant for the breach condition (missing data before the `no_data` policy applies).
    pub verdict: SampleVerdict,
    /// The agent's error or why the condition could not be applied, verbatim.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// True when the agent failed to reach the target (as opposed to an
    /// answer without data, or a sample that timed out: slow evidence is
    /// missing evidence); absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreachable: bool,
}

/// A watch had no data for as long as its `for` and its `no_data` is
/// `inconclusive`: the instance halts for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchInconclusive {
    /// The phase.
    pub phase: String,
    /// The watch.
    pub watch: String,
    /// Why, and what the person can do.
    pub reason: String,
}

/// A trigger's event happened and its `when` held: its action is taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerFired {
    /// The phase declaring it.
    pub phase: String,
    /// The trigger.
    pub trigger: String,
    /// What happened.
    pub cause: String,
}

/// A trigger's event happened but it did not act (its `when` did not hold, say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerSkipped {
    /// The phase declaring it.
    pub phase: String,
    /// The trigger.
    pub trigger: String,
    /// Why.
    pub reason: String,
}

/// A person decided on a trigger's halt for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerDecided {
    /// The phase declaring the trigger.
    pub phase: String,
    /// The trigger.
    pub trigger: String,
    /// The decision.
    pub decision: Decision,
}

/// A trigger halt's deadline passed with no decision; `action` was applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerTimedOut {
    /// The phase declaring the trigger.
    pub phase: String,
    /// The trigger.
    pub trigger: String,
    /// The escalation level whose deadline passed.
    pub level: usize,
    /// What the approval's `on_timeout` said to do.
    pub action: OnTimeout,
}

/// An operator asked to compensate completed work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackStarted {
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Re-enter this phase afterwards instead of ending rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A compensation attempt was handed to its agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationDispatched {
    /// Its index in the rollback.
    pub step: usize,
    /// Its id.
    pub id: String,
    /// The attempt.
    pub attempt: u32,
    /// The idempotency key the agent receives.
    pub key: String,
}

/// A compensation attempt succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationSucceeded {
    /// Its index in the rollback.
    pub step: usize,
    /// Its id.
    pub id: String,
    /// The attempt.
    pub attempt: u32,
    /// The agent's output.
    pub output: Value,
    /// How long it took.
    pub duration_ms: u64,
}

/// A compensation attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationFailed {
    /// Its index in the rollback.
    pub step: usize,
    /// Its id.
    pub id: String,
    /// The attempt.
    pub attempt: u32,
    /// The agent's message.
    pub error: String,
    /// Whether retrying could help.
    pub retryable: bool,
}

/// A failed compensation will be dispatched again at `due`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationRetryScheduled {
    /// Its index in the rollback.
    pub step: usize,
    /// Its id.
    pub id: String,
    /// The attempt that will run.
    pub attempt: u32,
    /// When.
    pub due: Timestamp,
}

/// A scheduled phase's next cycle is due: it runs again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleFired {
    /// The phase.
    pub phase: String,
}

/// The baselines the instance's gates compare with, from earlier
/// instances of the workflow (or the one named at start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselinesLoaded {
    /// `phase/gate` → baseline.
    pub baselines: BTreeMap<String, Baseline>,
}

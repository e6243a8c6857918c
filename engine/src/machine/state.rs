//! Instance, phase and task states. Each state is an enum whose variants
//! carry their own data; matches over them are exhaustive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};

use super::{GateState, Timestamp};

use crate::plan::Workflow;

/// One running (or finished) workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Its id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Content hash of the pinned definition.
    pub definition_hash: String,
    /// Variables: defaults overridden by the values given at start.
    pub vars: Map<String, Value>,
    /// Who started it.
    pub started_by: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Where it stands.
    pub status: InstanceStatus,
    /// Phase states, in definition order.
    pub phases: Vec<PhaseState>,
    /// Sequence number of the last event applied.
    pub seq: u64,
    /// Time of the last event applied.
    pub updated_at: Timestamp,
    /// The data of the latest signal of each name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signals: BTreeMap<String, Value>,
}

/// Where an instance stands. Whether it is waiting for people is derived
/// (see [`Instance::effective_status`]), because it depends on its phases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Work proceeds.
    Running,
    /// An operator stopped new dispatch.
    Halted {
        /// Who halted it.
        by: String,
        /// Why.
        reason: String,
        /// Whether in-flight tasks were cancelled.
        cancel_running: bool,
        /// When.
        at: Timestamp,
    },
    /// Every phase passed.
    Completed {
        /// When.
        at: Timestamp,
    },
    /// A phase failed and nothing recovered it.
    Failed {
        /// Why.
        reason: String,
        /// When.
        at: Timestamp,
    },
    /// An operator cancelled it.
    Cancelled {
        /// Who.
        by: String,
        /// Why.
        reason: String,
        /// When.
        at: Timestamp,
    },
}

impl InstanceStatus {
    /// The variant's name, as the transition table writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            InstanceStatus::Running => "running",
            InstanceStatus::Halted { .. } => "halted",
            InstanceStatus::Completed { .. } => "completed",
            InstanceStatus::Failed { .. } => "failed",
            InstanceStatus::Cancelled { .. } => "cancelled",
        }
    }

    /// True once nothing more will happen (completed or cancelled; a failed
    /// instance can still be redriven).
    pub fn is_final(&self) -> bool {
        match self {
            InstanceStatus::Completed { .. } | InstanceStatus::Cancelled { .. } => true,
            InstanceStatus::Running | InstanceStatus::Halted { .. } | InstanceStatus::Failed { .. } => false,
        }
    }
}

/// A phase within an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseState {
    /// Its id.
    pub id: String,
    /// 0 before it first starts, then 1, 2, ... (loop-backs start new attempts).
    pub attempt: u32,
    /// Where it stands.
    pub status: PhaseStatus,
    /// Task states, in definition order.
    pub tasks: Vec<TaskState>,
    /// Gate states, in definition order.
    #[serde(default)]
    pub gates: Vec<GateState>,
}

/// Where a phase stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PhaseStatus {
    /// Waiting for the phases it runs after.
    Pending,
    /// Its tasks are running.
    Running {
        /// Since when.
        since: Timestamp,
    },
    /// Its tasks are done; a gate waits for a human decision.
    AwaitingApproval {
        /// Since when.
        since: Timestamp,
    },
    /// A gate was put on hold for remediation.
    OnHold {
        /// Since when.
        since: Timestamp,
    },
    /// Done and passed.
    Passed {
        /// When.
        at: Timestamp,
    },
    /// A task failed for good.
    Failed {
        /// Why.
        reason: String,
        /// When.
        at: Timestamp,
    },
}

impl PhaseStatus {
    /// The variant's name, as the transition table writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            PhaseStatus::Pending => "pending",
            PhaseStatus::Running { .. } => "running",
            PhaseStatus::AwaitingApproval { .. } => "awaiting_approval",
            PhaseStatus::OnHold { .. } => "on_hold",
            PhaseStatus::Passed { .. } => "passed",
            PhaseStatus::Failed { .. } => "failed",
        }
    }
}

/// A task within a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    /// Its id.
    pub id: String,
    /// Attempts dispatched so far in this phase attempt.
    pub attempts: u32,
    /// The attempt count at which the current retry budget began (a redrive
    /// grants the task a fresh `max_attempts`).
    #[serde(default)]
    pub budget_from: u32,
    /// Where it stands.
    pub status: TaskStatus,
}

/// Where a task stands. "Ready" is not stored: a pending task whose
/// dependencies are done is ready, and [`super::decide`] dispatches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not dispatched yet.
    Pending,
    /// Handed to its agent; no result recorded yet.
    Dispatched {
        /// Which attempt.
        attempt: u32,
        /// The idempotency key the agent received.
        key: String,
        /// When.
        at: Timestamp,
    },
    /// Done.
    Succeeded {
        /// Which attempt succeeded.
        attempt: u32,
        /// The agent's output.
        output: Value,
        /// How long the attempt took.
        duration_ms: u64,
        /// When.
        at: Timestamp,
    },
    /// The latest attempt failed; a retry may follow.
    Failed {
        /// Which attempt.
        attempt: u32,
        /// The agent's message.
        error: String,
        /// Whether retrying could help.
        retryable: bool,
        /// When.
        at: Timestamp,
    },
    /// Waiting to retry.
    RetryWaiting {
        /// The attempt that will be dispatched.
        attempt: u32,
        /// When it is due.
        due: Timestamp,
        /// The previous attempt's error.
        error: String,
    },
    /// Not run: its `when` condition did not hold.
    Skipped {
        /// Why.
        reason: String,
    },
    /// An in-flight attempt was cancelled (halt, cancel, failure elsewhere).
    Cancelled {
        /// Which attempt.
        attempt: u32,
        /// When.
        at: Timestamp,
    },
}

impl TaskStatus {
    /// The variant's name, as the transition table writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Dispatched { .. } => "dispatched",
            TaskStatus::Succeeded { .. } => "succeeded",
            TaskStatus::Failed { .. } => "failed",
            TaskStatus::RetryWaiting { .. } => "retry_waiting",
            TaskStatus::Skipped { .. } => "skipped",
            TaskStatus::Cancelled { .. } => "cancelled",
        }
    }

    /// True when dependants may run (succeeded or skipped).
    pub fn is_done(&self) -> bool {
        match self {
            TaskStatus::Succeeded { .. } | TaskStatus::Skipped { .. } => true,
            TaskStatus::Pending
            | TaskStatus::Dispatched { .. }
            | TaskStatus::Failed { .. }
            | TaskStatus::RetryWaiting { .. }
            | TaskStatus::Cancelled { .. } => false,
        }
    }
}

impl TaskState {
    /// Attempts used since the retry budget began (the start of the phase
    /// attempt, or the last redrive).
    pub fn attempts_used(&self) -> u32 {
        self.attempts.saturating_sub(self.budget_from)
    }

    /// Whether the latest attempt failed in a way worth retrying and the retry
    /// budget allows another attempt. `decide` proposes retries by this rule
    /// and `step` accepts them by it.
    pub fn may_retry(&self, max_attempts: u32) -> bool {
        matches!(self.status, TaskStatus::Failed { retryable: true, .. }) && self.attempts_used() < max_attempts
    }
}

impl Instance {
    /// A fresh instance of `workflow`, before its first event.
    pub(crate) fn new(
        id: &str,
        workflow: &Workflow,
        definition_hash: &str,
        vars: Map<String, Value>,
        started_by: &str,
        at: Timestamp,
    ) -> Self {
        let phases = workflow
            .phases
            .iter()
            .map(|phase| PhaseState {
                id: phase.id.clone(),
                attempt: 0,
                status: PhaseStatus::Pending,
                tasks: phase
                    .tasks
                    .iter()
                    .map(|task| TaskState { id: task.id.clone(), attempts: 0, budget_from: 0, status: TaskStatus::Pending })
                    .collect(),
                gates: phase.gates.iter().map(|gate| GateState::new(&gate.id)).collect(),
            })
            .collect();
        Self {
            id: id.to_owned(),
            workflow: workflow.name.clone(),
            definition_hash: definition_hash.to_owned(),
            vars,
            started_by: started_by.to_owned(),
            started_at: at,
            status: InstanceStatus::Running,
            phases,
            seq: 0,
            updated_at: at,
            signals: BTreeMap::new(),
        }
    }

    /// The status people and indexes see: the stored status, except that a
    /// running instance whose only remaining work is a human decision is
    /// `awaiting_approval`.
    pub fn effective_status(&self) -> &'static str {
        match &self.status {
            InstanceStatus::Running => {
                let waiting = self.phases.iter().any(|p| matches!(p.status, PhaseStatus::AwaitingApproval { .. }));
                let held = self.phases.iter().any(|p| matches!(p.status, PhaseStatus::OnHold { .. }));
                let active = self.phases.iter().any(|p| matches!(p.status, PhaseStatus::Running { .. }));
                match (active, waiting, held) {
                    (true, _, _) | (false, false, false) => "running",
                    (false, true, _) => "awaiting_approval",
                    (false, false, true) => "on_hold",
                }
            }
            other => other.kind(),
        }
    }

    /// Tasks with an attempt in flight: (phase index, task index, attempt, key).
    pub fn in_flight(&self) -> Vec<(usize, usize, u32, String)> {
        let mut out = Vec::new();
        for (p, phase) in self.phases.iter().enumerate() {
            for (t, task) in phase.tasks.iter().enumerate() {
                if let TaskStatus::Dispatched { attempt, key, .. } = &task.status {
                    out.push((p, t, *attempt, key.clone()));
                }
            }
        }
        out
    }

    /// Whether the runtime needs to keep this instance in memory: it has
    /// work to start or in flight. Halted, waiting and finished instances
    /// with nothing in flight are loaded on demand instead.
    pub fn is_active(&self) -> bool {
        let in_flight = !self.in_flight().is_empty();
        match &self.status {
            InstanceStatus::Running => in_flight || self.effective_status() == "running",
            InstanceStatus::Halted { .. }
            | InstanceStatus::Completed { .. }
            | InstanceStatus::Failed { .. }
            | InstanceStatus::Cancelled { .. } => in_flight,
        }
    }
}

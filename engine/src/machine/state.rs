//! Instance, phase and task states. Each state is an enum whose variants
//! carry their own data; matches over them are exhaustive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};

use super::{EffectiveStatus, GateState, Timestamp, WatchState};

use crate::plan::{Span, Workflow};

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
    /// How many signals of each name arrived (names trigger occurrences).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signal_counts: BTreeMap<String, u32>,
    /// Loop-backs taken per trigger id (checked against `max_loops`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub loops: BTreeMap<String, u32>,
    /// Trigger occurrences not yet acted on, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_triggers: Vec<PendingTrigger>,
    /// Completed work that has a compensation, in completion order (the
    /// saga log a rollback walks backwards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<Done>,
    /// The rollback in progress (kept while a failed compensation halts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// Rollbacks started so far (numbers compensation keys).
    #[serde(default)]
    pub rollbacks: u32,
    /// Per gate (`phase/gate`), the evidence its criteria compare with under
    /// `baseline.`: from the gate's last pass in this instance, or loaded at
    /// start from an earlier instance.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub baselines: BTreeMap<String, Baseline>,
    /// The instance's deadline acted (it acts once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deadline_passed: bool,
    /// The end of the instance's audit chain: the SHA-256 (hex) of its
    /// last stored record, which links to every record before it (see
    /// `runtime::audit`). The runtime keeps it; no transition reads it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chain: String,
}

/// The evidence a gate read when it passed, kept to compare later cycles with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The instance whose pass it is.
    pub instance: String,
    /// When the gate passed.
    pub at: Timestamp,
    /// The evidence paths its criteria read under `baseline.`, as a tree.
    pub evidence: Value,
}

/// A trigger whose event happened and that has not been acted on yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTrigger {
    /// The phase declaring the trigger.
    pub phase: String,
    /// The trigger's id.
    pub trigger: String,
    /// What happened, in words (`watch error-rate fired: ...`).
    pub cause: String,
}

/// One entry of the saga log: a task with a compensation succeeded, or a
/// phase with rollback steps started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The phase.
    pub phase: String,
    /// The task; `None` for the phase's own rollback steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// A rollback: compensations of completed work, run one at a time in
/// reverse completion order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    /// Who or what started it (`alice`, `trigger:error-rate-rollback`).
    pub by: String,
    /// Why.
    pub reason: String,
    /// The phase re-entered afterwards; `None` ends the instance rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// The compensations, in the order they run.
    pub steps: Vec<Compensation>,
}

/// One compensation of a rollback. Its state is a task state: it is
/// dispatched, retried and recorded exactly like a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compensation {
    /// The phase whose work it undoes.
    pub phase: String,
    /// The task it compensates; `None` for a phase rollback step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// For a phase rollback step, its index in the phase's `rollback` list.
    #[serde(default)]
    pub index: usize,
    /// The step's id, attempts and status.
    pub state: TaskState,
}

/// Where an instance stands. Whether it is waiting for people is derived
/// (see [`Instance::effective_status`]), because it depends on its phases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "status", rename_all = "snake_case")]
#[strum_discriminants(name(InstanceKind), vis(pub), derive(Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::VariantArray))]
#[strum_discriminants(
    strum(serialize_all = "snake_case"),
    doc = "The kinds of instance status, without their data: what the transition table is declared over."
)]
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
    /// A trigger halted it until a person decides whether its action runs
    /// (the seeds' "manual approval required" before a rollback).
    AwaitingDecision {
        /// The phase declaring the trigger.
        phase: String,
        /// The trigger's id.
        trigger: String,
        /// What happened.
        cause: String,
        /// Since when.
        since: Timestamp,
        /// The decision's state: level, deadline, approvals, decisions.
        approval: GateState,
    },
    /// Compensations run (see [`Instance::rollback`]).
    RollingBack {
        /// Since when.
        since: Timestamp,
    },
    /// A rollback finished and re-entered no phase.
    RolledBack {
        /// Why it was rolled back.
        reason: String,
        /// When it finished.
        at: Timestamp,
    },
}

impl InstanceStatus {
    /// The variant's name, as the transition table writes it.
    pub fn kind(&self) -> &'static str {
        InstanceKind::from(self).into()
    }

    /// True once nothing more will happen (completed or cancelled; a failed
    /// instance can still be redriven).
    pub fn is_final(&self) -> bool {
        match self {
            InstanceStatus::Completed { .. } | InstanceStatus::Cancelled { .. } | InstanceStatus::RolledBack { .. } => true,
            InstanceStatus::Running
            | InstanceStatus::Halted { .. }
            | InstanceStatus::Failed { .. }
            | InstanceStatus::AwaitingDecision { .. }
            | InstanceStatus::RollingBack { .. } => false,
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
    /// Watch states of this attempt, in definition order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watches: Vec<WatchState>,
    /// Times a loop-back re-entered this phase.
    #[serde(default)]
    pub loops: u32,
    /// Why the latest attempt began, when not simply because its upstream
    /// passed (a loop-back with its code, a scheduled cycle, a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entered: Option<String>,
    /// When a scheduled phase that passed runs its next cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cycle: Option<Timestamp>,
    /// When the current attempt started, or was last redriven: what the
    /// phase's deadline counts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// The phase's deadline acted in this attempt (it acts once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deadline_passed: bool,
}

/// Where a phase stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "status", rename_all = "snake_case")]
#[strum_discriminants(name(PhaseKind), vis(pub), derive(Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::VariantArray))]
#[strum_discriminants(
    strum(serialize_all = "snake_case"),
    doc = "The kinds of phase status, without their data: what the transition table is declared over."
)]
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
        PhaseKind::from(self).into()
    }
}

/// A phase whose triggers listen and whose watches sample.
pub(crate) fn phase_active(status: &PhaseStatus) -> bool {
    match status {
        PhaseStatus::Running { .. } | PhaseStatus::AwaitingApproval { .. } | PhaseStatus::OnHold { .. } => true,
        PhaseStatus::Pending | PhaseStatus::Passed { .. } | PhaseStatus::Failed { .. } => false,
    }
}

/// Whether a watch or trigger kept under phase `home` is live: a phase's own
/// (no span) while its phase is active; a workflow-level one from its `from`
/// phase's start (or the instance's) until its `until` phase passes (or the
/// instance ends). The instance's own status is the caller's to check.
pub(crate) fn reaction_live(instance: &Instance, home: usize, span: Option<&Span>) -> bool {
    match span {
        None => instance.phases.get(home).is_some_and(|phase| phase_active(&phase.status)),
        Some(span) => {
            let started = span.from.is_none_or(|f| instance.phases.get(f).is_some_and(|p| !matches!(p.status, PhaseStatus::Pending)));
            let ended = span.until.is_some_and(|u| instance.phases.get(u).is_some_and(|p| matches!(p.status, PhaseStatus::Passed { .. })));
            started && !ended
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
    /// For an on-demand task: a trigger asked for it to run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requested: bool,
}

/// Where a task stands. "Ready" is not stored: a pending task whose
/// dependencies are done is ready, and [`super::decide`] dispatches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "status", rename_all = "snake_case")]
#[strum_discriminants(name(TaskKind), vis(pub), derive(Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::VariantArray))]
#[strum_discriminants(
    strum(serialize_all = "snake_case"),
    doc = "The kinds of task status, without their data: what the transition table is declared over."
)]
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
    /// A `wait` task: the engine's timer runs until `due`; no agent is involved.
    Waiting {
        /// Which attempt.
        attempt: u32,
        /// When the wait began.
        since: Timestamp,
        /// When it ends.
        due: Timestamp,
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
        TaskKind::from(self).into()
    }

    /// True when dependants may run (succeeded or skipped).
    pub fn is_done(&self) -> bool {
        match self {
            TaskStatus::Succeeded { .. } | TaskStatus::Skipped { .. } => true,
            TaskStatus::Pending
            | TaskStatus::Dispatched { .. }
            | TaskStatus::Failed { .. }
            | TaskStatus::RetryWaiting { .. }
            | TaskStatus::Waiting { .. }
            | TaskStatus::Cancelled { .. } => false,
        }
    }
}

impl PhaseState {
    /// The phase (re)starts now: its deadline counts from here and may act again.
    pub(crate) fn restart_clock(&mut self, at: Timestamp) {
        self.started_at = Some(at);
        self.deadline_passed = false;
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
                    .map(|task| TaskState {
                        id: task.id.clone(),
                        attempts: 0,
                        budget_from: 0,
                        status: TaskStatus::Pending,
                        requested: false,
                    })
                    .collect(),
                gates: phase.gates.iter().map(|gate| GateState::new(&gate.id)).collect(),
                watches: phase.watches.iter().map(|watch| WatchState::new(&watch.id)).collect(),
                loops: 0,
                entered: None,
                next_cycle: None,
                started_at: None,
                deadline_passed: false,
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
            signal_counts: BTreeMap::new(),
            loops: BTreeMap::new(),
            pending_triggers: Vec::new(),
            journal: Vec::new(),
            rollback: None,
            rollbacks: 0,
            baselines: BTreeMap::new(),
            deadline_passed: false,
            chain: String::new(),
        }
    }

    /// The status people and indexes see: the stored status, except that a
    /// running instance whose only remaining work is a human decision is
    /// `awaiting_approval`, one whose remaining work is a future cycle is
    /// `scheduled`, one halted by a trigger is `awaiting_approval`, and any
    /// with a trigger occurrence to act on is `running`.
    /// What listings call an instance's status.
    pub fn effective_status(&self) -> EffectiveStatus {
        match &self.status {
            // A trigger occurrence waits to be acted on: there is work to do now.
            InstanceStatus::Running | InstanceStatus::AwaitingDecision { .. } if !self.pending_triggers.is_empty() => {
                EffectiveStatus::Running
            }
            InstanceStatus::Running if self.phases.iter().all(|p| matches!(p.status, PhaseStatus::Passed { .. })) => {
                if self.phases.iter().any(|p| p.next_cycle.is_some()) {
                    EffectiveStatus::Scheduled
                } else {
                    EffectiveStatus::Running
                }
            }
            InstanceStatus::AwaitingDecision { .. } => EffectiveStatus::AwaitingApproval,
            InstanceStatus::Running => {
                let waiting = self.phases.iter().any(|p| matches!(p.status, PhaseStatus::AwaitingApproval { .. }));
                let held = self.phases.iter().any(|p| matches!(p.status, PhaseStatus::OnHold { .. }));
                let active = self.phases.iter().any(|p| matches!(p.status, PhaseStatus::Running { .. }));
                match (active, waiting, held) {
                    (true, _, _) | (false, false, false) => EffectiveStatus::Running,
                    (false, true, _) => EffectiveStatus::AwaitingApproval,
                    (false, false, true) => EffectiveStatus::OnHold,
                }
            }
            InstanceStatus::Halted { .. } => EffectiveStatus::Halted,
            InstanceStatus::Completed { .. } => EffectiveStatus::Completed,
            InstanceStatus::Failed { .. } => EffectiveStatus::Failed,
            InstanceStatus::Cancelled { .. } => EffectiveStatus::Cancelled,
            InstanceStatus::RollingBack { .. } => EffectiveStatus::RollingBack,
            InstanceStatus::RolledBack { .. } => EffectiveStatus::RolledBack,
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

    /// The compensation attempt in flight, if any: (step index, attempt, key).
    pub fn compensation_in_flight(&self) -> Option<(usize, u32, String)> {
        self.rollback.as_ref().and_then(|rollback| {
            rollback.steps.iter().enumerate().find_map(|(i, step)| match &step.state.status {
                TaskStatus::Dispatched { attempt, key, .. } => Some((i, *attempt, key.clone())),
                TaskStatus::Pending
                | TaskStatus::Succeeded { .. }
                | TaskStatus::Failed { .. }
                | TaskStatus::RetryWaiting { .. }
                | TaskStatus::Waiting { .. }
                | TaskStatus::Skipped { .. }
                | TaskStatus::Cancelled { .. } => None,
            })
        })
    }

    /// Whether the runtime needs to keep this instance in memory: it has
    /// work to start or in flight. Halted, waiting, scheduled and finished
    /// instances with nothing in flight are loaded on demand instead.
    pub fn is_active(&self, workflow: &Workflow) -> bool {
        // Called for every instance in memory on every driver turn: no allocation.
        let in_flight = self.phases.iter().flat_map(|p| &p.tasks).any(|t| matches!(t.status, TaskStatus::Dispatched { .. }))
            || self.rollback.as_ref().is_some_and(|r| r.steps.iter().any(|s| matches!(s.state.status, TaskStatus::Dispatched { .. })));
        match &self.status {
            InstanceStatus::Running => {
                let watching = workflow
                    .phases
                    .iter()
                    .enumerate()
                    .any(|(p, plan)| plan.watches.iter().any(|w| reaction_live(self, p, w.span.as_ref())));
                in_flight || watching || self.effective_status() == EffectiveStatus::Running
            }
            InstanceStatus::RollingBack { .. } => true,

            InstanceStatus::AwaitingDecision { .. } => in_flight || !self.pending_triggers.is_empty(),
            InstanceStatus::Halted { .. }
            | InstanceStatus::Completed { .. }
            | InstanceStatus::Failed { .. }
            | InstanceStatus::Cancelled { .. }
            | InstanceStatus::RolledBack { .. } => in_flight,
        }
    }
}

//! The declared transition table, beside the code it describes.
//!
//! A test applies every event to every state of each level and checks that
//! `step` accepts exactly the transitions listed here and lands where they
//! say; docs/state-machine.md is rendered from this table, so the diagram
//! cannot drift from the code.

/// Which state machine a transition belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `InstanceStatus`.
    Instance,
    /// `PhaseStatus`.
    Phase,
    /// `TaskStatus`.
    Task,
    /// `GateStatus`.
    Gate,
}

/// One legal transition: at `level`, state `from` takes `event` and becomes `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The level.
    pub level: Level,
    /// The state before (`[*]` for creation).
    pub from: &'static str,
    /// The event's type.
    pub event: &'static str,
    /// The state after.
    pub to: &'static str,
    /// A condition beyond the state, in words.
    pub guard: &'static str,
}

const fn t(level: Level, from: &'static str, event: &'static str, to: &'static str, guard: &'static str) -> Transition {
    Transition { level, from, event, to, guard }
}

/// Every legal transition.
pub const TRANSITIONS: &[Transition] = &[
    t(Level::Instance, "[*]", "InstanceStarted", "running", ""),
    t(Level::Instance, "running", "Halted", "halted", ""),
    t(Level::Instance, "halted", "Resumed", "running", ""),
    t(Level::Instance, "running", "Cancelled", "cancelled", ""),
    t(Level::Instance, "halted", "Cancelled", "cancelled", ""),
    t(Level::Instance, "failed", "Cancelled", "cancelled", ""),
    t(Level::Instance, "running", "InstanceCompleted", "completed", "every phase passed"),
    t(Level::Instance, "running", "InstanceFailed", "failed", "a phase failed"),
    t(Level::Instance, "failed", "Redriven", "running", "named tasks failed or were cancelled"),
    t(Level::Instance, "running", "SignalReceived", "running", "a declared signal; conditions read it as signals.<name>"),
    t(Level::Instance, "halted", "SignalReceived", "halted", "a declared signal"),
    t(Level::Instance, "awaiting_decision", "SignalReceived", "awaiting_decision", "a declared signal; its triggers may act"),
    t(
        Level::Instance,
        "rolling_back",
        "SignalReceived",
        "rolling_back",
        "a declared signal (recorded; triggers do not act while rolling back)",
    ),
    t(Level::Instance, "running", "WatchSampled", "running", "the watch's phase is active"),
    t(
        Level::Instance,
        "running",
        "WatchInconclusive",
        "halted",
        "no data for the watch's `for` and no_data = inconclusive: a person decides",
    ),
    t(Level::Instance, "running", "TriggerFired", "awaiting_decision", "action halt_for_approval"),
    t(Level::Instance, "running", "TriggerFired", "rolling_back", "action rollback"),
    t(Level::Instance, "running", "TriggerFired", "running", "action goto, notify or run"),
    t(Level::Instance, "awaiting_decision", "TriggerFired", "rolling_back", "action rollback (a P0 while a P1 waits, say)"),
    t(Level::Instance, "awaiting_decision", "TriggerFired", "running", "action goto (the halt is moot)"),
    t(Level::Instance, "awaiting_decision", "TriggerFired", "awaiting_decision", "action notify or run"),
    t(Level::Instance, "running", "TriggerSkipped", "running", "`when` did not hold"),
    t(Level::Instance, "awaiting_decision", "TriggerSkipped", "awaiting_decision", "`when` did not hold, or another halt is awaited"),
    t(Level::Instance, "awaiting_decision", "TriggerDecided", "rolling_back", "approved to quorum; `then` is rollback"),
    t(Level::Instance, "awaiting_decision", "TriggerDecided", "running", "rejected; or approved and `then` is goto, notify or run"),
    t(
        Level::Instance,
        "awaiting_decision",
        "TriggerDecided",
        "awaiting_decision",
        "approval below quorum, hold (the deadline stops), or escalate",
    ),
    t(Level::Instance, "awaiting_decision", "TriggerTimedOut", "rolling_back", "on_timeout approve; `then` is rollback"),
    t(Level::Instance, "awaiting_decision", "TriggerTimedOut", "running", "on_timeout reject, or escalate past the last level"),
    t(Level::Instance, "awaiting_decision", "TriggerTimedOut", "awaiting_decision", "on_timeout hold or escalate"),
    t(Level::Instance, "running", "RollbackStarted", "rolling_back", "completed work has compensations"),
    t(Level::Instance, "halted", "RollbackStarted", "rolling_back", "completed work has compensations; no rollback halted part-way"),
    t(Level::Instance, "failed", "RollbackStarted", "rolling_back", "completed work has compensations"),
    t(Level::Instance, "awaiting_decision", "RollbackStarted", "rolling_back", "completed work has compensations"),
    t(Level::Instance, "rolling_back", "CompensationDispatched", "rolling_back", "earlier compensations done; no task in flight"),
    t(Level::Instance, "rolling_back", "CompensationSucceeded", "rolling_back", "same attempt"),
    t(Level::Instance, "rolling_back", "CompensationFailed", "rolling_back", "same attempt"),
    t(Level::Instance, "rolling_back", "CompensationRetryScheduled", "rolling_back", "retryable; attempts left"),
    t(Level::Instance, "rolling_back", "Halted", "halted", "a compensation failed for good (or an operator halted it)"),
    t(Level::Instance, "halted", "Resumed", "rolling_back", "a rollback was halted part-way; failed compensations get a fresh budget"),
    t(Level::Instance, "rolling_back", "RollbackCompleted", "rolled_back", "every compensation succeeded; no target phase"),
    t(Level::Instance, "rolling_back", "RollbackCompleted", "running", "every compensation succeeded; the target phase runs again"),
    t(Level::Instance, "rolling_back", "Cancelled", "cancelled", ""),
    t(Level::Instance, "awaiting_decision", "Cancelled", "cancelled", ""),
    t(Level::Instance, "running", "ScheduleFired", "running", "a scheduled phase passed and its next cycle is due"),
    t(Level::Instance, "running", "BaselinesLoaded", "running", "right after start, before any phase starts"),
    t(Level::Phase, "pending", "PhaseStarted", "running", "instance running; upstream phases passed"),
    t(Level::Phase, "running", "GateEvaluated", "awaiting_approval", "the gate needs a decision (approval declared, or evidence missing)"),
    t(Level::Phase, "running", "GateEvaluated", "running", "the criteria alone passed or failed the gate"),
    t(Level::Phase, "running", "PhaseCompleted", "passed", "tasks done; every gate passed"),
    t(Level::Phase, "running", "PhaseFailed", "failed", "a task failed for good, or a gate failed"),
    t(Level::Phase, "awaiting_approval", "DecisionRecorded", "running", "the gate passed (quorum) or was rejected"),
    t(Level::Phase, "awaiting_approval", "DecisionRecorded", "awaiting_approval", "an approval below quorum, or an escalation"),
    t(Level::Phase, "awaiting_approval", "DecisionRecorded", "on_hold", "hold for remediation"),
    t(Level::Phase, "awaiting_approval", "GateTimedOut", "running", "on_timeout approve or reject"),
    t(Level::Phase, "awaiting_approval", "GateTimedOut", "awaiting_approval", "on_timeout escalate"),
    t(Level::Phase, "awaiting_approval", "GateTimedOut", "on_hold", "on_timeout hold"),
    t(Level::Phase, "on_hold", "Redriven", "running", "remediation: named tasks re-run, gates evaluated again"),
    t(Level::Phase, "failed", "Redriven", "running", "instance failed"),
    t(Level::Phase, "passed", "ScheduleFired", "pending", "its next cycle is due"),
    t(Level::Phase, "running", "TriggerFired", "pending", "goto: the target phase and those after it run again"),
    t(Level::Phase, "awaiting_approval", "TriggerFired", "pending", "goto"),
    t(Level::Phase, "on_hold", "TriggerFired", "pending", "goto"),
    t(Level::Phase, "passed", "TriggerFired", "pending", "goto: an upstream target"),
    t(Level::Phase, "running", "TriggerFired", "failed", "goto past max_loops fails the phase declaring it"),
    t(Level::Phase, "passed", "RollbackCompleted", "pending", "rollback --to: the target and the phases after it run again"),
    t(Level::Phase, "running", "RollbackCompleted", "pending", "rollback --to"),
    t(Level::Gate, "pending", "GateEvaluated", "passed", "criteria pass; no approval declared"),
    t(Level::Gate, "pending", "GateEvaluated", "failed", "a must criterion failed"),
    t(Level::Gate, "pending", "GateEvaluated", "awaiting_decision", "approval declared, or a criterion inconclusive"),
    t(Level::Gate, "awaiting_decision", "DecisionRecorded", "passed", "approve reaching the quorum"),
    t(Level::Gate, "awaiting_decision", "DecisionRecorded", "awaiting_decision", "approve below quorum, or escalate"),
    t(Level::Gate, "awaiting_decision", "DecisionRecorded", "failed", "reject"),
    t(Level::Gate, "awaiting_decision", "DecisionRecorded", "on_hold", "hold"),
    t(Level::Gate, "awaiting_decision", "GateTimedOut", "passed", "on_timeout approve"),
    t(Level::Gate, "awaiting_decision", "GateTimedOut", "failed", "on_timeout reject, or escalate past the last level"),
    t(Level::Gate, "awaiting_decision", "GateTimedOut", "on_hold", "on_timeout hold"),
    t(Level::Gate, "awaiting_decision", "GateTimedOut", "awaiting_decision", "on_timeout escalate"),
    t(Level::Gate, "on_hold", "Redriven", "pending", "remediation"),
    t(Level::Task, "pending", "TaskDispatched", "dispatched", "instance and phase running; dependencies done"),
    t(Level::Task, "pending", "TaskSkipped", "skipped", "`when` does not hold"),
    t(Level::Task, "dispatched", "TaskSucceeded", "succeeded", "same attempt"),
    t(Level::Task, "dispatched", "TaskFailed", "failed", "same attempt"),
    t(Level::Task, "dispatched", "TaskCancelled", "cancelled", "same attempt"),
    t(Level::Task, "failed", "RetryScheduled", "retry_waiting", "retryable; attempts left"),
    t(Level::Task, "retry_waiting", "TaskDispatched", "dispatched", "due"),
    t(Level::Task, "cancelled", "TaskDispatched", "dispatched", "instance running again"),
    t(Level::Task, "failed", "Redriven", "pending", "instance failed"),
    t(Level::Task, "cancelled", "Redriven", "pending", "instance failed"),
    t(Level::Task, "succeeded", "Redriven", "pending", "its phase is on hold (remediation)"),
    t(Level::Task, "skipped", "Redriven", "pending", "its phase is on hold (remediation)"),
    t(Level::Task, "pending", "TriggerFired", "pending", "run: an on-demand task is requested (then dispatched)"),
    t(Level::Task, "succeeded", "TriggerFired", "pending", "run: an on-demand task runs again"),
    t(Level::Task, "failed", "TriggerFired", "pending", "run: an on-demand task runs again"),
];

/// The transitions of one level.
pub fn of(level: Level) -> impl Iterator<Item = &'static Transition> {
    TRANSITIONS.iter().filter(move |t| t.level == level)
}

/// docs/state-machine.md, rendered from [`TRANSITIONS`].
pub fn render_markdown() -> String {
    let mut out = String::from(
        "# State machines\n\n\
         Generated from `engine/src/machine/table.rs` by `UPDATE_DOCS=1 cargo test -p phasegate-engine --lib state_diagram`; \
         a test fails when this page and the table differ, and another checks that the code accepts exactly these transitions.\n\n\
         Every arrow is an event persisted in the instance's log before it counts. Events that a state does not list are rejected \
         with a typed error naming the state and the event, and change nothing. Results of in-flight task attempts \
         (`TaskSucceeded`, `TaskFailed`, `TaskCancelled`, and `CompensationSucceeded`, `CompensationFailed`) are accepted whatever the instance's status, because the work happened.\n",
    );
    for (level, title) in [(Level::Instance, "Instance"), (Level::Phase, "Phase"), (Level::Gate, "Gate"), (Level::Task, "Task")] {
        out.push_str(&format!("\n## {title}\n\n```mermaid\nstateDiagram-v2\n"));
        for transition in of(level) {
            out.push_str(&format!("    {} --> {}: {}\n", transition.from, transition.to, transition.event));
        }
        out.push_str("```\n\n| from | event | to | guard |\n|---|---|---|---|\n");
        for transition in of(level) {
            out.push_str(&format!("| {} | {} | {} | {} |\n", transition.from, transition.event, transition.to, transition.guard));
        }
    }
    out
}

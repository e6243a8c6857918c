//! The declared transition table, beside the code it describes.
//!
//! A test applies every event to every state of each level and checks that
//! `step` accepts exactly the transitions listed here and lands where they
//! say; docs/state-machine.md is rendered from this table, so the diagram
//! cannot drift from the code.

use super::event::EventKind as E;
use super::gate::GateKind as G;
use super::state::{InstanceKind as I, PhaseKind as P, TaskKind as T};

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

/// A state at one level, by kind: what a transition starts from and lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Before the instance exists (`[*]` in the diagram).
    Start,
    /// An instance status.
    Instance(I),
    /// A phase status.
    Phase(P),
    /// A task status.
    Task(T),
    /// A gate status.
    Gate(G),
    /// Any state of the transition's level (`*` in the diagram): only for
    /// resets, where a phase is entered again and what it held starts over.
    Any,
}

impl State {
    /// Its name, as status output and the diagram write it.
    pub fn name(self) -> &'static str {
        match self {
            State::Start => "[*]",
            State::Instance(kind) => kind.into(),
            State::Phase(kind) => kind.into(),
            State::Task(kind) => kind.into(),
            State::Gate(kind) => kind.into(),
            State::Any => "*",
        }
    }
}

/// One legal transition: at `level`, state `from` takes `event` and becomes `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The level.
    pub level: Level,
    /// The state before ([`State::Start`] for creation).
    pub from: State,
    /// The event's kind.
    pub event: E,
    /// The state after.
    pub to: State,
    /// A condition beyond the state, in words.
    pub guard: &'static str,
}

const fn start(event: E, to: I, guard: &'static str) -> Transition {
    Transition { level: Level::Instance, from: State::Start, event, to: State::Instance(to), guard }
}
const fn i(from: I, event: E, to: I, guard: &'static str) -> Transition {
    Transition { level: Level::Instance, from: State::Instance(from), event, to: State::Instance(to), guard }
}
const fn p(from: P, event: E, to: P, guard: &'static str) -> Transition {
    Transition { level: Level::Phase, from: State::Phase(from), event, to: State::Phase(to), guard }
}
const fn k(from: T, event: E, to: T, guard: &'static str) -> Transition {
    Transition { level: Level::Task, from: State::Task(from), event, to: State::Task(to), guard }
}
const fn g(from: G, event: E, to: G, guard: &'static str) -> Transition {
    Transition { level: Level::Gate, from: State::Gate(from), event, to: State::Gate(to), guard }
}

/// A reset: at `level`, any state becomes `to` when `event` enters its phase again.
const fn reset(level: Level, event: E, to: State, guard: &'static str) -> Transition {
    Transition { level, from: State::Any, event, to, guard }
}

/// Every legal transition.
pub const TRANSITIONS: &[Transition] = &[
    start(E::InstanceStarted, I::Running, ""),
    i(I::Running, E::Halted, I::Halted, ""),
    i(I::Halted, E::Resumed, I::Running, ""),
    i(I::Running, E::Cancelled, I::Cancelled, ""),
    i(I::Halted, E::Cancelled, I::Cancelled, ""),
    i(I::Failed, E::Cancelled, I::Cancelled, ""),
    i(I::Running, E::InstanceCompleted, I::Completed, "every phase passed"),
    i(I::Running, E::InstanceFailed, I::Failed, "a phase failed"),
    i(I::Failed, E::Redriven, I::Running, "named tasks failed or were cancelled"),
    i(I::Failed, E::DecisionRecorded, I::Running, "hold on a failed gate: its owner parks it for remediation"),
    i(I::Running, E::SignalReceived, I::Running, "a declared signal; conditions read it as signals.<name>"),
    i(I::Halted, E::SignalReceived, I::Halted, "a declared signal"),
    i(I::AwaitingDecision, E::SignalReceived, I::AwaitingDecision, "a declared signal; its triggers may act"),
    i(I::RollingBack, E::SignalReceived, I::RollingBack, "a declared signal (recorded; triggers do not act while rolling back)"),
    i(I::Running, E::WatchSampled, I::Running, "the watch's phase is active"),
    i(I::AwaitingDecision, E::WatchSampled, I::AwaitingDecision, "watches keep sampling while a trigger's halt waits for a decision"),
    i(I::Running, E::WatchInconclusive, I::Halted, "no data for the watch's `for` and no_data = inconclusive: a person decides"),
    i(I::Running, E::TriggerFired, I::AwaitingDecision, "action halt_for_approval"),
    i(I::Running, E::TriggerFired, I::RollingBack, "action rollback"),
    i(I::Running, E::TriggerFired, I::Running, "action goto, notify or run"),
    i(I::AwaitingDecision, E::TriggerFired, I::RollingBack, "action rollback (a P0 while a P1 waits, say)"),
    i(I::AwaitingDecision, E::TriggerFired, I::Running, "action goto (the halt is moot)"),
    i(I::AwaitingDecision, E::TriggerFired, I::AwaitingDecision, "action notify or run"),
    i(I::Running, E::TriggerSkipped, I::Running, "`when` did not hold"),
    i(I::AwaitingDecision, E::TriggerSkipped, I::AwaitingDecision, "`when` did not hold, or another halt is awaited"),
    i(I::AwaitingDecision, E::TriggerDecided, I::RollingBack, "approved to quorum; `then` is rollback"),
    i(I::AwaitingDecision, E::TriggerDecided, I::Running, "rejected; or approved and `then` is goto, notify or run"),
    i(I::AwaitingDecision, E::TriggerDecided, I::AwaitingDecision, "approval below quorum, hold (the deadline stops), or escalate"),
    i(I::AwaitingDecision, E::TriggerTimedOut, I::RollingBack, "on_timeout approve; `then` is rollback"),
    i(I::AwaitingDecision, E::TriggerTimedOut, I::Running, "on_timeout reject, or escalate past the last level"),
    i(I::AwaitingDecision, E::TriggerTimedOut, I::AwaitingDecision, "on_timeout hold or escalate"),
    i(I::Running, E::RollbackStarted, I::RollingBack, "completed work has compensations"),
    i(I::Halted, E::RollbackStarted, I::RollingBack, "completed work has compensations; no rollback halted part-way"),
    i(I::Failed, E::RollbackStarted, I::RollingBack, "completed work has compensations"),
    i(I::AwaitingDecision, E::RollbackStarted, I::RollingBack, "completed work has compensations"),
    i(I::RollingBack, E::CompensationDispatched, I::RollingBack, "earlier compensations done; no task in flight"),
    i(I::RollingBack, E::CompensationSucceeded, I::RollingBack, "same attempt"),
    i(I::RollingBack, E::CompensationFailed, I::RollingBack, "same attempt"),
    i(I::RollingBack, E::CompensationRetryScheduled, I::RollingBack, "retryable; attempts left"),
    i(I::RollingBack, E::Halted, I::Halted, "a compensation failed for good (or an operator halted it)"),
    i(I::Halted, E::Resumed, I::RollingBack, "a rollback was halted part-way; failed compensations get a fresh budget"),
    i(I::RollingBack, E::RollbackCompleted, I::RolledBack, "every compensation succeeded; no target phase"),
    i(I::RollingBack, E::RollbackCompleted, I::Running, "every compensation succeeded; the target phase runs again"),
    i(I::RollingBack, E::Cancelled, I::Cancelled, ""),
    i(I::AwaitingDecision, E::Cancelled, I::Cancelled, ""),
    i(I::Running, E::ScheduleFired, I::Running, "a scheduled phase passed and its next cycle is due"),
    i(I::Running, E::BaselinesLoaded, I::Running, "right after start, before any phase starts"),
    i(I::Running, E::WaitStarted, I::Running, "a wait task is ready"),
    i(I::Running, E::WaitElapsed, I::Running, "its time is up"),
    i(I::Running, E::DeadlinePassed, I::Running, "outcome fail: the phase (or every active one) fails, then the instance"),
    i(I::Running, E::DeadlinePassed, I::RollingBack, "outcome rollback"),
    i(I::Running, E::DeadlinePassed, I::Halted, "outcome halt: a person decides; it acts once, so resume goes on"),
    p(P::Pending, E::PhaseStarted, P::Running, "instance running; upstream phases passed"),
    p(P::Running, E::GateEvaluated, P::AwaitingApproval, "the gate needs a decision (approval declared, or evidence missing)"),
    p(P::Running, E::GateEvaluated, P::Running, "the criteria alone passed or failed the gate"),
    p(P::Running, E::PhaseCompleted, P::Passed, "tasks done; every gate passed"),
    p(P::Running, E::PhaseFailed, P::Failed, "a task failed for good, or a gate failed"),
    p(P::AwaitingApproval, E::DecisionRecorded, P::Running, "the gate passed (quorum) or was rejected"),
    p(P::AwaitingApproval, E::DecisionRecorded, P::AwaitingApproval, "an approval below quorum, or an escalation"),
    p(P::AwaitingApproval, E::DecisionRecorded, P::OnHold, "hold for remediation"),
    p(P::AwaitingApproval, E::GateTimedOut, P::Running, "on_timeout approve or reject"),
    p(P::AwaitingApproval, E::GateTimedOut, P::AwaitingApproval, "on_timeout escalate"),
    p(P::AwaitingApproval, E::GateTimedOut, P::OnHold, "on_timeout hold"),
    p(P::OnHold, E::Redriven, P::Running, "remediation: named tasks re-run, gates evaluated again"),
    p(P::Failed, E::Redriven, P::Running, "instance failed"),
    p(P::Failed, E::DecisionRecorded, P::OnHold, "hold on its failed gate, for remediation"),
    p(P::Passed, E::ScheduleFired, P::Pending, "its next cycle is due"),
    p(P::Running, E::TriggerFired, P::Pending, "goto: the target phase and those after it run again"),
    p(P::AwaitingApproval, E::TriggerFired, P::Pending, "goto"),
    p(P::OnHold, E::TriggerFired, P::Pending, "goto"),
    p(P::Passed, E::TriggerFired, P::Pending, "goto: an upstream target"),
    p(P::Running, E::TriggerFired, P::Failed, "goto past max_loops fails the phase declaring it"),
    p(P::Passed, E::RollbackCompleted, P::Pending, "rollback --to: the target and the phases after it run again"),
    p(P::Running, E::RollbackCompleted, P::Pending, "rollback --to"),
    p(P::Running, E::DeadlinePassed, P::Failed, "its deadline passed, outcome fail (its own, or the instance's)"),
    p(P::AwaitingApproval, E::DeadlinePassed, P::Failed, "its deadline passed while a gate waited, outcome fail"),
    p(P::OnHold, E::DeadlinePassed, P::Failed, "its deadline passed while on hold, outcome fail"),
    g(G::Pending, E::GateEvaluated, G::Passed, "criteria pass; no approval declared"),
    g(G::Pending, E::GateEvaluated, G::Failed, "a must criterion failed"),
    g(G::Pending, E::GateEvaluated, G::AwaitingDecision, "approval declared, or a criterion inconclusive"),
    g(G::AwaitingDecision, E::DecisionRecorded, G::Passed, "approve reaching the quorum"),
    g(G::AwaitingDecision, E::DecisionRecorded, G::AwaitingDecision, "approve below quorum, or escalate"),
    g(G::AwaitingDecision, E::DecisionRecorded, G::Failed, "reject"),
    g(G::AwaitingDecision, E::DecisionRecorded, G::OnHold, "hold"),
    g(G::AwaitingDecision, E::GateTimedOut, G::Passed, "on_timeout approve"),
    g(G::AwaitingDecision, E::GateTimedOut, G::Failed, "on_timeout reject, or escalate past the last level"),
    g(G::AwaitingDecision, E::GateTimedOut, G::OnHold, "on_timeout hold"),
    g(G::AwaitingDecision, E::GateTimedOut, G::AwaitingDecision, "on_timeout escalate"),
    g(G::OnHold, E::Redriven, G::Pending, "remediation"),
    g(G::Failed, E::DecisionRecorded, G::OnHold, "hold by its owner after a must criterion failed or a rejection"),
    g(G::Failed, E::Redriven, G::Pending, "retry --phase: the phase runs again, then its gates"),
    g(G::AwaitingDecision, E::DeadlinePassed, G::Failed, "the phase's deadline failed it: hold or retry --phase"),
    g(G::OnHold, E::DeadlinePassed, G::Failed, "the phase's deadline failed it"),
    k(T::Pending, E::TaskDispatched, T::Dispatched, "instance and phase running; dependencies done"),
    k(T::Pending, E::TaskSkipped, T::Skipped, "`when` does not hold"),
    k(T::Dispatched, E::TaskSucceeded, T::Succeeded, "same attempt"),
    k(T::Dispatched, E::TaskFailed, T::Failed, "same attempt"),
    k(T::Dispatched, E::TaskCancelled, T::Cancelled, "same attempt"),
    k(T::Failed, E::RetryScheduled, T::RetryWaiting, "retryable; attempts left"),
    k(T::RetryWaiting, E::TaskDispatched, T::Dispatched, "due"),
    k(T::Cancelled, E::TaskDispatched, T::Dispatched, "instance running again"),
    k(T::Failed, E::Redriven, T::Pending, "instance failed"),
    k(T::Cancelled, E::Redriven, T::Pending, "instance failed"),
    k(
        T::Cancelled,
        E::DecisionRecorded,
        T::Pending,
        "a held failed gate lets the instance run again: attempts its failure cancelled start over",
    ),
    k(T::Succeeded, E::Redriven, T::Pending, "its phase is on hold (remediation)"),
    k(T::Skipped, E::Redriven, T::Pending, "its phase is on hold (remediation)"),
    k(T::Pending, E::TriggerFired, T::Pending, "run: an on-demand task is requested (then dispatched)"),
    k(T::Succeeded, E::TriggerFired, T::Pending, "run: an on-demand task runs again"),
    k(T::Failed, E::TriggerFired, T::Pending, "run: an on-demand task runs again"),
    k(T::Pending, E::WaitStarted, T::Waiting, "a wait task is ready: the time it ends is recorded"),
    k(T::Cancelled, E::WaitStarted, T::Waiting, "instance running again: the wait starts over"),
    k(T::Waiting, E::WaitElapsed, T::Succeeded, "its time is up"),
    k(T::Waiting, E::Halted, T::Cancelled, "halt --cancel-running (a plain halt lets the wait run on)"),
    k(T::Waiting, E::Cancelled, T::Cancelled, ""),
    k(T::Waiting, E::PhaseFailed, T::Cancelled, "another task of its phase failed for good"),
    k(T::Waiting, E::InstanceFailed, T::Cancelled, "another phase failed"),
    k(T::Waiting, E::RollbackStarted, T::Cancelled, ""),
    k(T::Waiting, E::TriggerFired, T::Cancelled, "action rollback, or a goto past max_loops"),
    k(T::Waiting, E::TriggerDecided, T::Cancelled, "approved; `then` is rollback"),
    k(T::Waiting, E::TriggerTimedOut, T::Cancelled, "on_timeout approve; `then` is rollback"),
    k(T::Waiting, E::DeadlinePassed, T::Cancelled, "the deadline of its phase (or the instance) passed"),
    reset(Level::Phase, E::RollbackCompleted, State::Phase(P::Pending), "rollback --to: the target and the phases after it run again"),
    reset(Level::Gate, E::TriggerFired, State::Gate(G::Pending), "goto: the phase is entered again"),
    reset(Level::Gate, E::ScheduleFired, State::Gate(G::Pending), "the next cycle starts clean"),
    reset(Level::Gate, E::RollbackCompleted, State::Gate(G::Pending), "rollback --to: the phase is entered again"),
    reset(Level::Task, E::PhaseStarted, State::Task(T::Pending), "a new attempt of the phase starts clean"),
    reset(Level::Task, E::TriggerFired, State::Task(T::Pending), "goto: the phase is entered again (attempts in flight are cancelled)"),
    reset(Level::Task, E::ScheduleFired, State::Task(T::Pending), "the next cycle starts clean"),
    reset(Level::Task, E::RollbackCompleted, State::Task(T::Pending), "rollback --to: the phase is entered again"),
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
         (`TaskSucceeded`, `TaskFailed`, `TaskCancelled`, and `CompensationSucceeded`, `CompensationFailed`) are accepted whatever the instance's status, because the work happened. \
         Rows from `*` are resets: when a phase is entered again (a new attempt, a loop-back, a scheduled cycle, a rollback to it), \
         its tasks and gates start over from any state; they are listed in the tables, not drawn. In debug builds `step` checks \
         every accepted event against this table at every level, so every test that drives the machine checks it too.\n",
    );
    for (level, title) in [(Level::Instance, "Instance"), (Level::Phase, "Phase"), (Level::Gate, "Gate"), (Level::Task, "Task")] {
        out.push_str(&format!("\n## {title}\n\n```mermaid\nstateDiagram-v2\n"));
        // Resets (`*` → pending) are listed in the table below, not drawn.
        for transition in of(level).filter(|t| t.from != State::Any) {
            out.push_str(&format!("    {} --> {}: {}\n", transition.from.name(), transition.to.name(), transition.event.name()));
        }
        out.push_str("```\n\n| from | event | to | guard |\n|---|---|---|---|\n");
        for transition in of(level) {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                transition.from.name(),
                transition.event.name(),
                transition.to.name(),
                transition.guard
            ));
        }
    }
    out
}

/// Every state's kind at every level, in order: what [`check`] compares
/// before and after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kinds {
    instance: I,
    phases: Vec<P>,
    gates: Vec<G>,
    tasks: Vec<T>,
    /// Phase ids, in order (for naming what an event concerns).
    phase_ids: Vec<String>,
    /// (phase, gate) ids, in the order of `gates`.
    gate_ids: Vec<(String, String)>,
    /// How many of `tasks` each phase has.
    tasks_per_phase: Vec<usize>,
}

impl Kinds {
    /// The kinds of an instance's states.
    pub(crate) fn of(instance: &super::Instance) -> Self {
        Kinds {
            instance: I::from(&instance.status),
            phases: instance.phases.iter().map(|p| P::from(&p.status)).collect(),
            gates: instance.phases.iter().flat_map(|p| p.gates.iter().map(|g| G::from(&g.status))).collect(),
            tasks: instance.phases.iter().flat_map(|p| p.tasks.iter().map(|t| T::from(&t.status))).collect(),
            phase_ids: instance.phases.iter().map(|p| p.id.clone()).collect(),
            gate_ids: instance.phases.iter().flat_map(|p| p.gates.iter().map(|g| (p.id.clone(), g.id.clone()))).collect(),
            tasks_per_phase: instance.phases.iter().map(|p| p.tasks.len()).collect(),
        }
    }
}

/// Checks that every state an accepted `event` changed, at every level,
/// moved along a declared transition; returns the first that did not. `step`
/// calls it on every event in debug builds, so every test that drives the
/// machine (the property tests most of all) also checks the table.
pub(crate) fn check(before: &Kinds, after: &Kinds, event: E, subject: Option<(Option<&str>, Option<&str>)>) -> Result<(), String> {
    let _ = &subject;
    let declared = |level: Level, from: State, to: State| {
        TRANSITIONS.iter().any(|t| t.level == level && t.event == event && (t.from == from || t.from == State::Any) && t.to == to)
    };
    let mut moved = Vec::new();
    if before.instance != after.instance {
        moved.push((Level::Instance, State::Instance(before.instance), State::Instance(after.instance)));
    }
    moved.extend(
        before.phases.iter().zip(&after.phases).filter(|(a, b)| a != b).map(|(a, b)| (Level::Phase, State::Phase(*a), State::Phase(*b))),
    );
    moved.extend(
        before.gates.iter().zip(&after.gates).filter(|(a, b)| a != b).map(|(a, b)| (Level::Gate, State::Gate(*a), State::Gate(*b))),
    );
    moved.extend(
        before.tasks.iter().zip(&after.tasks).filter(|(a, b)| a != b).map(|(a, b)| (Level::Task, State::Task(*a), State::Task(*b))),
    );
    #[cfg(test)]
    for &(level, from, to) in &moved {
        mark(level, from, event, to);
    }
    #[cfg(test)]
    if let Some(subject) = subject {
        // Self-loops: the instance, and the phase and gate the event names,
        // took the event and stayed where they were.
        if before.instance == after.instance {
            mark(Level::Instance, State::Instance(before.instance), event, State::Instance(after.instance));
        }
        for (p, id) in before.phase_ids.iter().enumerate() {
            if subject.0 == Some(id.as_str()) && before.phases[p] == after.phases[p] {
                mark(Level::Phase, State::Phase(before.phases[p]), event, State::Phase(after.phases[p]));
            }
        }
        // Tasks of the phase the event names that stayed where they were
        // (a `run` trigger requesting a pending on-demand task).
        let mut task = 0;
        for (p, id) in before.phase_ids.iter().enumerate() {
            for _ in 0..before.tasks_per_phase[p] {
                if subject.0 == Some(id.as_str()) && before.tasks[task] == after.tasks[task] {
                    mark(Level::Task, State::Task(before.tasks[task]), event, State::Task(after.tasks[task]));
                }
                task += 1;
            }
        }
        for (g, id) in before.gate_ids.iter().enumerate() {
            if subject.0 == Some(id.0.as_str()) && subject.1 == Some(id.1.as_str()) && before.gates[g] == after.gates[g] {
                mark(Level::Gate, State::Gate(before.gates[g]), event, State::Gate(after.gates[g]));
            }
        }
    }
    match moved.into_iter().find(|&(level, from, to)| !declared(level, from, to)) {
        Some((level, from, to)) => {
            Err(format!("{level:?}: {} --{}--> {} is not in the transition table", from.name(), event.name(), to.name()))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
thread_local! {
    /// The rows taken on this thread while [`recording`] runs.
    static TAKEN: std::cell::RefCell<Option<std::collections::BTreeSet<usize>>> = const { std::cell::RefCell::new(None) };
}

/// Marks the row that `from --event--> to` at `level` takes, if recording.
#[cfg(test)]
pub(crate) fn mark(level: Level, from: State, event: E, to: State) {
    let row = TRANSITIONS
        .iter()
        .position(|t| t.level == level && t.event == event && t.from == from && t.to == to)
        .or_else(|| TRANSITIONS.iter().position(|t| t.level == level && t.event == event && t.from == State::Any && t.to == to));
    TAKEN.with(|taken| {
        if let (Some(taken), Some(row)) = (taken.borrow_mut().as_mut(), row) {
            taken.insert(row);
        }
    });
}

/// Runs `body` and returns the rows of the table it took on this thread.
#[cfg(test)]
pub(crate) fn recording(body: impl FnOnce()) -> std::collections::BTreeSet<usize> {
    TAKEN.with(|taken| *taken.borrow_mut() = Some(Default::default()));
    body();
    TAKEN.with(|taken| taken.borrow_mut().take().unwrap_or_default())
}

/// The state of `name` at `level` (for tests that name states as text).
#[cfg(test)]
pub(crate) fn state_named(level: Level, name: &str) -> Option<State> {
    use strum::VariantArray as _;
    match level {
        Level::Instance => I::VARIANTS.iter().find(|k| <&str>::from(**k) == name).map(|k| State::Instance(*k)),
        Level::Phase => P::VARIANTS.iter().find(|k| <&str>::from(**k) == name).map(|k| State::Phase(*k)),
        Level::Task => T::VARIANTS.iter().find(|k| <&str>::from(**k) == name).map(|k| State::Task(*k)),
        Level::Gate => G::VARIANTS.iter().find(|k| <&str>::from(**k) == name).map(|k| State::Gate(*k)),
    }
}

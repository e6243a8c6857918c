//! Tests of the pure core: the transition table agrees with `step`, the
//! generated diagram is current, random event sequences keep every
//! invariant, rejected events change nothing, and replay rebuilds the state.

use super::payload;
use proptest::prelude::*;
use serde_json::{json, Map};

use super::table::{self, Level};
use super::*;
use crate::model::{Format, Source};
use crate::plan::{self, AgentNames, Workflow};

fn workflow(toml: &str) -> Workflow {
    plan::load_source(&Source::from_text(toml, Format::Toml), &AgentNames::builtin()).unwrap_or_else(|e| panic!("{e}"))
}

/// Two phases; `build` has a chain and a conditional task (and a gate when
/// `gated`), `ship` runs after it.
fn two_phases(gated: bool) -> Workflow {
    let gate = if gated {
        "[[phases.gates]]\nid = \"g\"\ncriteria = [{ must = \"tasks.a.status == 'succeeded'\", label = \"a ran\" }]\n\
         [phases.gates.approval]\napprovers = [\"alice\"]\ntimeout = \"1h\"\non_timeout = \"reject\"\n"
    } else {
        ""
    };
    workflow(&format!(
        r#"name = "w"
[vars]
fast = true
[signals.incident]
description = "an incident"
[[phases]]
id = "build"
[[phases.tasks]]
id = "a"
agent = "noop"
retry = {{ max_attempts = 3, initial = "1s", max = "4s" }}
[[phases.tasks]]
id = "b"
agent = "noop"
depends_on = ["a"]
[[phases.tasks]]
id = "c"
agent = "noop"
when = "vars.fast"
{gate}[[phases]]
id = "ship"
after = ["build"]
[[phases.tasks]]
id = "d"
agent = "noop"
"#
    ))
}

fn started(workflow: &Workflow) -> Instance {
    let event = Event::InstanceStarted(payload::InstanceStarted {
        workflow: "w".into(),
        definition_hash: "h".into(),
        vars: Map::new(),
        started_by: "tester".into(),
    });
    step::start("i", workflow, &event, Timestamp(1)).expect("starts")
}

fn kind_of(instance: &Instance, level: Level) -> &'static str {
    match level {
        Level::Instance => instance.status.kind(),
        Level::Phase => instance.phases[0].status.kind(),
        Level::Task => instance.phases[0].tasks[0].status.kind(),
        Level::Gate => instance.phases[0].gates[0].status.kind(),
    }
}

fn all_tasks_succeeded(instance: &mut Instance, at: Timestamp) {
    for task in &mut instance.phases[0].tasks {
        task.attempts = 1;
        task.status = TaskStatus::Succeeded { attempt: 1, output: json!({}), duration_ms: 1, at };
    }
}

fn gate_status(kind: &str, at: Timestamp) -> GateStatus {
    match kind {
        "pending" => GateStatus::Pending,
        "awaiting_decision" => GateStatus::AwaitingDecision { since: at, level: 0, deadline: Some(at), approvals: Vec::new() },
        "on_hold" => GateStatus::OnHold { since: at, by: "x".into() },
        "passed" => GateStatus::Passed { at, by: Vec::new() },
        "failed" => GateStatus::Failed { at, reason: "r".into() },
        other => panic!("unknown gate state {other}"),
    }
}

/// A state whose `level` item is in state `kind` and everything else is set
/// so that only that state decides whether an event is accepted.
fn state_at(workflow: &Workflow, level: Level, kind: &str, for_event: &str) -> Instance {
    let mut instance = started(workflow);
    let at = Timestamp(2);
    instance.phases[0].attempt = 1;
    match level {
        Level::Task => {
            instance.phases[0].status = PhaseStatus::Running { since: at };
            let task = &mut instance.phases[0].tasks[0];
            task.attempts = if kind == "pending" { 0 } else { 1 };
            task.status = match kind {
                "pending" => TaskStatus::Pending,
                "dispatched" => TaskStatus::Dispatched { attempt: 1, key: "k".into(), at },
                "succeeded" => TaskStatus::Succeeded { attempt: 1, output: json!({}), duration_ms: 1, at },
                "failed" => TaskStatus::Failed { attempt: 1, error: "e".into(), retryable: true, at },
                "retry_waiting" => TaskStatus::RetryWaiting { attempt: 2, due: at, error: "e".into() },
                "skipped" => TaskStatus::Skipped { reason: "r".into() },
                "cancelled" => TaskStatus::Cancelled { attempt: 1, at },
                other => panic!("unknown task state {other}"),
            };
            if for_event == "Redriven" {
                if matches!(kind, "failed" | "cancelled") {
                    instance.phases[0].status = PhaseStatus::Failed { reason: "r".into(), at };
                    instance.status = InstanceStatus::Failed { reason: "r".into(), at };
                } else if !instance.phases[0].gates.is_empty() {
                    instance.phases[0].gates[0].status = gate_status("on_hold", at);
                    instance.phases[0].status = PhaseStatus::OnHold { since: at };
                }
            }
        }
        Level::Phase => {
            all_tasks_succeeded(&mut instance, at);
            if instance.phases[0].attempt == 1 && kind == "pending" {
                instance.phases[0].attempt = 0;
            }
            instance.phases[0].status = match kind {
                "pending" => PhaseStatus::Pending,
                "running" => PhaseStatus::Running { since: at },
                "awaiting_approval" => PhaseStatus::AwaitingApproval { since: at },
                "on_hold" => PhaseStatus::OnHold { since: at },
                "passed" => PhaseStatus::Passed { at },
                "failed" => PhaseStatus::Failed { reason: "r".into(), at },
                other => panic!("unknown phase state {other}"),
            };
            if let Some(gate) = instance.phases[0].gates.first_mut() {
                gate.status = match kind {
                    "awaiting_approval" => gate_status("awaiting_decision", at),
                    "on_hold" => gate_status("on_hold", at),
                    "passed" => gate_status("passed", at),
                    _ => GateStatus::Pending,
                };
            }
            if kind == "failed" && for_event == "DecisionRecorded" {
                instance.phases[0].gates[0].status = gate_status("failed", at);
                instance.status = InstanceStatus::Failed { reason: "r".into(), at };
            }
            if for_event == "Redriven" && kind != "on_hold" {
                instance.phases[0].tasks[0].status = TaskStatus::Failed { attempt: 1, error: "e".into(), retryable: false, at };
                instance.status = InstanceStatus::Failed { reason: "r".into(), at };
            }
        }
        Level::Gate => {
            all_tasks_succeeded(&mut instance, at);
            instance.phases[0].gates[0].status = gate_status(kind, at);
            instance.phases[0].status = match kind {
                "awaiting_decision" => PhaseStatus::AwaitingApproval { since: at },
                "on_hold" => PhaseStatus::OnHold { since: at },
                _ => PhaseStatus::Running { since: at },
            };
            // A failed gate fails its phase and the instance (decide would).
            if kind == "failed" {
                instance.phases[0].status = PhaseStatus::Failed { reason: "r".into(), at };
                instance.status = InstanceStatus::Failed { reason: "r".into(), at };
            }
        }
        Level::Instance => {
            instance.phases[0].attempt = 0;
            match for_event {
                "InstanceCompleted" => {
                    for phase in &mut instance.phases {
                        phase.attempt = 1;
                        phase.status = PhaseStatus::Passed { at };
                    }
                }
                "InstanceFailed" | "Redriven" => {
                    instance.phases[0].attempt = 1;
                    instance.phases[0].status = PhaseStatus::Failed { reason: "r".into(), at };
                    instance.phases[0].tasks[0].attempts = 1;
                    instance.phases[0].tasks[0].status = TaskStatus::Failed { attempt: 1, error: "e".into(), retryable: false, at };
                }
                _ => {}
            }
            instance.status = match kind {
                "running" => InstanceStatus::Running,
                "halted" => InstanceStatus::Halted { by: "x".into(), reason: String::new(), cancel_running: false, at },
                "completed" => InstanceStatus::Completed { at },
                "failed" => InstanceStatus::Failed { reason: "r".into(), at },
                "cancelled" => InstanceStatus::Cancelled { by: "x".into(), reason: String::new(), at },
                other => panic!("unknown instance state {other}"),
            };
        }
    }
    instance
}

fn passing_evaluation() -> Evaluation {
    Evaluation { criteria: Vec::new(), score: None }
}

pub(super) fn event_named(name: &str) -> Event {
    let (phase, task) = ("build".to_owned(), "a".to_owned());
    let decision = Decision {
        kind: DecisionKind::Approve,
        principal: "alice".into(),
        auth: crate::machine::Authentication::Local,
        via: "alice".into(),
        comment: String::new(),
        request_id: String::new(),
        level: 0,
        seen: Default::default(),
        inputs: Default::default(),
    };
    match name {
        "PhaseStarted" => Event::PhaseStarted(payload::PhaseStarted { phase, attempt: 1 }),
        "TaskDispatched" => Event::TaskDispatched(payload::TaskDispatched { phase, task, attempt: 0, key: "k".into() }),
        "TaskSucceeded" => Event::TaskSucceeded(payload::TaskSucceeded { phase, task, attempt: 1, output: json!({}), duration_ms: 1 }),
        "TaskFailed" => Event::TaskFailed(payload::TaskFailed { phase, task, attempt: 1, error: "e".into(), retryable: true }),
        "RetryScheduled" => Event::RetryScheduled(payload::RetryScheduled { phase, task, attempt: 2, due: Timestamp(5) }),
        "TaskSkipped" => Event::TaskSkipped(payload::TaskSkipped { phase, task, reason: "r".into() }),
        "TaskCancelled" => Event::TaskCancelled(payload::TaskCancelled { phase, task, attempt: 1, reason: "r".into() }),
        "GateEvaluated" => Event::GateEvaluated(payload::GateEvaluated { phase, gate: "g".into(), evaluation: passing_evaluation() }),
        "DecisionRecorded" => Event::DecisionRecorded(payload::DecisionRecorded { phase, gate: "g".into(), decision }),
        "GateTimedOut" => {
            Event::GateTimedOut(payload::GateTimedOut { phase, gate: "g".into(), level: 0, action: crate::model::OnTimeout::Reject })
        }
        "PhaseCompleted" => Event::PhaseCompleted(payload::PhaseCompleted { phase }),
        "PhaseFailed" => Event::PhaseFailed(payload::PhaseFailed { phase, reason: "r".into() }),
        "InstanceCompleted" => Event::InstanceCompleted,
        "InstanceFailed" => Event::InstanceFailed(payload::InstanceFailed { reason: "r".into() }),
        "Halted" => Event::Halted(payload::Halted { by: "x".into(), reason: String::new(), cancel_running: false }),
        "Resumed" => Event::Resumed(payload::Resumed { by: "x".into() }),
        "Cancelled" => Event::Cancelled(payload::Cancelled { by: "x".into(), reason: String::new() }),
        "Redriven" => Event::Redriven(payload::Redriven { by: "x".into(), tasks: vec!["a".into()], phase: None }),
        "SignalReceived" => {
            Event::SignalReceived(payload::SignalReceived { name: "incident".into(), data: json!({"severity": "P1"}), by: "pager".into() })
        }
        other => panic!("unknown event {other}"),
    }
}

pub(super) const EVENTS: &[&str] = &[
    "PhaseStarted",
    "TaskDispatched",
    "TaskSucceeded",
    "TaskFailed",
    "RetryScheduled",
    "TaskSkipped",
    "TaskCancelled",
    "GateEvaluated",
    "DecisionRecorded",
    "GateTimedOut",
    "PhaseCompleted",
    "PhaseFailed",
    "InstanceCompleted",
    "InstanceFailed",
    "Halted",
    "Resumed",
    "Cancelled",
    "Redriven",
    "SignalReceived",
];

/// Which events affect each level's state (others are checked at their own level).
fn concerns(level: Level, event: &str) -> bool {
    match level {
        Level::Task => event.starts_with("Task") || event == "RetryScheduled" || event == "Redriven",
        Level::Phase => event.starts_with("Phase") || event.starts_with("Gate") || event == "DecisionRecorded" || event == "Redriven",
        Level::Gate => event.starts_with("Gate") || event == "DecisionRecorded" || event == "Redriven",
        Level::Instance => {
            !event.starts_with("Task")
                && !event.starts_with("Phase")
                && !event.starts_with("Gate")
                && event != "RetryScheduled"
                && event != "DecisionRecorded"
        }
    }
}

#[test]
pub(super) fn step_accepts_exactly_the_declared_transitions() {
    for (level, states) in [
        (Level::Instance, &["running", "halted", "completed", "failed", "cancelled"][..]),
        (Level::Phase, &["pending", "running", "awaiting_approval", "on_hold", "passed", "failed"][..]),
        (Level::Gate, &["pending", "awaiting_decision", "on_hold", "passed", "failed"][..]),
        (Level::Task, &["pending", "dispatched", "succeeded", "failed", "retry_waiting", "skipped", "cancelled"][..]),
    ] {
        for &from in states {
            for &name in EVENTS.iter().filter(|e| concerns(level, e)) {
                // Gate events need the gated workflow; completing a phase, an ungated one.
                let gated = level == Level::Gate
                    || name.starts_with("Gate")
                    || name == "DecisionRecorded"
                    || (name == "Redriven" && matches!(from, "on_hold" | "succeeded" | "skipped" | "pending"));
                let workflow = two_phases(gated);
                let mut instance = state_at(&workflow, level, from, name);
                let mut event = event_named(name);
                if let Event::TaskDispatched(payload::TaskDispatched { attempt, .. }) = &mut event {
                    *attempt = instance.phases[0].tasks[0].attempts + 1;
                }
                if name == "Redriven" && matches!(level, Level::Phase | Level::Gate) && from == "on_hold" {
                    event = Event::Redriven(payload::Redriven { by: "x".into(), tasks: Vec::new(), phase: None });
                }
                // After a gate failed: its owner holds it, or the whole phase runs again.
                if from == "failed" && matches!(level, Level::Phase | Level::Gate) && name == "DecisionRecorded" {
                    if let Event::DecisionRecorded(e) = &mut event {
                        e.decision.kind = DecisionKind::Hold;
                    }
                }
                if from == "failed" && level == Level::Gate && name == "Redriven" {
                    event = Event::Redriven(payload::Redriven { by: "x".into(), tasks: Vec::new(), phase: Some("build".into()) });
                }
                let before = instance.clone();
                let declared: Vec<&str> =
                    table::of(level).filter(|t| t.from.name() == from && t.event.name() == name).map(|t| t.to.name()).collect();
                match step(&mut instance, &workflow, &event, Timestamp(3)) {
                    Ok(_) if declared.contains(&kind_of(&instance, level)) => {
                        super::react_tests::mark_taken(level, from, name, kind_of(&instance, level));
                    }
                    // Redriven is an instance-level event; what it does not name keeps its state.
                    Ok(_) if name == "Redriven" && declared.is_empty() && kind_of(&instance, level) == from => {}
                    Ok(_) => {
                        panic!("{level:?}: {from} accepted {name} (→ {}) but the table declares {declared:?}", kind_of(&instance, level))
                    }
                    Err(rejected) if !declared.is_empty() => {
                        panic!("{level:?}: the table declares {from} --{name}--> {declared:?} but step refused: {rejected}")
                    }
                    Err(rejected) => {
                        assert_eq!(instance, before, "a rejected event changed the state");
                        assert!(rejected.to_string().starts_with("cannot "), "{rejected}");
                    }
                }
            }
        }
    }
}

#[test]
fn state_diagram_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/state-machine.md");
    let rendered = table::render_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &rendered).expect("write docs/state-machine.md");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == rendered,
        "docs/state-machine.md is stale: run `UPDATE_DOCS=1 cargo test -p phasegate-engine --lib state_diagram`"
    );
}

/// Drives an instance to rest with decide + step, letting `outcome` decide
/// each dispatched attempt's result; returns the records written.
fn drive(
    workflow: &Workflow,
    instance: &mut Instance,
    records: &mut Vec<Record>,
    now: &mut Timestamp,
    outcome: &mut dyn FnMut(&str, u32) -> Result<(), bool>,
) {
    for _ in 0..10_000 {
        let decision = decide(instance, workflow, *now);
        let mut progressed = false;
        for event in decision.events {
            let effects = step(instance, workflow, &event, *now).unwrap_or_else(|r| panic!("decide proposed a rejected event: {r}"));
            records.push(Record::new(records.len() as u64 + 1, *now, event));
            instance.seq = records.len() as u64;
            progressed = true;
            for effect in effects {
                if let Effect::Dispatch { phase, task, attempt, .. } = effect {
                    let (phase_id, task_id) = (workflow.phases[phase].id.clone(), workflow.phases[phase].tasks[task].id.clone());
                    let event = match outcome(&task_id, attempt) {
                        Ok(()) => Event::TaskSucceeded(payload::TaskSucceeded {
                            phase: phase_id,
                            task: task_id,
                            attempt,
                            output: json!({"attempt": attempt}),
                            duration_ms: 3,
                        }),
                        Err(retryable) => Event::TaskFailed(payload::TaskFailed {
                            phase: phase_id,
                            task: task_id,
                            attempt,
                            error: "boom".into(),
                            retryable,
                        }),
                    };
                    step(instance, workflow, &event, *now).expect("result of a dispatched attempt");
                    records.push(Record::new(records.len() as u64 + 1, *now, event));
                    instance.seq = records.len() as u64;
                }
            }
        }
        if !progressed {
            match decision.wake_at {
                // Time moves on to the next retry, but not to a human
                // deadline: tests of deadlines advance time themselves.
                Some(wake) if wake.since(*now) <= 60_000 => *now = wake,
                Some(_) => return,

                None => return,
            }
        }
    }
    panic!("the instance did not come to rest");
}

fn begin(workflow: &Workflow) -> (Instance, Vec<Record>) {
    let event = Event::InstanceStarted(payload::InstanceStarted {
        workflow: "w".into(),
        definition_hash: "h".into(),
        vars: json!({"fast": true}).as_object().cloned().unwrap_or_default(),
        started_by: "tester".into(),
    });
    let instance = step::start("i", workflow, &event, Timestamp(1)).expect("starts");
    (instance, vec![Record::new(1, Timestamp(1), event)])
}

#[test]
fn a_workflow_runs_to_completion_with_retries_and_replays_identically() {
    let workflow = two_phases(false);
    let (mut instance, mut records) = begin(&workflow);
    let mut now = Timestamp(1);
    // Task a fails twice (retryably), then succeeds on its third attempt.
    drive(&workflow, &mut instance, &mut records, &mut now, &mut |task, attempt| {
        if task == "a" && attempt < 3 {
            Err(true)
        } else {
            Ok(())
        }
    });
    assert_eq!(instance.status.kind(), "completed");
    assert!(matches!(&instance.phases[0].tasks[0].status, TaskStatus::Succeeded { attempt: 3, .. }));
    // Backoffs of 1 s and 2 s, each shortened by at most 20 % jitter.
    assert!(now.0 > 2400 && now.0 <= 3001, "two backoffs elapsed in machine time: {now:?}");
    let kinds: Vec<&str> = records.iter().map(|r| r.event().kind()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "RetryScheduled").count(), 2);
    assert_eq!(kinds.first(), Some(&"InstanceStarted"));
    assert_eq!(kinds.last(), Some(&"InstanceCompleted"));
    let replayed = replay("i", &workflow, &records).expect("replays");
    assert_eq!(replayed, instance);
}

#[test]
fn a_gate_stops_the_phase_awaiting_a_decision() {
    let workflow = two_phases(true);
    let (mut instance, mut records) = begin(&workflow);
    let mut now = Timestamp(1);
    drive(&workflow, &mut instance, &mut records, &mut now, &mut |_, _| Ok(()));
    assert_eq!(instance.effective_status(), EffectiveStatus::AwaitingApproval);
    assert!(!instance.is_active(&workflow));
    assert_eq!(instance.phases[0].status.kind(), "awaiting_approval");
    assert_eq!(instance.phases[1].status.kind(), "pending", "ship waits for build's gate");
}

#[test]
fn a_permanent_failure_fails_the_instance_and_retry_redrives_only_what_failed() {
    let workflow = two_phases(false);
    let (mut instance, mut records) = begin(&workflow);
    let mut now = Timestamp(1);
    drive(&workflow, &mut instance, &mut records, &mut now, &mut |task, _| if task == "b" { Err(false) } else { Ok(()) });
    assert_eq!(instance.status.kind(), "failed");
    let a_before = instance.phases[0].tasks[0].status.clone();
    // Redriving a succeeded task is refused and changes nothing.
    let before = instance.clone();
    let refused =
        step(&mut instance, &workflow, &Event::Redriven(payload::Redriven { by: "op".into(), tasks: vec!["a".into()], phase: None }), now)
            .expect_err("a succeeded");
    assert!(refused.to_string().contains("task a is succeeded"), "{refused}");
    assert_eq!(instance, before);
    step(&mut instance, &workflow, &Event::Redriven(payload::Redriven { by: "op".into(), tasks: vec!["b".into()], phase: None }), now)
        .expect("b failed");
    records.push(Record::new(
        records.len() as u64 + 1,
        now,
        Event::Redriven(payload::Redriven { by: "op".into(), tasks: vec!["b".into()], phase: None }),
    ));
    instance.seq = records.len() as u64;
    drive(&workflow, &mut instance, &mut records, &mut now, &mut |_, _| Ok(()));
    assert_eq!(instance.status.kind(), "completed");
    assert_eq!(instance.phases[0].tasks[0].status, a_before, "a was not run again");
    assert!(matches!(&instance.phases[0].tasks[1].status, TaskStatus::Succeeded { attempt: 2, .. }));
    assert_eq!(replay("i", &workflow, &records).expect("replays"), instance);
}

/// Regression (found by the property test at stop 12): re-running task `a`
/// of a phase on hold left `b`, which depends on `a`, succeeded on stale
/// inputs. Its downstream tasks now run again too.
#[test]
fn regression_redrive_on_hold_reruns_downstream_tasks() {
    let workflow = two_phases(true);
    let (mut instance, mut records) = begin(&workflow);
    let mut now = Timestamp(1);
    drive(&workflow, &mut instance, &mut records, &mut now, &mut |_, _| Ok(()));
    let hold = Event::DecisionRecorded(payload::DecisionRecorded {
        phase: "build".into(),
        gate: "g".into(),
        decision: Decision {
            kind: DecisionKind::Hold,
            principal: "alice".into(),
            auth: crate::machine::Authentication::Local,
            via: String::new(),
            comment: "fix a".into(),
            request_id: String::new(),
            level: 0,
            seen: Default::default(),
            inputs: Default::default(),
        },
    });
    step(&mut instance, &workflow, &hold, now).expect("alice holds the gate");
    assert_eq!(instance.phases[0].status.kind(), "on_hold");
    step(&mut instance, &workflow, &Event::Redriven(payload::Redriven { by: "op".into(), tasks: vec!["a".into()], phase: None }), now)
        .expect("a re-runs");
    assert_eq!(instance.phases[0].tasks[0].status.kind(), "pending");
    assert_eq!(instance.phases[0].tasks[1].status.kind(), "pending", "b depends on a and runs again");
    assert_eq!(instance.phases[0].tasks[2].status.kind(), "succeeded", "c does not depend on a");
    check_invariants(&instance, &workflow).expect("invariants hold");
}

#[test]
fn a_false_condition_skips_the_task() {
    let workflow = two_phases(false);
    let event = Event::InstanceStarted(payload::InstanceStarted {
        workflow: "w".into(),
        definition_hash: "h".into(),
        vars: json!({"fast": false}).as_object().cloned().unwrap_or_default(),
        started_by: "t".into(),
    });
    let mut instance = step::start("i", &workflow, &event, Timestamp(1)).expect("starts");
    let mut records = vec![Record::new(1, Timestamp(1), event)];
    let mut now = Timestamp(1);
    drive(&workflow, &mut instance, &mut records, &mut now, &mut |_, _| Ok(()));
    assert!(matches!(&instance.phases[0].tasks[2].status, TaskStatus::Skipped { reason } if reason == "`vars.fast` is false"));
    assert_eq!(instance.status.kind(), "completed");
}

/// Invariants that hold in every reachable state.
fn check_invariants(instance: &Instance, workflow: &Workflow) -> Result<(), String> {
    if matches!(instance.status, InstanceStatus::Completed { .. })
        && !instance.phases.iter().all(|p| matches!(p.status, PhaseStatus::Passed { .. }))
    {
        return Err("completed with a phase not passed".into());
    }
    for (p, phase) in instance.phases.iter().enumerate() {
        let started = !matches!(phase.status, PhaseStatus::Pending);
        if started {
            if phase.attempt == 0 {
                return Err(format!("phase {} left pending without an attempt", phase.id));
            }
            if let Some(&u) = workflow.phases[p].after.iter().find(|&&u| !matches!(instance.phases[u].status, PhaseStatus::Passed { .. })) {
                return Err(format!("phase {} started before {} passed", phase.id, instance.phases[u].id));
            }
        }
        for (t, task) in phase.tasks.iter().enumerate() {
            let attempt = match &task.status {
                TaskStatus::Pending | TaskStatus::Skipped { .. } => None,
                TaskStatus::Dispatched { attempt, .. }
                | TaskStatus::Waiting { attempt, .. }
                | TaskStatus::Succeeded { attempt, .. }
                | TaskStatus::Failed { attempt, .. }
                | TaskStatus::Cancelled { attempt, .. } => Some(*attempt),
                TaskStatus::RetryWaiting { attempt, .. } => Some(attempt - 1),
            };
            if attempt.is_some() && !started {
                return Err(format!("task {} ran in a pending phase", task.id));
            }
            if attempt.is_some_and(|a| a > task.attempts || a == 0) {
                return Err(format!("task {} attempt {attempt:?} beyond its count {}", task.id, task.attempts));
            }
            if matches!(task.status, TaskStatus::Dispatched { .. } | TaskStatus::Waiting { .. } | TaskStatus::Succeeded { .. })
                && !workflow.phases[p].tasks[t].depends_on.iter().all(|&d| phase.tasks[d].status.is_done())
            {
                return Err(format!("task {} ran before its dependencies", task.id));
            }
        }
        if matches!(phase.status, PhaseStatus::AwaitingApproval { .. } | PhaseStatus::Passed { .. })
            && !phase.tasks.iter().all(|t| t.status.is_done())
        {
            return Err(format!("phase {} passed with tasks not done", phase.id));
        }
    }
    Ok(())
}

fn random_event(workflow: &Workflow, choice: u8, task: usize, attempt: u32) -> Event {
    let ids: Vec<(String, String)> =
        workflow.phases.iter().flat_map(|p| p.tasks.iter().map(move |t| (p.id.clone(), t.id.clone()))).collect();
    let (phase, task) = ids[task % ids.len()].clone();
    match choice % 16 {
        0 => Event::PhaseStarted(payload::PhaseStarted { phase, attempt }),
        1 => Event::TaskDispatched(payload::TaskDispatched { phase, task, attempt, key: "k".into() }),
        2 => Event::TaskSucceeded(payload::TaskSucceeded { phase, task, attempt, output: json!({}), duration_ms: 1 }),
        3 => Event::TaskFailed(payload::TaskFailed { phase, task, attempt, error: "e".into(), retryable: attempt.is_multiple_of(2) }),
        4 => Event::RetryScheduled(payload::RetryScheduled { phase, task, attempt, due: Timestamp(9) }),
        5 => Event::TaskSkipped(payload::TaskSkipped { phase, task, reason: "r".into() }),
        6 => Event::TaskCancelled(payload::TaskCancelled { phase, task, attempt, reason: "r".into() }),
        7 => match attempt {
            0 => Event::GateEvaluated(payload::GateEvaluated { phase, gate: "g".into(), evaluation: passing_evaluation() }),
            1 => Event::GateTimedOut(payload::GateTimedOut { phase, gate: "g".into(), level: 0, action: crate::model::OnTimeout::Reject }),
            _ => Event::DecisionRecorded(payload::DecisionRecorded {
                phase,
                gate: "g".into(),
                decision: Decision {
                    kind: [DecisionKind::Approve, DecisionKind::Reject, DecisionKind::Hold, DecisionKind::Escalate]
                        [(choice as usize / 16) % 4],
                    principal: if choice.is_multiple_of(2) { "alice".into() } else { "tester".into() },
                    auth: crate::machine::Authentication::Local,
                    via: String::new(),
                    comment: String::new(),
                    request_id: String::new(),
                    level: 0,
                    seen: Default::default(),
                    inputs: Default::default(),
                },
            }),
        },
        8 => Event::PhaseCompleted(payload::PhaseCompleted { phase }),
        9 => Event::PhaseFailed(payload::PhaseFailed { phase, reason: "r".into() }),
        10 => Event::InstanceCompleted,
        11 => Event::InstanceFailed(payload::InstanceFailed { reason: "r".into() }),
        12 => Event::Halted(payload::Halted { by: "x".into(), reason: String::new(), cancel_running: attempt.is_multiple_of(2) }),
        13 => Event::Resumed(payload::Resumed { by: "x".into() }),
        14 => Event::Cancelled(payload::Cancelled { by: "x".into(), reason: String::new() }),
        _ => Event::Redriven(payload::Redriven {
            by: "x".into(),
            tasks: if choice.is_multiple_of(3) { Vec::new() } else { vec![task] },
            phase: None,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random sequences, half proposed by decide (so runs get deep) and half
    /// arbitrary (so illegal events are tried everywhere): every invariant
    /// holds after each accepted event, rejected events change nothing, and
    /// replaying the accepted events rebuilds the state.
    #[test]
    fn random_event_sequences_keep_invariants_and_replay(
        gated in any::<bool>(),
        script in proptest::collection::vec((any::<bool>(), any::<u8>(), 0usize..8, 0u32..4, any::<bool>()), 1..120),
    ) {
        let workflow = two_phases(gated);
        let (mut instance, mut records) = begin(&workflow);
        let mut now = Timestamp(1);
        for (use_decide, choice, task, attempt, succeed) in script {
            now = Timestamp(now.0 + 500);
            let event = if use_decide {
                let decision = decide(&instance, &workflow, now);
                match decision.events.into_iter().next() {
                    Some(event) => event,
                    None => {
                        // Nothing to decide: complete an in-flight attempt instead.
                        let Some((p, t, attempt, _)) = instance.in_flight().into_iter().next() else { continue };
                        let (phase, task) = (instance.phases[p].id.clone(), instance.phases[p].tasks[t].id.clone());
                        if succeed {
                            Event::TaskSucceeded(payload::TaskSucceeded { phase, task, attempt, output: json!({}), duration_ms: 1 })
                        } else {
                            Event::TaskFailed(payload::TaskFailed { phase, task, attempt, error: "e".into(), retryable: true })
                        }
                    }
                }
            } else {
                random_event(&workflow, choice, task, attempt)
            };
            let before = instance.clone();
            match step(&mut instance, &workflow, &event, now) {
                Ok(_) => {
                    records.push(Record::new(records.len() as u64 + 1, now, event));
                    if let Err(broken) = check_invariants(&instance, &workflow) {
                        prop_assert!(false, "invariant broken: {broken}\nlast event: {:?}", records.last());
                    }
                }
                Err(_) => prop_assert_eq!(&instance, &before),
            }
        }
        let mut replayed = replay("i", &workflow, &records).map_err(|r| TestCaseError::fail(r.to_string()))?;
        replayed.seq = instance.seq;
        prop_assert_eq!(replayed, instance);
    }
}

/// Architecture invariant, enforced: the machine is pure. Its sources (tests
/// aside) use no clock, no I/O, no async runtime and no logging: time is an
/// input, effects are returned, and what happened is in the events.
#[test]
fn tidy_the_machine_reads_no_clock_and_does_no_io() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/machine");
    let forbidden = ["SystemTime", "Instant", "tokio", "tracing", "std::fs", "std::net", "std::io", "std::thread", "std::env", "rand::"];
    let mut checked = 0;
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/machine") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
            if !name.ends_with(".rs") || name.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            // The module's own test modules are tests, not the machine.
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
            let lines: Vec<&str> = code.lines().map(|line| line.split("//").next().unwrap_or_default()).collect();
            for (number, line) in lines.iter().enumerate() {
                if let Some(word) = forbidden.iter().find(|word| line.contains(*word)) {
                    panic!("src/machine/{name}:{}: `{word}` in the pure machine: {}", number + 1, line.trim());
                }
                // A catch-all arm (`_ =>`, `other =>`) in a match over a
                // status: a new state must make the compiler ask every match.
                if catch_all(line) {
                    let scrutinee = lines[..number].iter().rev().find(|l| l.contains("match ")).copied().unwrap_or_default();
                    assert!(
                        !scrutinee.contains("status"),
                        "src/machine/{name}:{}: a catch-all arm in `{}`: name the states",
                        number + 1,
                        scrutinee.trim()
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 16, "read the machine's sources ({checked} files)");
}

/// A match arm that binds or ignores whatever is left: `_ =>`, `other =>`.
fn catch_all(line: &str) -> bool {
    let arm = line.trim_start().trim_start_matches('|').trim_start();
    let Some((pattern, _)) = arm.split_once("=>") else { return false };
    let pattern = pattern.split(" if ").next().unwrap_or_default().trim();
    !pattern.is_empty() && pattern.chars().all(|c| c == '_' || c.is_ascii_lowercase() || c.is_ascii_digit())
}

#[test]
fn tidy_catch_all_finds_the_arms_it_must() {
    assert!(catch_all("            _ => {}"));
    assert!(catch_all("        other => Err(x),"));
    assert!(catch_all("        other if ok => Err(x),"));
    assert!(!catch_all("        InstanceStatus::Running => {}"));
    assert!(!catch_all("        other @ (TaskStatus::Pending | TaskStatus::Failed { .. }) => {}"));
    assert!(!catch_all("        let x = y;"));
}

/// Whether `code` holds `path` as a path of its own (`super::gate::` is not
/// in `super::super::gate::`).
fn mentions(code: &str, path: &str) -> bool {
    code.match_indices(path).any(|(at, _)| !code[..at].ends_with(|c: char| c == ':' || c == '_' || c.is_ascii_alphanumeric()))
}

/// No module imports a sibling that imports it back, anywhere in the engine:
/// the graph of `super::x` and `crate::path::x` references between the
/// modules of one directory (a subdirectory counts as its module) has no
/// cycle. The module tree itself (a parent re-exporting its children) is not
/// an import.
#[test]
fn tidy_no_module_imports_one_that_imports_it_back() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // Every non-test source below `dir`, with the module path it has.
    fn sources(dir: &Path, module: &str, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).expect("read src").flatten() {
            let path = entry.path();
            let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if path.is_dir() {
                sources(&path, &format!("{module}::{name}"), out);
            } else if path.extension().is_some_and(|e| e == "rs") && !name.ends_with("tests") {
                let module = if name == "mod" { module.to_owned() } else { format!("{module}::{name}") };
                out.push((path, module));
            }
        }
    }
    let mut files = Vec::new();
    sources(&src, "crate", &mut files);
    files.retain(|(path, _)| !path.ends_with("lib.rs") && !path.ends_with("main.rs"));
    let modules: BTreeSet<String> = files.iter().map(|(_, m)| m.clone()).collect();
    // Edges between siblings: the child of directory module P on the way to a
    // file uses another child S of P, by `super::...::S` or `crate::...::S`.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let children = |parent: &str| -> BTreeSet<String> {
        modules
            .iter()
            .filter_map(|m| m.strip_prefix(&format!("{parent}::")))
            .map(|rest| rest.split("::").next().unwrap_or_default().to_owned())
            .collect()
    };
    for (path, module) in &files {
        let text = std::fs::read_to_string(path).expect("source");
        // Code only: not the test module, not comments (docs link to modules freely).
        let code: String = text
            .split("#[cfg(test)]\nmod ")
            .next()
            .unwrap_or_default()
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let segments: Vec<&str> = module.split("::").collect();
        for keep in 1..segments.len() {
            let parent = segments[..keep].join("::");
            let me = segments[keep];
            let supers = vec!["super"; segments.len() - keep].join("::");
            for sibling in children(&parent).into_iter().filter(|s| s != me) {
                let target = format!("{parent}::{sibling}");
                let relative = format!("{supers}::{sibling}");
                let used = [format!("{relative}::"), format!("{relative};"), format!("{target}::"), format!("{target};")]
                    .iter()
                    .any(|needle| mentions(&code, needle))
                    || mentions(&code, &format!("{supers}::{{"))
                        && code.split(&format!("{supers}::{{")).skip(1).any(|list| {
                            list.split('}')
                                .next()
                                .unwrap_or_default()
                                .split(',')
                                .any(|item| item.trim().split("::").next() == Some(sibling.as_str()))
                        });
                if used {
                    edges.entry(format!("{parent}::{me}")).or_default().insert(target);
                }
            }
        }
    }
    // Any cycle among siblings.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            return Some(path[start..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle: {} -> {}", cycle.join(" -> "), cycle[0]);
        }
    }
    assert!(edges.len() > 20, "the graph was read: {edges:?}");
}

/// The scenario tests of this module, for the transition-coverage test.
pub(super) fn scenarios() {
    a_workflow_runs_to_completion_with_retries_and_replays_identically();
    a_gate_stops_the_phase_awaiting_a_decision();
    a_permanent_failure_fails_the_instance_and_retry_redrives_only_what_failed();
    regression_redrive_on_hold_reruns_downstream_tasks();
    a_false_condition_skips_the_task();
    random_event_sequences_keep_invariants_and_replay();
}

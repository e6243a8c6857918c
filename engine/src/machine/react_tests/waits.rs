//! Durable waits and deadlines on the pure machine: a wait is a timer in
//! the state, whatever stops its phase's work stops it, and a deadline acts
//! once with the outcome its definition declares.

use super::*;

const MINUTE: u64 = 60_000;

/// A release whose `ship` phase soaks for `vars.soak` (10m) before its gate,
/// beside a `docs` phase that waits 20m. `phase_deadline` and
/// `instance_deadline` are `deadline = { ... }` lines (or empty).
fn waits(phase_deadline: &str, instance_deadline: &str) -> Harness {
    harness_for(&format!(
        r#"
name = "release"
{instance_deadline}
[vars]
soak = {{ type = "duration", default = "10m" }}
[signals.incident]
description = "an incident with a severity"

[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
rollback = {{ id = "uncompile", agent = "noop" }}

[[phases]]
id = "ship"
after = ["build"]
{phase_deadline}
[[phases.tasks]]
id = "deploy"
agent = "noop"
[[phases.tasks]]
id = "probe"
agent = "noop"
[[phases.tasks]]
id = "soak"
agent = "wait"
params = {{ duration = "{{{{ vars.soak }}}}" }}
depends_on = ["deploy"]
[[phases.gates]]
id = "go"
criteria = [{{ must = "tasks.soak.output.waited_ms >= 600000", label = "soaked for 10 minutes" }}]
approval = {{ approvers = ["alice"] }}
[[phases.triggers]]
id = "p0"
on = "signal:incident"
when = "signals.incident.severity == 'P0'"
action = "rollback"
[[phases.triggers]]
id = "p1"
on = "signal:incident"
when = "signals.incident.severity == 'P1'"
action = "halt_for_approval"
approval = {{ approvers = ["alice"], timeout = "15m", on_timeout = "approve" }}
then = "rollback"

[[phases]]
id = "docs"
after = ["build"]
[[phases.tasks]]
id = "quiet"
agent = "wait"
params = {{ duration = "20m" }}
"#
    ))
}

fn soak(h: &Harness) -> &TaskStatus {
    &h.instance.phases[1].tasks[2].status
}

fn quiet(h: &Harness) -> &TaskStatus {
    &h.instance.phases[2].tasks[0].status
}

fn decide_go(h: &mut Harness, kind: DecisionKind) -> Result<(), Rejected> {
    let decision = Decision {
        kind,
        principal: "alice".into(),
        auth: crate::machine::Authentication::Local,
        via: "alice".into(),
        comment: String::new(),
        request_id: String::new(),
        level: 0,
        seen: Default::default(),
        inputs: Default::default(),
    };
    h.apply(Event::DecisionRecorded(payload::DecisionRecorded { phase: "ship".into(), gate: "go".into(), decision }))
}

fn wait_elapsed(task: &str, phase: &str, attempt: u32) -> Event {
    Event::WaitElapsed(payload::WaitElapsed { phase: phase.into(), task: task.into(), attempt })
}

#[test]
pub(super) fn a_wait_is_a_timer_in_the_state_that_replay_resumes_and_its_end_is_recorded() {
    let mut h = waits("", "");
    h.settle(0);
    let TaskStatus::Waiting { attempt: 1, since, due } = soak(&h).clone() else { panic!("soak waits: {:?}", h.kinds()) };
    assert_eq!(due, since.after(std::time::Duration::from_millis(10 * MINUTE)), "the default of vars.soak");
    assert!(matches!(quiet(&h), TaskStatus::Waiting { .. }), "docs waits beside it");
    assert_eq!(decide(&h.instance, &h.workflow, h.now).wake_at, Some(due), "the earliest wait wakes the instance");
    // A restart rebuilds the wait from the log: the same end, so only the time left remains.
    h.assert_replays();
    assert!(h.kinds().iter().any(|k| k.starts_with("WaitStarted(soak#1 until ")), "{:?}", h.kinds());

    // Ending it early, or an agent's result for it, is refused.
    h.now = Timestamp(due.0 - 1);
    let early = h.apply(wait_elapsed("soak", "ship", 1)).expect_err("not yet");
    assert!(early.to_string().contains("the wait is not over"), "{early}");
    let result = h
        .apply(Event::TaskSucceeded(payload::TaskSucceeded {
            phase: "ship".into(),
            task: "soak".into(),
            attempt: 1,
            output: json!({}),
            duration_ms: 1,
        }))
        .expect_err("no agent runs a wait");
    assert!(result.to_string().contains("is waiting"), "{result}");
    let mut pending = h.instance.clone();
    pending.phases[1].tasks[2].status = TaskStatus::Pending;
    pending.phases[1].tasks[2].attempts = 0;
    let dispatched =
        Event::TaskDispatched(payload::TaskDispatched { phase: "ship".into(), task: "soak".into(), attempt: 1, key: "k".into() });
    let refused = step(&mut pending, &h.workflow, &dispatched, h.now).expect_err("a wait is not dispatched");
    assert!(refused.to_string().contains("is a wait"), "{refused}");
    let mut probe = h.instance.clone();
    probe.phases[1].tasks[1].status = TaskStatus::Pending;
    probe.phases[1].tasks[1].attempts = 0;
    let started = Event::WaitStarted(payload::WaitStarted { phase: "ship".into(), task: "probe".into(), attempt: 1, due });
    let refused = step(&mut probe, &h.workflow, &started, h.now).expect_err("probe runs an agent");
    assert!(refused.to_string().contains("runs agent noop"), "{refused}");

    // Its time is up: it succeeded, and its record is the gate's evidence.
    h.settle(MINUTE);
    let TaskStatus::Succeeded { output, duration_ms, .. } = soak(&h) else { panic!("soak done: {:?}", h.kinds()) };
    assert_eq!((output["waited_ms"].as_u64(), *duration_ms), (Some(10 * MINUTE), 10 * MINUTE));
    assert_eq!(output["until"], json!(due.to_string()));
    let evaluation = h.instance.phases[1].gates[0].evaluation.as_ref().expect("evaluated");
    assert_eq!(evaluation.criteria[0].verdict, Verdict::Pass, "{evaluation:?}");
    assert!(matches!(quiet(&h), TaskStatus::Waiting { .. }), "docs waits 20m");
    decide_go(&mut h, DecisionKind::Approve).expect("approve");
    h.settle(20 * MINUTE);
    assert_eq!(h.instance.status.kind(), "completed", "{:?}", h.kinds());
    h.assert_replays();
}

#[test]
pub(super) fn whatever_stops_the_work_of_a_phase_cancels_its_waits() {
    let cancelled = |status: &TaskStatus| matches!(status, TaskStatus::Cancelled { .. });
    for case in ["halt --cancel-running", "halt", "cancel", "another task failed", "rollback", "p0", "p1 approved", "p1 timed out"] {
        let mut h = waits("", "");
        h.hold.push("probe".into());
        h.settle(0);
        assert!(matches!(soak(&h), TaskStatus::Waiting { attempt: 1, .. }), "{case}: {:?}", h.kinds());
        match case {
            "halt --cancel-running" => {
                h.apply(Event::Halted(payload::Halted { by: "op".into(), reason: String::new(), cancel_running: true })).expect("halt");
                assert!(cancelled(soak(&h)) && cancelled(quiet(&h)), "{case}");
                h.now = Timestamp(h.now.0 + 5 * MINUTE);
                h.apply(Event::Resumed(payload::Resumed { by: "op".into() })).expect("resume");
                h.settle(0);
                // The wait starts over, for its whole duration.
                let TaskStatus::Waiting { attempt: 2, since, due } = soak(&h).clone() else { panic!("{case}: {:?}", h.kinds()) };
                assert_eq!((since, due.0 - since.0), (h.now, 10 * MINUTE), "{case}");
            }
            "halt" => {
                h.apply(Event::Halted(payload::Halted { by: "op".into(), reason: String::new(), cancel_running: false })).expect("halt");
                // A plain halt stops new work; the wait's clock runs on and it ends on resume.
                h.now = Timestamp(h.now.0 + 11 * MINUTE);
                assert!(decide(&h.instance, &h.workflow, h.now).events.is_empty(), "nothing moves while halted");
                assert!(matches!(soak(&h), TaskStatus::Waiting { attempt: 1, .. }), "{case}");
                h.apply(Event::Resumed(payload::Resumed { by: "op".into() })).expect("resume");
                h.settle(0);
                assert!(matches!(soak(&h), TaskStatus::Succeeded { attempt: 1, .. }), "{case}: {:?}", h.kinds());
            }
            "cancel" => {
                h.apply(Event::Cancelled(payload::Cancelled { by: "op".into(), reason: String::new() })).expect("cancel");
                assert!(cancelled(soak(&h)) && cancelled(quiet(&h)), "{case}");
            }
            "another task failed" => {
                h.apply(Event::TaskFailed(payload::TaskFailed {
                    phase: "ship".into(),
                    task: "probe".into(),
                    attempt: 1,
                    error: "probe failed".into(),
                    retryable: false,
                }))
                .expect("probe fails");
                h.settle(0);
                // Its phase failed (PhaseFailed stops soak), then the instance (InstanceFailed stops quiet).
                assert_eq!(h.instance.status.kind(), "failed", "{case}: {:?}", h.kinds());
                assert!(cancelled(soak(&h)) && cancelled(quiet(&h)), "{case}");
            }
            "rollback" => {
                h.apply(Event::RollbackStarted(payload::RollbackStarted { by: "op".into(), reason: "bad build".into(), to: None }))
                    .expect("rollback");
                assert!(cancelled(soak(&h)) && cancelled(quiet(&h)), "{case}");
            }
            "p0" | "p1 approved" | "p1 timed out" => {
                let severity = if case == "p0" { "P0" } else { "P1" };
                h.incident(severity);
                if case == "p1 approved" {
                    assert!(matches!(soak(&h), TaskStatus::Waiting { .. }), "a trigger's halt leaves the wait in place");
                    h.decide_as("alice", DecisionKind::Approve, "p1").expect("approve the rollback");
                } else if case == "p1 timed out" {
                    h.settle(16 * MINUTE);
                    assert!(h.kinds().iter().any(|k| k == "TriggerTimedOut(p1)"), "{case}: {:?}", h.kinds());
                }
                assert!(cancelled(soak(&h)) && cancelled(quiet(&h)), "{case}: {:?}", h.kinds());
            }
            other => panic!("unknown case {other}"),
        }
        h.settle(0);
        check(&h).unwrap_or_else(|e| panic!("{case}: {e}"));
        h.assert_replays();
    }
}

#[test]
pub(super) fn a_deadline_acts_once_with_its_declared_outcome() {
    let deadline = |outcome: &str| format!("deadline = {{ after = \"1h\", outcome = \"{outcome}\" }}");

    // A deadline that passes during a wait: the wait stops and the phase fails.
    let mut h = waits(&deadline("fail"), "");
    h.hold.push("deploy".into());
    h.settle(0);
    let started = h.instance.phases[1].started_at.expect("ship started");
    h.now = Timestamp(started.0 + 55 * MINUTE);
    h.apply(Event::TaskSucceeded(payload::TaskSucceeded {
        phase: "ship".into(),
        task: "deploy".into(),
        attempt: 1,
        output: json!({}),
        duration_ms: 1,
    }))
    .expect("deploy finishes late");
    h.settle(0);
    assert!(matches!(soak(&h), TaskStatus::Waiting { .. }));
    assert_eq!(decide(&h.instance, &h.workflow, h.now).wake_at, Some(started.after(std::time::Duration::from_secs(3600))));
    h.settle(10 * MINUTE);
    assert!(h.kinds().iter().any(|k| k == "DeadlinePassed(ship: fail)"), "{:?}", h.kinds());
    assert!(matches!(soak(&h), TaskStatus::Cancelled { .. }));
    assert_eq!(h.instance.status.kind(), "failed");
    let InstanceStatus::Failed { reason, .. } = &h.instance.status else { unreachable!() };
    assert!(reason.contains("phase ship's deadline of 1h passed"), "{reason}");
    h.assert_replays();

    // At its gate: the open decision fails with the phase; `retry --phase` restarts its clock.
    let mut h = waits(&deadline("fail"), "");
    h.settle(11 * MINUTE);
    assert_eq!(h.instance.phases[1].status.kind(), "awaiting_approval", "{:?}", h.kinds());
    h.settle(60 * MINUTE);
    assert_eq!((h.instance.phases[1].gates[0].status.kind(), h.instance.status.kind()), ("failed", "failed"), "{:?}", h.kinds());
    h.apply(Event::Redriven(payload::Redriven { by: "alice".into(), tasks: Vec::new(), phase: Some("ship".into()) })).expect("retry");
    assert_eq!(h.instance.phases[1].started_at, Some(h.now), "the redrive restarts the deadline");
    h.settle(0);
    assert!(matches!(soak(&h), TaskStatus::Waiting { attempt: 2, .. }), "the wait runs again: {:?}", h.kinds());
    h.assert_replays();

    // On hold for remediation: the deadline still acts.
    let mut h = waits(&deadline("fail"), "");
    h.settle(11 * MINUTE);
    decide_go(&mut h, DecisionKind::Hold).expect("hold");
    assert_eq!(h.instance.phases[1].status.kind(), "on_hold");
    h.settle(60 * MINUTE);
    assert_eq!((h.instance.phases[1].gates[0].status.kind(), h.instance.phases[1].status.kind()), ("failed", "failed"));
    h.assert_replays();

    // Halt: a person decides; resuming does not halt again.
    let mut h = waits(&deadline("halt"), "");
    h.settle(11 * MINUTE);
    h.settle(60 * MINUTE);
    let InstanceStatus::Halted { by, reason, .. } = &h.instance.status else { panic!("halted: {:?}", h.kinds()) };
    assert!(by == "phasegate" && reason.contains("`phasegate resume i` lets it go on"), "{by}: {reason}");
    h.apply(Event::Resumed(payload::Resumed { by: "op".into() })).expect("resume");
    h.settle(0);
    assert_eq!(h.instance.phases[1].status.kind(), "awaiting_approval", "{:?}", h.kinds());
    assert_eq!(h.kinds().iter().filter(|k| k.starts_with("DeadlinePassed")).count(), 1);
    decide_go(&mut h, DecisionKind::Approve).expect("approve");
    h.settle(20 * MINUTE);
    assert_eq!(h.instance.status.kind(), "completed", "{:?}", h.kinds());
    h.assert_replays();

    // Rollback: completed work is compensated and the instance ends rolled back.
    let mut h = waits(&deadline("rollback"), "");
    h.settle(11 * MINUTE);
    h.settle(60 * MINUTE);
    assert_eq!(h.instance.status.kind(), "rolled_back", "{:?}", h.kinds());
    assert!(h.kinds().iter().any(|k| k == "CompensationSucceeded(uncompile#1)"), "{:?}", h.kinds());
    assert_eq!(h.instance.rollback.as_ref().map(|r| r.by.as_str()), Some("deadline:ship"));
    h.assert_replays();

    // The instance's own deadline fails every active phase.
    let mut h = waits("", "deadline = { after = \"2h\", outcome = \"fail\" }");
    h.settle(21 * MINUTE);
    assert_eq!(h.instance.phases[2].status.kind(), "passed", "{:?}", h.kinds());
    h.settle(120 * MINUTE);
    assert!(h.kinds().iter().any(|k| k == "DeadlinePassed(instance: fail)"), "{:?}", h.kinds());
    assert_eq!((h.instance.phases[1].status.kind(), h.instance.status.kind()), ("failed", "failed"));
    assert!(h.instance.deadline_passed);
    h.assert_replays();
}

#[test]
fn a_deadline_event_that_does_not_fit_is_refused() {
    let mut h = waits("deadline = { after = \"1h\", outcome = \"halt\" }", "");
    h.settle(0);
    let passed = |phase: Option<&str>, outcome: crate::model::DeadlineOutcome| {
        Event::DeadlinePassed(payload::DeadlinePassed { phase: phase.map(str::to_owned), outcome, reason: "r".into() })
    };
    let refused = |h: &mut Harness, event: Event| h.apply(event).expect_err("refused").to_string();
    use crate::model::DeadlineOutcome::{Fail, Halt};
    assert!(refused(&mut h, passed(Some("ship"), Halt)).contains("has not passed"));
    h.now = Timestamp(h.now.0 + 61 * MINUTE);
    assert!(refused(&mut h, passed(Some("ship"), Fail)).contains("has outcome halt"));
    assert!(refused(&mut h, passed(Some("docs"), Halt)).contains("has no deadline"));
    assert!(refused(&mut h, passed(None, Halt)).contains("the instance has no deadline"));
    assert!(refused(&mut h, passed(Some("build"), Halt)).contains("phase build is passed"));
    h.apply(passed(Some("ship"), Halt)).expect("due and declared");
    h.apply(Event::Resumed(payload::Resumed { by: "op".into() })).expect("resume");
    assert!(refused(&mut h, passed(Some("ship"), Halt)).contains("already acted"));
}

#[test]
fn waits_and_deadlines_are_checked_at_validate() {
    let check = |toml: String| {
        plan::load_source(&Source::from_text(&toml, Format::Toml), &AgentNames::builtin()).map(|_| ()).map_err(|d| d.to_string())
    };
    let with = |vars: &str, deadline: &str, task: &str| {
        format!(
            "name = \"x\"\n[vars]\n{vars}\n[[phases]]\nid = \"launch\"\n{deadline}\n[[phases.tasks]]\nid = \"soak\"\nagent = \"wait\"\n{task}\n"
        )
    };
    assert_eq!(check(with("", "deadline = { after = \"2h\" }", "params = { duration = \"90m\" }")), Ok(()));
    assert_eq!(
        check(with(
            "soak = { type = \"duration\", default = \"1h\" }",
            "deadline = { after = \"2h\" }",
            "params = { duration = \"{{ vars.soak }}\" }"
        )),
        Ok(())
    );
    let cases = [
        (
            with("", "deadline = { after = \"1h\" }", "params = { duration = \"2h\" }"),
            "task `soak` waits 2h, longer than phase `launch`'s deadline of 1h",
        ),
        (
            with(
                "soak = { type = \"duration\", default = \"3h\" }",
                "deadline = { after = \"1h\", outcome = \"halt\" }",
                "params = { duration = \"{{ vars.soak }}\" }",
            ),
            "the deadline would act (halt) before the wait ends",
        ),
        (
            with("", "", "params = { duration = \"2h\" }").replace("name = \"x\"\n", "name = \"x\"\ndeadline = { after = \"1h\" }\n"),
            "longer than the instance's deadline",
        ),
        (with("", "", ""), "does not say how long it waits"),
        (with("", "", "params = { duration = 30 }"), "a wait's duration is not a string"),
        (with("", "", "params = { duration = \"30m\", argv = [\"sleep\"] }"), "a wait task takes only `duration`, not `argv`"),
        (with("", "", "params = { duration = \"30m\" }\nretry = { max_attempts = 2 }"), "a wait task has no `retry`"),
        (with("", "", "params = { duration = \"30m\" }\ntimeout = \"1h\""), "a wait task has no `timeout`"),
        (with("", "", "params = { duration = \"soon\" }"), "invalid duration `soon`"),
        (with("", "", "params = { duration = \"{{ vars.nope }}\" }"), "unknown variable `nope`"),
        (with("", "deadline = { after = \"later\" }", "params = { duration = \"1m\" }"), "invalid duration `later`"),
        (with("", "deadline = { after = \"1h\", outcome = \"explode\" }", "params = { duration = \"1m\" }"), "explode"),
    ];
    for (toml, expected) in cases {
        let errors = check(toml.clone()).expect_err(&toml);
        assert!(errors.contains(expected), "{expected}:\n{errors}");
    }
}

/// A state where only the instance's status decides whether a wait or
/// deadline event is accepted (for the instance-level conformance test).
pub(super) fn ready_for(event: &str, status: &str) -> (Harness, Event) {
    let mut h = waits("deadline = { after = \"1h\", outcome = \"halt\" }", "");
    h.settle(0);
    let TaskStatus::Waiting { due, .. } = soak(&h).clone() else { panic!("soak waits: {:?}", h.kinds()) };
    let event = match event {
        "WaitStarted" => {
            let task = &mut h.instance.phases[1].tasks[2];
            task.status = TaskStatus::Pending;
            task.attempts = 0;
            Event::WaitStarted(payload::WaitStarted { phase: "ship".into(), task: "soak".into(), attempt: 1, due })
        }
        "WaitElapsed" => {
            h.now = due;
            wait_elapsed("soak", "ship", 1)
        }
        "DeadlinePassed" => {
            h.now = Timestamp(h.now.0 + 61 * MINUTE);
            Event::DeadlinePassed(payload::DeadlinePassed {
                phase: Some("ship".into()),
                outcome: crate::model::DeadlineOutcome::Halt,
                reason: "phase ship's deadline of 1h passed".into(),
            })
        }
        other => panic!("unknown event {other}"),
    };
    h.instance.status = status_named(status, h.now);
    (h, event)
}

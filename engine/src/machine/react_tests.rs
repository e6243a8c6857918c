//! Scenario tests of watches, triggers, rollbacks, loop-backs and schedules
//! on the pure machine: time is an argument, so minutes pass instantly.

use super::payload;
use serde_json::{json, Map, Value};

use super::gate;
use super::*;
use crate::model::{Format, Source};
use crate::plan::{self, AgentNames, Workflow};

const RELEASE: &str = r#"
name = "release"
[vars]
error_rate_max = 0.10
[signals.incident]
description = "an incident with a severity"

[[phases]]
id = "build"
owner = "role:dev"
[[phases.tasks]]
id = "compile"
agent = "noop"
rollback = { id = "uncompile", agent = "noop" }
[[phases.rollback]]
id = "announce"
agent = "noop"

[[phases]]
id = "ship"
after = ["build"]
owner = "role:sre"
[[phases.tasks]]
id = "deploy"
agent = "noop"
rollback = { id = "undeploy", agent = "noop", retry = { max_attempts = 2, initial = "1s", max = "1s" } }
[[phases.tasks]]
id = "soak"
agent = "noop"
depends_on = ["deploy"]
[[phases.tasks]]
id = "hotfix"
agent = "noop"
on_demand = true
[[phases.watches]]
id = "errors"
agent = "noop"
interval = "15s"
condition = "value > vars.error_rate_max"
for = "2m"
no_data = "inconclusive"
[[phases.triggers]]
id = "error-rate-rollback"
on = "errors"
action = "halt_for_approval"
approval = { approvers = ["alice"], timeout = "30m", on_timeout = "reject" }
then = "rollback"
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
approval = { approvers = ["role:sre"], timeout = "15m", on_timeout = "approve" }
then = "rollback"
[[phases.triggers]]
id = "p2"
on = "signal:incident"
when = "signals.incident.severity == 'P2'"
action = "run"
task = "hotfix"
[[phases.triggers]]
id = "redeploy"
on = "task_failed:deploy"
action = "goto"
phase = "build"
code = "LAUNCH-001"
reason = "Deploy failed: rebuild before trying again."
max_loops = 2

[[phases]]
id = "optimize"
after = ["ship"]
schedule = { every = "90d" }
[[phases.tasks]]
id = "tune"
agent = "noop"
"#;

fn workflow() -> Workflow {
    plan::load_source(&Source::from_text(RELEASE, Format::Toml), &AgentNames::builtin()).unwrap_or_else(|e| panic!("{e}"))
}

/// A machine-level harness: an instance, its log, a clock, and what each
/// task or compensation attempt returns.
struct Harness {
    workflow: Workflow,
    instance: Instance,
    records: Vec<Record>,
    now: Timestamp,
    /// Task or compensation ids whose attempts fail (permanently when mapped to false).
    failing: Map<String, Value>,
    /// Tasks whose attempts stay in flight until the test settles them.
    hold: Vec<String>,
    /// Every effect the machine asked for, in order.
    effects: Vec<Effect>,
    /// What each task's attempts return (default `{}`).
    outputs: Map<String, Value>,
    /// The outbox as the machine's write effects leave it.
    outbox: std::collections::BTreeSet<String>,
}

impl Harness {
    fn new() -> Self {
        let workflow = workflow();
        let event = Event::InstanceStarted(payload::InstanceStarted {
            workflow: "release".into(),
            definition_hash: "h".into(),
            vars: Map::new(),
            started_by: "bob".into(),
        });
        let instance = step::start("i", &workflow, &event, Timestamp(1_000)).expect("starts");
        let mut h = Self {
            workflow,
            instance,
            records: vec![Record::new(1, Timestamp(1_000), event)],
            now: Timestamp(1_000),
            failing: Map::new(),
            hold: Vec::new(),
            effects: Vec::new(),
            outputs: Map::new(),
            outbox: Default::default(),
        };
        h.instance.vars.insert("error_rate_max".into(), json!(0.1));
        h.records[0] = Record::new(
            1,
            Timestamp(1_000),
            Event::InstanceStarted(payload::InstanceStarted {
                workflow: "release".into(),
                definition_hash: "h".into(),
                vars: h.instance.vars.clone(),
                started_by: "bob".into(),
            }),
        );
        h
    }

    fn apply(&mut self, event: Event) -> Result<(), Rejected> {
        let before = self.instance.clone();
        match step(&mut self.instance, &self.workflow, &event, self.now) {
            Ok(effects) => {
                self.records.push(Record::new(self.records.len() as u64 + 1, self.now, event));
                self.instance.seq = self.records.len() as u64;
                // Writes first: they are in the event's batch, before anything is carried out.
                for effect in effects.iter().filter(|e| e.is_write()) {
                    match effect {
                        Effect::WriteOutbox { key, .. } => assert!(self.outbox.insert(key.clone()), "outbox entry {key} written twice"),
                        Effect::DeleteOutbox { key } => assert!(self.outbox.remove(key), "outbox entry {key} deleted but never written"),
                        _ => {}
                    }
                }
                for effect in effects {
                    self.effects.push(effect.clone());
                    self.carry_out(effect);
                }
                Ok(())
            }
            Err(rejected) => {
                assert_eq!(self.instance, before, "a rejected event changed the state");
                Err(rejected)
            }
        }
    }

    fn outcome(&self, id: &str) -> Result<(), bool> {
        match self.failing.get(id) {
            Some(Value::Bool(retryable)) => Err(*retryable),
            _ => Ok(()),
        }
    }

    fn carry_out(&mut self, effect: Effect) {
        match effect {
            Effect::Dispatch { phase, task, attempt, .. } => {
                let (phase_id, task_id) = (self.workflow.phases[phase].id.clone(), self.workflow.phases[phase].tasks[task].id.clone());
                if self.hold.contains(&task_id) {
                    return;
                }
                let event = match self.outcome(&task_id) {
                    Ok(()) => {
                        let output = self.outputs.get(&task_id).cloned().unwrap_or_else(|| json!({}));
                        Event::TaskSucceeded(payload::TaskSucceeded { phase: phase_id, task: task_id, attempt, output, duration_ms: 1 })
                    }
                    Err(retryable) => {
                        Event::TaskFailed(payload::TaskFailed { phase: phase_id, task: task_id, attempt, error: "boom".into(), retryable })
                    }
                };
                self.apply(event).expect("the result of a dispatched attempt");
            }
            Effect::Compensate { step, attempt, .. } => {
                let id = self.instance.rollback.as_ref().map(|r| r.steps[step].state.id.clone()).unwrap_or_default();
                let event = match self.outcome(&id) {
                    Ok(()) => Event::CompensationSucceeded(payload::CompensationSucceeded {
                        step,
                        id,
                        attempt,
                        output: json!({}),
                        duration_ms: 1,
                    }),
                    Err(retryable) => {
                        Event::CompensationFailed(payload::CompensationFailed { step, id, attempt, error: "undo failed".into(), retryable })
                    }
                };
                self.apply(event).expect("the result of a compensation");
            }
            Effect::Cancel { key, .. } => {
                if let Some((p, t, attempt, _)) = self.instance.in_flight().into_iter().find(|(.., k)| *k == key) {
                    let (phase, task) = (self.instance.phases[p].id.clone(), self.instance.phases[p].tasks[t].id.clone());
                    self.apply(Event::TaskCancelled(payload::TaskCancelled { phase, task, attempt, reason: "cancelled".into() }))
                        .expect("cancel");
                }
            }
            Effect::Notify { .. } | Effect::TriggerNotify { .. } => {}
            Effect::WriteOutbox { .. } | Effect::DeleteOutbox { .. } | Effect::WriteRequest { .. } | Effect::WriteBaseline { .. } => {}
        }
    }

    /// Applies what decide proposes until nothing is left; time moves to
    /// retries but not past `limit` milliseconds from now.
    fn settle(&mut self, limit: u64) {
        let end = self.now.0 + limit;
        for _ in 0..10_000 {
            let next = decide(&self.instance, &self.workflow, self.now);
            if next.events.is_empty() {
                match next.wake_at {
                    Some(wake) if wake.0 <= end => self.now = wake,
                    _ => return,
                }
                continue;
            }
            for event in next.events {
                let shown = event.describe();
                self.apply(event).unwrap_or_else(|r| panic!("decide proposed {shown}, refused: {r}"));
            }
        }
        panic!("did not settle");
    }

    /// Records a watch sample `seconds` after the previous moment.
    fn sample(&mut self, seconds: u64, value: Option<f64>) -> Result<(), Rejected> {
        self.now = Timestamp(self.now.0 + seconds * 1_000);
        let verdict = match value {
            Some(v) if v > 0.1 => SampleVerdict::Breach,
            Some(_) => SampleVerdict::Ok,
            None => SampleVerdict::NoData,
        };
        self.apply(Event::WatchSampled(payload::WatchSampled {
            phase: "ship".into(),
            watch: "errors".into(),
            value,
            verdict,
            detail: String::new(),
            unreachable: false,
        }))?;
        self.settle(0);
        Ok(())
    }

    /// Signals an incident of `severity` from the pager and settles.
    fn incident(&mut self, severity: &str) {
        self.apply(Event::SignalReceived(payload::SignalReceived {
            name: "incident".into(),
            data: json!({ "severity": severity }),
            by: "pager".into(),
        }))
        .expect("signal");
        self.settle(0);
    }

    fn kinds(&self) -> Vec<String> {
        self.records.iter().map(|r| r.event().describe()).collect()
    }

    fn decide_as(&mut self, who: &str, kind: DecisionKind, trigger: &str) -> Result<(), Rejected> {
        let level = match &self.instance.status {
            InstanceStatus::AwaitingDecision { approval, .. } => match &approval.status {
                GateStatus::AwaitingDecision { level, .. } => *level,
                _ => 0,
            },
            _ => 0,
        };
        let decision = Decision {
            kind,
            principal: who.into(),
            auth: crate::machine::Authentication::Local,
            via: who.into(),
            comment: String::new(),
            request_id: String::new(),
            level,
            seen: Default::default(),
            inputs: Default::default(),
        };
        self.apply(Event::TriggerDecided(payload::TriggerDecided { phase: "ship".into(), trigger: trigger.into(), decision }))
    }

    fn assert_replays(&self) {
        let mut replayed = replay("i", &self.workflow, &self.records).unwrap_or_else(|r| panic!("replay: {r}"));
        replayed.seq = self.instance.seq;
        assert_eq!(replayed, self.instance, "replay rebuilds the state");
    }
}

/// Runs build and starts ship, keeping `soak` in flight so ship stays active.
fn shipping() -> Harness {
    let mut h = Harness::new();
    h.hold.push("soak".into());
    h.settle(0);
    assert_eq!(h.instance.phases[1].status.kind(), "running", "{:?}", h.kinds());
    h
}

#[test]
fn a_sustained_breach_fires_the_watch_halts_and_approval_rolls_back_in_reverse_order() {
    let mut h = shipping();
    h.sample(0, Some(0.01)).expect("sample");
    // Breaching from t=15s: one healthy sample in between resets the clock.
    h.sample(15, Some(0.2)).expect("sample");
    h.sample(60, Some(0.2)).expect("sample");
    h.sample(15, Some(0.05)).expect("sample");
    assert!(!h.instance.phases[1].watches[0].firing);
    h.sample(15, Some(0.3)).expect("sample");
    h.sample(60, Some(0.3)).expect("sample");
    assert_eq!(h.instance.status.kind(), "running", "1 min of breach is not 2");
    h.sample(60, Some(0.3)).expect("sample");
    assert_eq!(h.instance.status.kind(), "awaiting_decision", "{:?}", h.kinds());
    assert!(h.instance.phases[1].watches[0].firing);
    // Only the named approver decides; bob is refused by the runtime, and
    // the machine refuses a decision at the wrong level.
    h.decide_as("alice", DecisionKind::Approve, "error-rate-rollback").expect("alice approves");
    h.settle(60_000);
    assert_eq!(h.instance.status.kind(), "rolled_back", "{:?}", h.kinds());
    let compensations: Vec<String> = h.kinds().into_iter().filter(|k| k.starts_with("CompensationSucceeded")).collect();
    // Reverse completion order: deploy (latest), then compile, then build's
    // own step (recorded when build started).
    assert_eq!(
        compensations,
        ["CompensationSucceeded(undeploy#1)", "CompensationSucceeded(uncompile#1)", "CompensationSucceeded(announce#1)"]
    );
    assert!(h.kinds().iter().any(|k| k == "TaskCancelled(soak#1)"), "the attempt in flight was cancelled first");
    h.assert_replays();
}

#[test]
fn missing_data_for_the_sustain_period_halts_for_a_person() {
    let mut h = shipping();
    h.sample(0, None).expect("sample");
    assert_eq!(h.instance.status.kind(), "running");
    h.sample(60, None).expect("sample");
    h.sample(60, None).expect("sample");
    match &h.instance.status {
        InstanceStatus::Halted { by, reason, .. } => {
            assert_eq!(by, "phasegate");
            assert!(reason.contains("no_data = inconclusive"), "{reason}");
        }
        other => panic!("expected halted, got {other:?}"),
    }
    // While halted, samples are refused and change nothing.
    assert!(h.sample(15, Some(0.5)).is_err());
    h.assert_replays();
}

#[test]
fn the_incident_decision_tree_p0_p1_p2() {
    // P2: a hotfix task runs; no rollback.
    let mut h = shipping();
    h.incident("P2");
    assert!(matches!(h.instance.phases[1].tasks[2].status, TaskStatus::Succeeded { .. }), "{:?}", h.kinds());
    assert_eq!(h.instance.status.kind(), "running");
    let skipped = h.kinds().iter().filter(|k| k.starts_with("TriggerSkipped")).count();
    assert_eq!(skipped, 2, "p0 and p1 did not act: {:?}", h.kinds());

    // P1: halts; with no decision, the 15-minute deadline approves the rollback.
    let mut h = shipping();
    h.incident("P1");
    assert_eq!(h.instance.status.kind(), "awaiting_decision");
    h.now = Timestamp(h.now.0 + 14 * 60_000);
    h.settle(0);
    assert_eq!(h.instance.status.kind(), "awaiting_decision", "not before 15 minutes");
    h.now = Timestamp(h.now.0 + 60_000);
    h.settle(60_000);
    assert_eq!(h.instance.status.kind(), "rolled_back", "{:?}", h.kinds());
    assert!(h.kinds().iter().any(|k| k == "TriggerTimedOut(p1)"));

    // P1 held by a person: the deadline no longer applies, nothing rolls back.
    let mut h = shipping();
    h.incident("P1");
    // Only a principal holding the role decides; that is the runtime's
    // check (tested with the engine); the machine records who decided.
    h.decide_as("carol", DecisionKind::Hold, "p1").expect("hold");
    h.now = Timestamp(h.now.0 + 60 * 60_000);
    h.settle(0);

    assert_eq!(h.instance.status.kind(), "awaiting_decision", "held: {:?}", h.kinds());
    h.decide_as("carol", DecisionKind::Reject, "p1").expect("reject");
    assert_eq!(h.instance.status.kind(), "running");
    h.assert_replays();

    // P0: rolls back at once.
    let mut h = shipping();
    h.apply(Event::SignalReceived(payload::SignalReceived {
        name: "incident".into(),
        data: json!({"severity": "P0"}),
        by: "pager".into(),
    }))
    .expect("signal");
    h.settle(60_000);
    assert_eq!(h.instance.status.kind(), "rolled_back", "{:?}", h.kinds());
    assert!(!h.kinds().iter().any(|k| k.starts_with("TriggerDecided")), "no person was asked");
    h.assert_replays();
}

#[test]
fn a_failed_deploy_loops_back_with_its_code_until_max_loops() {
    let mut h = Harness::new();
    h.failing.insert("deploy".into(), json!(false));
    h.settle(0);
    let kinds = h.kinds();
    let loops = kinds.iter().filter(|k| *k == "TriggerFired(redeploy)").count();
    assert_eq!(loops, 3, "two loop-backs, then the third occurrence fails: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| k.starts_with("PhaseStarted(build#")).count(), 3, "{kinds:?}");
    assert_eq!(h.instance.phases[0].loops, 2);
    let entered = h.instance.phases[0].entered.clone().unwrap_or_default();
    assert!(entered.contains("LAUNCH-001") && entered.contains("rebuild before trying again"), "{entered}");
    assert_eq!(h.instance.status.kind(), "failed");
    match &h.instance.phases[1].status {
        PhaseStatus::Failed { reason, .. } => assert!(reason.contains("max_loops = 2"), "{reason}"),
        other => panic!("ship should have failed: {other:?}"),
    }
    h.assert_replays();
}

#[test]
fn a_scheduled_phase_runs_again_as_a_new_cycle() {
    let mut h = Harness::new();
    h.settle(0);
    assert_eq!(h.instance.effective_status(), EffectiveStatus::Scheduled);
    assert!(!h.instance.is_active(&h.workflow));
    let due = h.instance.phases[2].next_cycle.expect("next cycle");
    assert_eq!(due.since(h.now), 90 * 24 * 3_600_000);
    assert_eq!(decide(&h.instance, &h.workflow, h.now).wake_at, Some(due));
    h.now = due;
    h.settle(0);
    assert_eq!(h.instance.phases[2].attempt, 2);
    assert_eq!(h.instance.phases[2].entered.as_deref(), Some("scheduled cycle 2"));
    assert_eq!(h.instance.effective_status(), EffectiveStatus::Scheduled);
    assert!(h.apply(Event::InstanceCompleted).is_err(), "a scheduled instance does not complete");
    h.assert_replays();
}

#[test]
fn a_failing_compensation_halts_and_resume_goes_on_without_repeating_finished_ones() {
    let mut h = shipping();
    h.failing.insert("uncompile".into(), json!(true));
    h.apply(Event::RollbackStarted(payload::RollbackStarted { by: "op".into(), reason: "bad release".into(), to: None }))
        .expect("rollback");
    h.settle(60_000);
    assert_eq!(h.instance.status.kind(), "halted", "{:?}", h.kinds());
    match &h.instance.status {
        InstanceStatus::Halted { reason, .. } => assert!(reason.contains("compensation uncompile"), "{reason}"),
        other => panic!("{other:?}"),
    }
    h.failing.clear();
    h.apply(Event::Resumed(payload::Resumed { by: "op".into() })).expect("resume");
    h.settle(60_000);
    assert_eq!(h.instance.status.kind(), "rolled_back");
    let undeploys = h.kinds().iter().filter(|k| k.starts_with("CompensationDispatched(undeploy")).count();
    assert_eq!(undeploys, 1, "finished compensations are not repeated: {:?}", h.kinds());
    h.assert_replays();
}

#[test]
fn rollback_to_a_phase_compensates_from_it_and_runs_it_again() {
    let mut h = shipping();
    h.apply(Event::RollbackStarted(payload::RollbackStarted { by: "op".into(), reason: "redo ship".into(), to: Some("ship".into()) }))
        .expect("rollback");
    h.hold.clear();
    h.settle(60_000);
    let kinds = h.kinds();
    assert!(kinds.iter().any(|k| k == "CompensationSucceeded(undeploy#1)"));
    assert!(!kinds.iter().any(|k| k.contains("uncompile")), "build is upstream of the target: {kinds:?}");
    assert_eq!(h.instance.phases[1].attempt, 2);
    assert!(h.instance.phases[1].entered.as_deref().is_some_and(|e| e.contains("redo ship")));
    h.assert_replays();
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    // Nothing has run yet: nothing to compensate.
    let refused = h
        .apply(Event::RollbackStarted(payload::RollbackStarted { by: "op".into(), reason: String::new(), to: None }))
        .expect_err("nothing to compensate");
    assert!(refused.to_string().contains("nothing to compensate"), "{refused}");
    h.settle(0);
    // A signal to a finished (scheduled-then-cancelled) instance is refused.
    h.apply(Event::Cancelled(payload::Cancelled { by: "op".into(), reason: String::new() })).expect("cancel");
    let refused = h
        .apply(Event::SignalReceived(payload::SignalReceived {
            name: "incident".into(),
            data: json!({"severity": "P0"}),
            by: "pager".into(),
        }))
        .expect_err("finished");
    assert!(refused.to_string().contains("is cancelled"), "{refused}");
    let refused = h
        .apply(Event::RollbackStarted(payload::RollbackStarted { by: "op".into(), reason: String::new(), to: None }))
        .expect_err("finished");
    assert!(refused.to_string().contains("is cancelled"), "{refused}");
    // Rolling back to a phase that never ran is refused.
    let mut h = Harness::new();
    h.hold.push("deploy".into());
    h.settle(0);
    let refused = h
        .apply(Event::RollbackStarted(payload::RollbackStarted { by: "op".into(), reason: String::new(), to: Some("optimize".into()) }))
        .expect_err("never ran");
    assert!(refused.to_string().contains("has not started"), "{refused}");
}

const STATUSES: &[&str] = &["running", "halted", "completed", "failed", "cancelled", "awaiting_decision", "rolling_back", "rolled_back"];

const INSTANCE_EVENTS: &[&str] = &[
    "WatchSampled",
    "WatchInconclusive",
    "TriggerFired",
    "TriggerSkipped",
    "TriggerDecided",
    "TriggerTimedOut",
    "RollbackStarted",
    "CompensationDispatched",
    "CompensationSucceeded",
    "CompensationFailed",
    "CompensationRetryScheduled",
    "RollbackCompleted",
    "ScheduleFired",
    "Halted",
    "Resumed",
    "Cancelled",
    "SignalReceived",
    "InstanceCompleted",
    "InstanceFailed",
    "BaselinesLoaded",
    "WaitStarted",
    "WaitElapsed",
    "DeadlinePassed",
];

fn status_named(kind: &str, at: Timestamp) -> InstanceStatus {
    match kind {
        "running" => InstanceStatus::Running,
        "halted" => InstanceStatus::Halted { by: "x".into(), reason: String::new(), cancel_running: false, at },
        "completed" => InstanceStatus::Completed { at },
        "failed" => InstanceStatus::Failed { reason: "r".into(), at },
        "cancelled" => InstanceStatus::Cancelled { by: "x".into(), reason: String::new(), at },
        "awaiting_decision" => {
            let mut approval = GateState::new("p1");
            approval.status = GateStatus::AwaitingDecision { since: at, level: 0, deadline: Some(at), approvals: Vec::new() };
            InstanceStatus::AwaitingDecision { phase: "ship".into(), trigger: "p1".into(), cause: "c".into(), since: at, approval }
        }
        "rolling_back" => InstanceStatus::RollingBack { since: at },
        "rolled_back" => InstanceStatus::RolledBack { reason: "r".into(), at },
        other => panic!("unknown status {other}"),
    }
}

/// A state where only the instance's status decides whether `event` is
/// accepted: everything else the event needs is in place.
fn ready_for(event: &str, status: &str) -> (Harness, Event) {
    if matches!(event, "WaitStarted" | "WaitElapsed" | "DeadlinePassed") {
        return waits::ready_for(event, status);
    }
    let mut h = if event == "BaselinesLoaded" { Harness::new() } else { shipping() };
    let at = h.now;
    // No attempt in flight: compensations wait for those.
    let soak = &mut h.instance.phases[1].tasks[1];
    soak.status = TaskStatus::Succeeded { attempt: 1, output: json!({}), duration_ms: 1, at };
    let step_id = "undeploy".to_owned();
    let plan_steps = rollback_plan(&h.instance, &h.workflow, None);
    let with_rollback = |h: &mut Harness, status: TaskStatus, attempts: u32| {
        let mut steps = plan_steps.clone();
        steps[0].state.status = status;
        steps[0].state.attempts = attempts;
        h.instance.rollback = Some(Rollback { by: "op".into(), reason: "r".into(), to: None, started_at: at, steps });
    };
    let event = match event {
        "WatchSampled" => Event::WatchSampled(payload::WatchSampled {
            phase: "ship".into(),
            watch: "errors".into(),
            value: Some(0.01),
            verdict: SampleVerdict::Ok,
            detail: String::new(),
            unreachable: false,
        }),
        "WatchInconclusive" => {
            h.instance.phases[1].watches[0].no_data_reason = Some("no data".into());
            Event::WatchInconclusive(payload::WatchInconclusive { phase: "ship".into(), watch: "errors".into(), reason: "no data".into() })
        }
        "TriggerFired" | "TriggerSkipped" => {
            let trigger = if status == "awaiting_decision" { "p0" } else { "error-rate-rollback" };
            h.instance.pending_triggers.push(PendingTrigger { phase: "ship".into(), trigger: trigger.into(), cause: "c".into() });
            if event == "TriggerFired" {
                Event::TriggerFired(payload::TriggerFired { phase: "ship".into(), trigger: trigger.into(), cause: "c".into() })
            } else {
                Event::TriggerSkipped(payload::TriggerSkipped { phase: "ship".into(), trigger: trigger.into(), reason: "r".into() })
            }
        }
        "TriggerDecided" => Event::TriggerDecided(payload::TriggerDecided {
            phase: "ship".into(),
            trigger: "p1".into(),
            decision: Decision {
                kind: DecisionKind::Approve,
                principal: "carol".into(),
                auth: crate::machine::Authentication::Local,
                via: "role:sre".into(),
                comment: String::new(),
                request_id: String::new(),
                level: 0,
                seen: Default::default(),
                inputs: Default::default(),
            },
        }),
        "TriggerTimedOut" => Event::TriggerTimedOut(payload::TriggerTimedOut {
            phase: "ship".into(),
            trigger: "p1".into(),
            level: 0,
            action: crate::model::OnTimeout::Approve,
        }),
        "RollbackStarted" => Event::RollbackStarted(payload::RollbackStarted { by: "op".into(), reason: "r".into(), to: None }),
        "CompensationDispatched" => {
            with_rollback(&mut h, TaskStatus::Pending, 0);
            Event::CompensationDispatched(payload::CompensationDispatched { step: 0, id: step_id, attempt: 1, key: "k".into() })
        }
        "CompensationSucceeded" | "CompensationFailed" => {
            with_rollback(&mut h, TaskStatus::Dispatched { attempt: 1, key: "k".into(), at }, 1);
            if event == "CompensationSucceeded" {
                Event::CompensationSucceeded(payload::CompensationSucceeded {
                    step: 0,
                    id: step_id,
                    attempt: 1,
                    output: json!({}),
                    duration_ms: 1,
                })
            } else {
                Event::CompensationFailed(payload::CompensationFailed {
                    step: 0,
                    id: step_id,
                    attempt: 1,
                    error: "e".into(),
                    retryable: true,
                })
            }
        }
        "CompensationRetryScheduled" => {
            with_rollback(&mut h, TaskStatus::Failed { attempt: 1, error: "e".into(), retryable: true, at }, 1);
            Event::CompensationRetryScheduled(payload::CompensationRetryScheduled { step: 0, id: step_id, attempt: 2, due: at })
        }
        "RollbackCompleted" => {
            let mut steps = plan_steps.clone();
            for step in &mut steps {
                step.state.attempts = 1;
                step.state.status = TaskStatus::Succeeded { attempt: 1, output: json!({}), duration_ms: 1, at };
            }
            h.instance.rollback = Some(Rollback { by: "op".into(), reason: "r".into(), to: None, started_at: at, steps });
            Event::RollbackCompleted
        }
        "ScheduleFired" | "InstanceCompleted" => {
            for phase in &mut h.instance.phases {
                phase.attempt = 1;
                phase.status = PhaseStatus::Passed { at };
                for task in &mut phase.tasks {
                    task.status = TaskStatus::Succeeded { attempt: 1, output: json!({}), duration_ms: 1, at };
                    task.attempts = 1;
                }
            }
            if event == "ScheduleFired" {
                h.instance.phases[2].next_cycle = Some(at);
                Event::ScheduleFired(payload::ScheduleFired { phase: "optimize".into() })
            } else {
                Event::InstanceCompleted
            }
        }
        "InstanceFailed" => {
            h.instance.phases[1].status = PhaseStatus::Failed { reason: "r".into(), at };
            Event::InstanceFailed(payload::InstanceFailed { reason: "r".into() })
        }
        "Halted" => Event::Halted(payload::Halted { by: "x".into(), reason: String::new(), cancel_running: false }),
        "Resumed" => Event::Resumed(payload::Resumed { by: "x".into() }),
        "Cancelled" => Event::Cancelled(payload::Cancelled { by: "x".into(), reason: String::new() }),
        "SignalReceived" => {
            Event::SignalReceived(payload::SignalReceived { name: "incident".into(), data: json!({"severity": "P3"}), by: "x".into() })
        }
        "BaselinesLoaded" => Event::BaselinesLoaded(payload::BaselinesLoaded {
            baselines: [("ship/none".to_owned(), Baseline { instance: "earlier".into(), at, evidence: json!({}) })].into_iter().collect(),
        }),
        other => panic!("unknown event {other}"),
    };
    h.instance.status = status_named(status, at);
    (h, event)
}

/// Every instance-level event against every instance status, on a workflow
/// with watches, triggers, compensations and a schedule: `step` accepts
/// exactly what the table declares, lands where it says, and a refusal
/// changes nothing.
#[test]
fn step_accepts_exactly_the_declared_instance_transitions() {
    use super::table::{self, Level};
    for &status in STATUSES {
        for &name in INSTANCE_EVENTS {
            let (mut h, event) = ready_for(name, status);
            let declared: Vec<&str> =
                table::of(Level::Instance).filter(|t| t.from.name() == status && t.event.name() == name).map(|t| t.to.name()).collect();
            let before = h.instance.clone();
            if matches!(name, "CompensationSucceeded" | "CompensationFailed") {
                // Like task results: the work happened, so the log records it whatever the status.
                step(&mut h.instance, &h.workflow, &event, h.now).unwrap_or_else(|r| panic!("{status} refused {name}: {r}"));
                assert_eq!(h.instance.status.kind(), status);
                continue;
            }
            match step(&mut h.instance, &h.workflow, &event, h.now) {
                Ok(_) if declared.contains(&h.instance.status.kind()) => {
                    mark_taken(Level::Instance, status, name, h.instance.status.kind());
                }
                Ok(_) => panic!("{status} accepted {name} (→ {}) but the table declares {declared:?}", h.instance.status.kind()),
                Err(rejected) if !declared.is_empty() => {
                    panic!("the table declares {status} --{name}--> {declared:?} but step refused: {rejected}")
                }
                Err(_) => assert_eq!(h.instance, before, "a rejected {name} changed the state"),
            }
        }
    }
}

/// Marks a row a conformance test saw taken (self-loops included, which the
/// table check in `step` does not see).
pub(super) fn mark_taken(level: super::table::Level, from: &str, event: &str, to: &str) {
    use super::table::{mark, state_named};
    let kind = <super::event::EventKind as strum::VariantArray>::VARIANTS.iter().copied().find(|k| k.name() == event);
    if let (Some(from), Some(kind), Some(to)) = (state_named(level, from), kind, state_named(level, to)) {
        mark(level, from, kind, to);
    }
}

/// Invariants of this part of the machine that hold in every reachable state.
fn check(h: &Harness) -> Result<(), String> {
    let instance = &h.instance;
    // The outbox the write effects leave holds exactly the attempts in flight.
    let mut in_flight: std::collections::BTreeSet<String> = instance.in_flight().into_iter().map(|(.., key)| key).collect();
    in_flight.extend(instance.compensation_in_flight().map(|(_, _, key)| key));
    if h.outbox != in_flight {
        return Err(format!("the outbox holds {:?} but {:?} are in flight", h.outbox, in_flight));
    }
    if let Some(rollback) = &instance.rollback {
        let mut open = false;
        for step in &rollback.steps {
            let started = !matches!(step.state.status, TaskStatus::Pending);
            if open && started {
                return Err(format!("compensation {} ran before an earlier one finished", step.state.id));
            }
            open |= !step.state.status.is_done();
        }
        if matches!(instance.status, InstanceStatus::RolledBack { .. }) && open {
            return Err("rolled back with a compensation not done".into());
        }
    }
    for (trigger, taken) in &instance.loops {
        if *taken > 2 {
            return Err(format!("trigger {trigger} looped {taken} times; max_loops = 2"));
        }
    }
    for (p, phase) in instance.phases.iter().enumerate() {
        if !matches!(phase.status, PhaseStatus::Pending)
            && h.workflow.phases[p].after.iter().any(|&u| !matches!(instance.phases[u].status, PhaseStatus::Passed { .. }))
        {
            return Err(format!("phase {} is {} before its upstream passed", phase.id, phase.status.kind()));
        }
        for watch in &phase.watches {
            if watch.samples.len() > WATCH_WINDOW {
                return Err(format!("watch {} keeps {} samples", watch.id, watch.samples.len()));
            }
        }
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..proptest::prelude::ProptestConfig::default() })]

    /// Random mixes of samples, signals, decisions, rollbacks, operator
    /// commands and failures, with decide filling in: every accepted event
    /// keeps the invariants, a refused one changes nothing (the harness
    /// asserts it), and replay rebuilds the state.
    #[test]
    fn random_reactions_keep_invariants_and_replay(
        script in proptest::collection::vec((0u8..12, 0u8..4, proptest::prelude::any::<bool>()), 1..80),
    ) {
        let mut h = Harness::new();
        for (what, which, flag) in script {
            h.now = Timestamp(h.now.0 + 20_000);
            if flag {
                h.failing.insert(["deploy", "undeploy", "uncompile", "soak"][which as usize].into(), json!(which % 2 == 0));
            } else {
                h.failing.clear();
            }
            let event = match what {
                0..=2 => {
                    let value = [Some(0.5), Some(0.01), None, Some(0.2)][which as usize];
                    let verdict = match value { Some(v) if v > 0.1 => SampleVerdict::Breach, Some(_) => SampleVerdict::Ok, None => SampleVerdict::NoData };
                    Event::WatchSampled(payload::WatchSampled { phase: "ship".into(), watch: "errors".into(), value, verdict, detail: String::new(), unreachable: false })
                }
                3 => {
                    let severity = ["P0", "P1", "P2", "P3"][which as usize];
                    Event::SignalReceived(payload::SignalReceived { name: "incident".into(), data: json!({ "severity": severity }), by: "pager".into() })
                }

                4 => Event::RollbackStarted(payload::RollbackStarted { by: "op".into(), reason: "r".into(), to: [None, Some("build".to_owned()), Some("ship".to_owned()), Some("optimize".to_owned())][which as usize].clone() }),
                5 => Event::Halted(payload::Halted { by: "op".into(), reason: String::new(), cancel_running: flag }),
                6 => Event::Resumed(payload::Resumed { by: "op".into() }),
                7 => {
                    let trigger = match &h.instance.status { InstanceStatus::AwaitingDecision { trigger, .. } => trigger.clone(), _ => "p1".to_owned() };
                    let kind = [DecisionKind::Approve, DecisionKind::Reject, DecisionKind::Hold, DecisionKind::Escalate][which as usize];
                    Event::TriggerDecided(payload::TriggerDecided { phase: "ship".into(), trigger, decision: Decision { kind, principal: "alice".into(), auth: crate::machine::Authentication::Local, via: String::new(), comment: String::new(), request_id: String::new(), level: 0, seen: Default::default(), inputs: Default::default() } })
                }
                8 => Event::Cancelled(payload::Cancelled { by: "op".into(), reason: String::new() }),
                _ => {
                    h.settle(if flag { 3_600_000 } else { 0 });
                    continue;
                }
            };
            if h.apply(event).is_ok() {
                if let Err(broken) = check(&h) {
                    proptest::prop_assert!(false, "{broken}\n{:?}", h.kinds());
                }
            }
            h.settle(0);
            if let Err(broken) = check(&h) {
                proptest::prop_assert!(false, "{broken}\n{:?}", h.kinds());
            }
        }
        let mut replayed = replay("i", &h.workflow, &h.records).map_err(|r| proptest::test_runner::TestCaseError::fail(r.to_string()))?;
        replayed.seq = h.instance.seq;
        proptest::prop_assert_eq!(replayed, h.instance);
    }
}

#[test]
fn a_rejected_gate_fires_gate_failed_triggers() {
    let toml = r#"
name = "gated"
[[phases]]
id = "harden"
[[phases.tasks]]
id = "e2e"
agent = "noop"
[[phases]]
id = "launch"
after = ["harden"]
[[phases.tasks]]
id = "smoke"
agent = "noop"
[[phases.gates]]
id = "smoke-ok"
approval = { approvers = ["alice"] }
[[phases.triggers]]
on = "gate_failed:smoke-ok"
action = "goto"
phase = "harden"
code = "LAUNCH-002"
reason = "Smoke tests failed: reproduce in staging."
"#;
    let workflow = plan::load_source(&Source::from_text(toml, Format::Toml), &AgentNames::builtin()).expect("valid");
    let mut h = Harness::new();
    h.workflow = workflow;
    let event = Event::InstanceStarted(payload::InstanceStarted {
        workflow: "gated".into(),
        definition_hash: "h".into(),
        vars: Map::new(),
        started_by: "bob".into(),
    });
    h.instance = step::start("i", &h.workflow, &event, h.now).expect("starts");
    h.records = vec![Record::new(1, h.now, event)];
    h.settle(0);
    assert_eq!(h.instance.phases[1].status.kind(), "awaiting_approval");
    let decision = Decision {
        kind: DecisionKind::Reject,
        principal: "alice".into(),
        auth: crate::machine::Authentication::Local,
        via: "alice".into(),
        comment: "502s".into(),
        request_id: String::new(),
        level: 0,
        seen: Default::default(),
        inputs: Default::default(),
    };
    h.apply(Event::DecisionRecorded(payload::DecisionRecorded { phase: "launch".into(), gate: "smoke-ok".into(), decision }))
        .expect("reject");
    h.settle(0);
    let kinds = h.kinds();
    assert!(kinds.iter().any(|k| k == "TriggerFired(launch-trigger-1)"), "{kinds:?}");
    assert!(!kinds.iter().any(|k| k.starts_with("PhaseFailed")), "the loop-back replaced the failure: {kinds:?}");
    assert_eq!(h.instance.phases[0].attempt, 2);
    assert!(h.instance.phases[0].entered.as_deref().is_some_and(|e| e.contains("LAUNCH-002")));
    assert_eq!(h.instance.phases[1].status.kind(), "awaiting_approval", "launch ran again up to its gate");
    h.assert_replays();
}

fn harness_for(toml: &str) -> Harness {
    let workflow = plan::load_source(&Source::from_text(toml, Format::Toml), &AgentNames::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let mut h = Harness::new();
    let event = Event::InstanceStarted(payload::InstanceStarted {
        workflow: workflow.name.clone(),
        definition_hash: "h".into(),
        vars: Map::new(),
        started_by: "bob".into(),
    });
    h.instance = step::start("i", &workflow, &event, h.now).expect("starts");
    h.records = vec![Record::new(1, h.now, event)];
    h.workflow = workflow;
    h
}

fn scored(bands: &str, must_fails: bool) -> Harness {
    let must = if must_fails { "tasks.bench.output.errors == 0" } else { "tasks.bench.output.errors >= 0" };
    let toml = format!(
        r#"
name = "scored"
[[phases]]
id = "perf"
owner = "olga"
[[phases.tasks]]
id = "bench"
agent = "noop"
[[phases.gates]]
id = "slo"
score = {bands}
criteria = [
  {{ id = "errors", must = "{must}", label = "No errors", weight = 2 }},
  {{ id = "latency", should = "tasks.bench.output.p95 <= 100", warning = "tasks.bench.output.p95 <= 150", label = "p95 ≤ 100 ms (≤ 150 warns)" }},
  {{ id = "throughput", should = "tasks.bench.output.rps >= 1000", label = "≥ 1000 rps" }},
]
"#
    );
    let mut h = harness_for(&toml);
    h.outputs.insert("bench".into(), json!({"errors": 1, "p95": 120, "rps": 500}));
    h.settle(0);
    h
}

fn slo_status(h: &Harness) -> (&'static str, Option<gate::Score>) {
    let gate = &h.instance.phases[0].gates[0];
    (gate.status.kind(), gate.evaluation.as_ref().and_then(|e| e.score))
}

#[test]
fn weighted_scores_fall_into_bands_and_a_failed_must_overrides_them() {
    // errors ≥ 0 passes (2 of 2), latency warns (0.5 of 1), throughput fails (0 of 1): 2.5 / 4 = 62.5 %.
    let h = scored("{ pass = 90, warning = 60 }", false);
    let (status, score) = slo_status(&h);
    let score = score.expect("scored");
    assert_eq!((score.points, score.total, score.percent), (2.5, 4.0, 62.5));
    assert_eq!(score.band, gate::Band::Warning);
    assert_eq!(status, "awaiting_decision", "the warning band halts for a person (the phase owner)");
    let latency = &h.instance.phases[0].gates[0].evaluation.as_ref().expect("evaluated").criteria[1];
    assert_eq!((latency.verdict, latency.points), (Verdict::Warning, 0.5));

    let h = scored("{ pass = 60, warning = 50 }", false);
    assert_eq!(slo_status(&h).0, "passed", "62.5 % is in the pass band");
    assert_eq!(h.instance.phases[0].status.kind(), "passed");

    let h = scored("{ pass = 90, warning = 70 }", false);
    assert_eq!(slo_status(&h).0, "failed", "62.5 % is below the warning band");
    match &h.instance.phases[0].gates[0].status {
        GateStatus::Failed { reason, .. } => assert!(reason.contains("score 62.5% is below the warning band (70%)"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // A failed must fails the gate whatever the score (here 50 % with pass at 10).
    let h = scored("{ pass = 10, warning = 0 }", true);
    assert_eq!(slo_status(&h).0, "failed");
    assert_eq!(slo_status(&h).1.map(|s| s.band), Some(gate::Band::Pass));
    h.assert_replays();
}

const CYCLES: &str = r#"
name = "cycles"
[[phases]]
id = "tune"
owner = "olga"
schedule = { every = "1d" }
[[phases.tasks]]
id = "bench"
agent = "noop"
[[phases.gates]]
id = "no-regression"
criteria = [
  { id = "p95", must = "pct_change(tasks.bench.output.p95, baseline.tasks.bench.output.p95) <= 0.10", label = "p95 within +10 % of the last passed cycle" },
]
"#;

fn decide_gate(h: &mut Harness, kind: DecisionKind) {
    decide_gate_of(h, "tune", "no-regression", kind);
}

fn next_cycle(h: &mut Harness, p95: u64) {
    h.outputs.insert("bench".into(), json!({ "p95": p95 }));
    h.now = h.instance.phases[0].next_cycle.expect("scheduled");
    h.settle(0);
}

#[test]
fn a_second_cycle_compares_with_the_first_and_a_missing_baseline_is_inconclusive() {
    let mut h = harness_for(CYCLES);
    h.outputs.insert("bench".into(), json!({"p95": 100}));
    h.settle(0);
    // Cycle 1: no baseline yet: inconclusive, so a person decides; never a silent pass.
    let gate = &h.instance.phases[0].gates[0];
    assert_eq!(gate.status.kind(), "awaiting_decision");
    assert_eq!(gate.evaluation.as_ref().map(|e| e.criteria[0].verdict), Some(Verdict::Inconclusive));
    decide_gate(&mut h, DecisionKind::Approve);
    let baseline = h.instance.baselines.get("tune/no-regression").expect("kept as the baseline");
    assert_eq!(baseline.evidence, json!({"tasks": {"bench": {"output": {"p95": 100}}}}));

    // Cycle 2: 105 is +5 %: passes on its own, and becomes the baseline.
    next_cycle(&mut h, 105);
    let evaluation = h.instance.phases[0].gates[0].evaluation.clone().expect("evaluated");
    assert_eq!(h.instance.phases[0].gates[0].status.kind(), "passed");
    assert_eq!(evaluation.criteria[0].values.get("baseline.tasks.bench.output.p95"), Some(&json!(100)));
    assert!((evaluation.criteria[0].deltas["tasks.bench.output.p95"] - 0.05).abs() < 1e-9);

    // Cycle 3: 130 against 105 is +24 %: the must fails.
    next_cycle(&mut h, 130);
    assert_eq!(h.instance.phases[0].gates[0].status.kind(), "failed");
    assert_eq!(h.instance.status.kind(), "failed");
    h.assert_replays();
}

#[test]
fn baselines_loaded_at_start_are_used_by_the_first_cycle() {
    let mut h = harness_for(CYCLES);
    let baseline =
        Baseline { instance: "earlier".into(), at: Timestamp(5), evidence: json!({"tasks": {"bench": {"output": {"p95": 200}}}}) };
    h.apply(Event::BaselinesLoaded(payload::BaselinesLoaded {
        baselines: [("tune/no-regression".to_owned(), baseline)].into_iter().collect(),
    }))
    .expect("loaded");
    h.outputs.insert("bench".into(), json!({"p95": 150}));
    h.settle(0);
    assert_eq!(h.instance.phases[0].gates[0].status.kind(), "passed", "-25 % against the earlier instance");
    assert_eq!(h.instance.baselines["tune/no-regression"].instance, "i", "this pass is now the baseline");
    h.assert_replays();
}

/// Regression (typed core issue): a loop-back that re-entered a phase with
/// an attempt in flight left that attempt's outbox entry behind (the driver
/// recomputed the delete key from the phase attempt after the batch, and the
/// cancelled attempt's result no longer applies). The machine now deletes the
/// entry by the key it was written under when it resets the task.
#[test]
fn regression_a_loop_back_with_an_attempt_in_flight_leaves_no_stale_outbox_entry() {
    let mut h = shipping();
    assert_eq!(h.outbox.len(), 1, "soak is in flight: {:?}", h.outbox);
    h.instance.pending_triggers.push(PendingTrigger { phase: "ship".into(), trigger: "redeploy".into(), cause: "deploy failed".into() });
    h.apply(Event::TriggerFired(payload::TriggerFired { phase: "ship".into(), trigger: "redeploy".into(), cause: "deploy failed".into() }))
        .expect("loops back");
    check(&h).unwrap_or_else(|e| panic!("{e}"));
    h.hold.clear();
    h.settle(0);
    check(&h).unwrap_or_else(|e| panic!("{e}"));
    assert!(h.outbox.iter().all(|key| h.instance.in_flight().iter().any(|(.., k)| k == key)), "{:?}", h.outbox);
}

/// The stored form of records and snapshots is version 1 of
/// `machine::Record` and `runtime::codec`'s snapshot, pinned by
/// `engine/tests/fixtures/stored-v1.json`: one record of every event kind
/// and a snapshot, as this format writes them. Everything in it must decode
/// with this build and encode back to the same JSON, so a renamed or removed
/// field fails here: keep V1 readable and add a V2 with a conversion instead.
/// `UPDATE_FIXTURES=1` rewrites the file (only when adding what it lacks).
#[test]
fn stored_records_and_snapshots_keep_their_version_1_form() {
    use crate::runtime::codec;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stored-v1.json");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let mut h = shipping();
        h.apply(Event::SignalReceived(payload::SignalReceived {
            name: "incident".into(),
            data: json!({"severity": "P1"}),
            by: "pager".into(),
        }))
        .expect("signal");
        h.settle(0);
        let mut events: Vec<Event> = h.records.iter().map(|r| r.event().clone()).collect();
        events.extend(super::tests::EVENTS.iter().map(|name| super::tests::event_named(name)));
        events.extend(INSTANCE_EVENTS.iter().map(|name| ready_for(name, "running").1));
        let records: Vec<Value> = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| {
                serde_json::from_slice(&codec::encode_record(&Record::new(i as u64 + 1, Timestamp(1_000 + i as u64), event))).expect("json")
            })
            .collect();
        let snapshot: Value = serde_json::from_slice(&codec::encode_snapshot(&h.instance)).expect("json");
        let text = serde_json::to_string_pretty(&json!({"records": records, "snapshot": snapshot})).expect("json");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("fixtures dir");
        std::fs::write(&path, text + "\n").expect("write the fixture");
    }
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("the fixture")).expect("json");
    let mut kinds = std::collections::BTreeSet::new();
    for stored in golden["records"].as_array().expect("records") {
        let bytes = serde_json::to_vec(stored).expect("json");
        let record =
            codec::decode_record("golden", 0, &bytes).unwrap_or_else(|e| panic!("a version-1 record no longer decodes: {e}\n{stored}"));
        let again: Value = serde_json::from_slice(&codec::encode_record(&record)).expect("json");
        assert_eq!(&again, stored, "a version-1 record encodes differently now");
        kinds.insert(super::event::EventKind::from(record.event()));
    }
    let every: std::collections::BTreeSet<_> = <super::event::EventKind as strum::VariantArray>::VARIANTS.iter().copied().collect();
    assert_eq!(kinds, every, "the fixture lacks an event kind: run with UPDATE_FIXTURES=1");
    let bytes = serde_json::to_vec(&golden["snapshot"]).expect("json");
    let instance = codec::decode_snapshot("golden", &bytes).unwrap_or_else(|e| panic!("a version-1 snapshot no longer decodes: {e}"));
    let again: Value = serde_json::from_slice(&codec::encode_snapshot(&instance)).expect("json");
    assert_eq!(again, golden["snapshot"], "a version-1 snapshot encodes differently now");
}

/// Every row the table declares is taken by some test of the machine: the
/// two conformance tests (every event against every state, at each level),
/// the scenarios, and the random mixes, run here with the table's recorder
/// on. A row nothing takes is either dead or untested; both are bugs.
#[test]
fn every_declared_transition_is_taken_by_some_test() {
    let taken = super::table::recording(|| {
        step_accepts_exactly_the_declared_instance_transitions();
        super::tests::step_accepts_exactly_the_declared_transitions();
        a_sustained_breach_fires_the_watch_halts_and_approval_rolls_back_in_reverse_order();
        missing_data_for_the_sustain_period_halts_for_a_person();
        the_incident_decision_tree_p0_p1_p2();
        a_failed_deploy_loops_back_with_its_code_until_max_loops();
        a_scheduled_phase_runs_again_as_a_new_cycle();
        a_failing_compensation_halts_and_resume_goes_on_without_repeating_finished_ones();
        rollback_to_a_phase_compensates_from_it_and_runs_it_again();
        a_rejected_gate_fires_gate_failed_triggers();
        weighted_scores_fall_into_bands_and_a_failed_must_overrides_them();
        a_second_cycle_compares_with_the_first_and_a_missing_baseline_is_inconclusive();
        baselines_loaded_at_start_are_used_by_the_first_cycle();
        regression_a_loop_back_with_an_attempt_in_flight_leaves_no_stale_outbox_entry();
        super::tests::scenarios();
        gate_quorum_escalation_deadlines_and_loop_backs_over_a_waiting_gate();
        a_trigger_halt_meets_other_triggers_and_each_deadline_answer();
        rollback_to_a_gated_phase_resets_its_passed_gate();
        a_failed_gate_is_held_for_remediation_and_its_phase_runs_again();
        regression_watches_keep_sampling_while_a_trigger_halt_waits();
        random_reactions_keep_invariants_and_replay();
        waits::a_wait_is_a_timer_in_the_state_that_replay_resumes_and_its_end_is_recorded();
        waits::whatever_stops_the_work_of_a_phase_cancels_its_waits();
        waits::a_deadline_acts_once_with_its_declared_outcome();
    });
    let missing: Vec<String> = super::table::TRANSITIONS
        .iter()
        .enumerate()
        .filter(|(row, _)| !taken.contains(row))
        .map(|(_, t)| format!("{:?}: {} --{}--> {} ({})", t.level, t.from.name(), t.event.name(), t.to.name(), t.guard))
        .collect();
    assert!(missing.is_empty(), "{} declared row(s) no test takes:\n{}", missing.len(), missing.join("\n"));
}

/// A gate's quorum, escalation and each deadline answer, and loop-backs
/// that re-enter a phase waiting at its gate or holding it.
#[test]
fn gate_quorum_escalation_deadlines_and_loop_backs_over_a_waiting_gate() {
    let gated = |on_timeout: &str| {
        format!(
            r#"
name = "approvals"
[signals.incident]
description = "an incident"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
[[phases.gates]]
id = "two-keys"
[phases.gates.approval]
approvers = ["alice", "dana", "erin"]
required = 2
timeout = "1h"
on_timeout = "{on_timeout}"
[[phases.gates.approval.escalation]]
approvers = ["cto"]
[[phases.triggers]]
id = "restart"
on = "signal:incident"
action = "goto"
phase = "build"
max_loops = 5
"#
        )
    };
    let decide_gate = |h: &mut Harness, who: &str, kind: DecisionKind, level: usize| {
        let decision = Decision {
            kind,
            principal: who.into(),
            auth: crate::machine::Authentication::Local,
            via: who.into(),
            comment: String::new(),
            request_id: String::new(),
            level,
            seen: Default::default(),
            inputs: Default::default(),
        };
        h.apply(Event::DecisionRecorded(payload::DecisionRecorded { phase: "build".into(), gate: "two-keys".into(), decision }))
    };
    let gate = |h: &Harness| h.instance.phases[0].gates[0].status.kind();
    let restart = |h: &mut Harness| {
        h.apply(Event::SignalReceived(payload::SignalReceived { name: "incident".into(), data: json!({}), by: "pager".into() }))
            .expect("signal");
        h.settle(0);
    };

    // One approval of two: both the gate and its phase keep waiting.
    let mut h = harness_for(&gated("escalate"));
    h.settle(0);
    decide_gate(&mut h, "alice", DecisionKind::Approve, 0).expect("first key");
    assert_eq!((gate(&h), h.instance.phases[0].status.kind()), ("awaiting_decision", "awaiting_approval"));
    // The deadline escalates; the CTO's level has no deadline.
    h.now = Timestamp(h.now.0 + 3_600_000);
    h.settle(0);
    assert!(matches!(h.instance.phases[0].gates[0].status, GateStatus::AwaitingDecision { level: 1, .. }), "{:?}", h.kinds());
    // A loop-back re-enters the waiting phase.
    restart(&mut h);
    assert_eq!(h.instance.phases[0].attempt, 2, "{:?}", h.kinds());
    h.assert_replays();

    // on_timeout = hold: the gate holds; a loop-back re-enters the held phase.
    let mut h = harness_for(&gated("hold"));
    h.settle(0);
    h.now = Timestamp(h.now.0 + 3_600_000);
    h.settle(0);
    assert_eq!((gate(&h), h.instance.phases[0].status.kind()), ("on_hold", "on_hold"));
    restart(&mut h);
    assert_eq!(h.instance.phases[0].attempt, 2, "{:?}", h.kinds());

    // on_timeout = approve: the deadline's answer passes it.
    let mut h = harness_for(&gated("approve"));
    h.settle(0);
    h.now = Timestamp(h.now.0 + 3_600_000);
    h.settle(0);
    assert_eq!(h.instance.status.kind(), "completed", "{:?}", h.kinds());
    h.assert_replays();
}

/// A trigger's halt: other triggers act while it waits (a loop-back ends
/// it, a `run` does not), and each deadline answer.
#[test]
fn a_trigger_halt_meets_other_triggers_and_each_deadline_answer() {
    let halting = |on_timeout: &str| {
        format!(
            r#"
name = "halts"
[signals.incident]
description = "an incident with a severity"
[[phases]]
id = "ship"
[[phases.tasks]]
id = "soak"
agent = "noop"
[[phases.tasks]]
id = "hotfix"
agent = "noop"
on_demand = true
[[phases.triggers]]
id = "p1"
on = "signal:incident"
when = "signals.incident.severity == 'P1'"
action = "halt_for_approval"
approval = {{ approvers = ["sre"], timeout = "10m", on_timeout = "{on_timeout}", escalation = [{{ approvers = ["cto"] }}] }}
then = "rollback"
[[phases.triggers]]
id = "p2"
on = "signal:incident"
when = "signals.incident.severity == 'P2'"
action = "run"
task = "hotfix"
[[phases.triggers]]
id = "p3"
on = "signal:incident"
when = "signals.incident.severity == 'P3'"
action = "goto"
phase = "ship"
"#
        )
    };
    let halted = |on_timeout: &str| {
        let mut h = harness_for(&halting(on_timeout));
        h.hold.push("soak".into());
        h.settle(0);
        h.incident("P1");
        assert_eq!(h.instance.status.kind(), "awaiting_decision", "{:?}", h.kinds());
        h
    };

    // A `run` while the halt waits: the hotfix is requested, the halt still
    // waits, and nothing is dispatched until it is decided.
    let mut h = halted("reject");
    h.incident("P2");
    assert_eq!(h.instance.status.kind(), "awaiting_decision");
    assert!(h.instance.phases[0].tasks[1].requested && !h.kinds().iter().any(|k| k.starts_with("TaskDispatched(hotfix")));
    // The deadline rejects: the instance runs on without the rollback, and the hotfix runs.
    h.now = Timestamp(h.now.0 + 600_000);
    h.settle(0);
    assert_eq!(h.instance.status.kind(), "running", "{:?}", h.kinds());
    assert!(h.kinds().iter().any(|k| k.starts_with("TaskSucceeded(hotfix")), "{:?}", h.kinds());
    h.assert_replays();

    // A loop-back makes the halt moot.
    let mut h = halted("reject");
    h.incident("P3");
    assert_eq!(h.instance.status.kind(), "running", "{:?}", h.kinds());

    // Deadline answers that keep it waiting: hold (no deadline any more), escalate.
    let mut h = halted("hold");
    h.now = Timestamp(h.now.0 + 600_000);
    h.settle(0);
    assert!(matches!(&h.instance.status, InstanceStatus::AwaitingDecision { approval, .. }
        if matches!(approval.status, GateStatus::AwaitingDecision { deadline: None, .. })));
    let mut h = halted("escalate");
    h.now = Timestamp(h.now.0 + 600_000);
    h.settle(0);
    assert!(matches!(&h.instance.status, InstanceStatus::AwaitingDecision { approval, .. }
        if matches!(approval.status, GateStatus::AwaitingDecision { level: 1, .. })));
    h.assert_replays();
}

/// A rollback to a phase whose gate had passed evaluates the gate again.
#[test]
fn rollback_to_a_gated_phase_resets_its_passed_gate() {
    let mut h = harness_for(
        r#"
name = "again"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
rollback = { id = "uncompile", agent = "noop" }
[[phases.gates]]
id = "built"
[[phases.gates.criteria]]
id = "ok"
label = "compiled"
must = "tasks.compile.status == 'succeeded'"
[[phases]]
id = "ship"
after = ["build"]
[[phases.tasks]]
id = "soak"
agent = "noop"
"#,
    );
    h.hold.push("soak".into());
    h.settle(0);
    assert_eq!(h.instance.phases[0].gates[0].status.kind(), "passed", "{:?}", h.kinds());
    h.apply(Event::RollbackStarted(payload::RollbackStarted { by: "op".into(), reason: "bad build".into(), to: Some("build".into()) }))
        .expect("rollback");
    h.hold.clear();
    h.settle(0);
    assert!(h.kinds().iter().any(|k| k == "RollbackCompleted"), "{:?}", h.kinds());
    assert_eq!(h.instance.phases[0].attempt, 2, "the gated phase ran again: {:?}", h.kinds());
    h.assert_replays();
}

/// A decision with a request id asks for its index entry with the event,
/// for a gate and for a trigger's halt alike; one without asks for none.
#[test]
fn a_decisions_request_id_is_a_write_of_the_machine() {
    let mut h = shipping();
    h.incident("P1");
    let decision = Decision {
        kind: DecisionKind::Hold,
        principal: "carol".into(),
        auth: crate::machine::Authentication::Local,
        via: "role:sre".into(),
        comment: String::new(),
        request_id: "req-1".into(),
        level: 0,
        seen: Default::default(),
        inputs: Default::default(),
    };
    let event = Event::TriggerDecided(payload::TriggerDecided { phase: "ship".into(), trigger: "p1".into(), decision });
    let effects = step(&mut h.instance, &h.workflow, &event, h.now).expect("held");
    let writes: Vec<&Effect> = effects.iter().filter(|e| matches!(e, Effect::WriteRequest { .. })).collect();
    assert!(
        matches!(writes.as_slice(), [Effect::WriteRequest { request_id, subject: super::Subject::Trigger, id, .. }] if request_id == "req-1" && id == "p1"),
        "{effects:?}"
    );
    h.decide_as("carol", DecisionKind::Reject, "p1").expect("no request id");
    assert!(!h.effects.iter().any(|e| matches!(e, Effect::WriteRequest { .. })), "none without a request id");
}

/// The way back from a failed gate: its owner holds it (the failed release
/// runs again, and the attempt its failure cancelled elsewhere starts over),
/// the phase runs again with the fix, and the gate passes; the first
/// evaluation and the hold stay in the history.
#[test]
fn a_failed_gate_is_held_for_remediation_and_its_phase_runs_again() {
    let mut h = harness_for(
        r#"
name = "remediate"
[[phases]]
id = "perf"
owner = "olga"
[[phases.tasks]]
id = "load"
agent = "noop"
[[phases.gates]]
id = "latency"
[[phases.gates.criteria]]
id = "p95"
label = "p95 under 200 ms"
must = "tasks.load.output.p95_ms < 200"
[[phases]]
id = "docs"
[[phases.tasks]]
id = "write"
agent = "noop"
"#,
    );
    h.outputs.insert("load".into(), json!({"p95_ms": 350}));
    h.hold.push("write".into());
    h.settle(0);
    assert_eq!(h.instance.status.kind(), "failed", "{:?}", h.kinds());
    assert!(matches!(h.instance.phases[1].tasks[0].status, TaskStatus::Cancelled { .. }), "the failure cancelled docs/write");
    let hold = |who: &str| Decision {
        kind: DecisionKind::Hold,
        principal: who.into(),
        auth: crate::machine::Authentication::Local,
        via: who.into(),
        comment: "tuning the cache".into(),
        request_id: String::new(),
        level: 0,
        seen: Default::default(),
        inputs: Default::default(),
    };
    h.apply(Event::DecisionRecorded(payload::DecisionRecorded { phase: "perf".into(), gate: "latency".into(), decision: hold("olga") }))
        .expect("the owner holds the failed gate");
    assert_eq!((h.instance.status.kind(), h.instance.phases[0].status.kind()), ("running", "on_hold"));
    assert!(matches!(h.instance.phases[1].tasks[0].status, TaskStatus::Pending), "the cancelled attempt starts over");
    h.settle(0);
    assert!(h.kinds().iter().any(|k| k == "TaskDispatched(write#2)"), "{:?}", h.kinds());
    // The fix is in: the whole phase runs again and its gate is evaluated again.
    h.outputs.insert("load".into(), json!({"p95_ms": 150}));
    h.apply(Event::Redriven(payload::Redriven { by: "olga".into(), tasks: Vec::new(), phase: Some("perf".into()) })).expect("runs again");
    h.hold.clear();
    h.settle(0);
    h.apply(Event::TaskSucceeded(payload::TaskSucceeded {
        phase: "docs".into(),
        task: "write".into(),
        attempt: 2,
        output: json!({}),
        duration_ms: 1,
    }))
    .expect("the held attempt finishes");
    h.settle(0);
    assert_eq!(h.instance.status.kind(), "completed", "{:?}", h.kinds());
    let gate = &h.instance.phases[0].gates[0];
    assert_eq!(gate.decisions.len(), 1, "the hold stays on the record");
    assert_eq!(h.kinds().iter().filter(|k| k.starts_with("GateEvaluated(latency")).count(), 2, "{:?}", h.kinds());
    h.assert_replays();
}

/// The sampling rules, one by one: a run of `consecutive_failures` breaching
/// samples fires before the `for` window is up, a healthy sample resets the
/// run, `no_data = "breach"` counts missing data as a breach, `no_data =
/// "ok"` as healthy, `no_data = "breach_if_unreachable"` breaches only when
/// the target could not be reached, and `for` alone fires once the breach
/// has lasted it.
#[test]
fn consecutive_failures_no_data_policies_and_the_for_window() {
    let watching = |rule: &str| {
        harness_for(&format!(
            r#"
name = "watching"
[[phases]]
id = "ship"
[[phases.tasks]]
id = "soak"
agent = "noop"
[[phases.watches]]
id = "errors"
agent = "noop"
interval = "15s"
condition = "value > 0.1"
{rule}
[[phases.triggers]]
id = "page"
on = "errors"
action = "notify"
notify = {{ agent = "noop" }}
"#
        ))
    };
    let fired = |h: &Harness| h.kinds().iter().filter(|k| *k == "TriggerFired(page)").count();
    let start = |mut h: Harness| {
        h.hold.push("soak".into());
        h.settle(0);
        h
    };

    // Three breaching samples in a row fire, long before ten minutes.
    let mut h = start(watching("for = \"10m\"\nconsecutive_failures = 3"));
    h.sample(15, Some(0.5)).expect("sample");
    h.sample(15, Some(0.5)).expect("sample");
    assert_eq!(fired(&h), 0, "two are not enough");
    h.sample(15, Some(0.01)).expect("a healthy sample resets the run");
    h.sample(15, Some(0.5)).expect("sample");
    h.sample(15, Some(0.5)).expect("sample");
    assert_eq!(fired(&h), 0, "the run started again: {:?}", h.kinds());
    h.sample(15, Some(0.5)).expect("sample");
    assert_eq!(fired(&h), 1, "three in a row fire: {:?}", h.kinds());
    h.sample(15, Some(0.5)).expect("sample");
    assert_eq!(fired(&h), 1, "a firing watch fires once until it recovers");

    // no_data = "breach": missing data is a breach, so it fires by count too.
    let mut h = start(watching("for = \"10m\"\nconsecutive_failures = 2\nno_data = \"breach\""));
    h.sample(15, None).expect("sample");
    h.sample(15, None).expect("sample");
    assert_eq!(fired(&h), 1, "{:?}", h.kinds());

    // no_data = "ok": missing data never fires.
    let mut h = start(watching("for = \"30s\"\nno_data = \"ok\""));
    for _ in 0..6 {
        h.sample(15, None).expect("sample");
    }
    assert_eq!(fired(&h), 0, "{:?}", h.kinds());

    // no_data = "breach_if_unreachable": an agent that cannot reach its
    // target breaches; an answer without data is inconclusive (a person decides).
    let sampled = |h: &mut Harness, result: super::SampleResult| {
        h.now = Timestamp(h.now.0 + 15_000);
        let event = super::sample_event(&h.instance, &h.workflow, 0, 0, &result);
        h.apply(event).expect("sample");
        h.settle(0);
    };
    let mut h = start(watching("for = \"10m\"\nconsecutive_failures = 2\nno_data = \"breach_if_unreachable\""));
    sampled(&mut h, super::SampleResult::Failed("connection refused".into()));
    sampled(&mut h, super::SampleResult::Failed("exit status 7".into()));
    assert_eq!(fired(&h), 1, "unreachable twice: {:?}", h.kinds());
    // Regression (issue 16, item 5): a sample that timed out on a loaded
    // machine is slow evidence, not a target that is down: no breach.
    let mut h = start(watching("for = \"10m\"\nconsecutive_failures = 2\nno_data = \"breach_if_unreachable\""));
    sampled(&mut h, super::SampleResult::TimedOut("timed out after 1s".into()));
    sampled(&mut h, super::SampleResult::TimedOut("timed out after 1s".into()));
    assert_eq!(fired(&h), 0, "a timeout is not unreachable: {:?}", h.kinds());
    let mut h = start(watching("for = \"10m\"\nconsecutive_failures = 2\nno_data = \"breach_if_unreachable\""));
    sampled(&mut h, super::SampleResult::Answered(json!({"value": null})));
    sampled(&mut h, super::SampleResult::Answered(json!({"value": null})));
    assert_eq!(fired(&h), 0, "an empty answer is no breach: {:?}", h.kinds());
    assert_eq!(h.instance.status.kind(), "halted", "missing data for the count halts for a person: {:?}", h.kinds());

    // `for` alone: the breach must last it.
    let mut h = start(watching("for = \"30s\""));
    h.sample(15, Some(0.5)).expect("sample");
    h.sample(15, Some(0.5)).expect("sample");
    assert_eq!(fired(&h), 0, "15 s of breach is not 30 s");
    h.sample(15, Some(0.5)).expect("sample");
    assert_eq!(fired(&h), 1, "30 s of breach fires: {:?}", h.kinds());
    h.assert_replays();
}

/// Regression (issue 16, item 4): watches stopped sampling while a trigger's
/// halt waited for people, so an error-rate breach during a P1 decision was
/// never seen. They keep sampling, and a breach's rollback acts at once.
#[test]
fn regression_watches_keep_sampling_while_a_trigger_halt_waits() {
    let mut h = shipping();
    h.incident("P1");
    assert_eq!(h.instance.status.kind(), "awaiting_decision");
    let due = super::watches_due(&h.instance, &h.workflow);
    assert!(!due.is_empty(), "the watch is still due while the halt waits");
    // A sustained breach during the wait: the error-rate trigger cannot open a
    // second halt, so it is skipped and recorded, while the samples count.
    for _ in 0..10 {
        h.sample(15, Some(0.5)).expect("samples are taken while the halt waits");
    }
    assert!(h.kinds().iter().any(|k| k.starts_with("TriggerSkipped(error-rate-rollback")), "{:?}", h.kinds());
    assert!(h.instance.phases[1].watches[0].firing, "the breach was seen");
    // A P0 meanwhile rolls back at once.
    h.apply(Event::SignalReceived(payload::SignalReceived {
        name: "incident".into(),
        data: json!({"severity": "P0"}),
        by: "pager".into(),
    }))
    .expect("signal");
    h.settle(60_000);
    assert_eq!(h.instance.status.kind(), "rolled_back", "{:?}", h.kinds());
    h.assert_replays();
}

const SPANNED: &str = r#"
name = "spanned"
[signals.incident]
[[phases]]
id = "hardening"
[[phases.tasks]]
id = "harden"
agent = "noop"
[[phases]]
id = "launch"
after = ["hardening"]
[[phases.tasks]]
id = "deploy"
agent = "noop"
rollback = { id = "undeploy", agent = "noop" }
[[phases]]
id = "post-launch"
after = ["launch"]
[[phases.gates]]
id = "stable"
approval = { approvers = ["olga"] }
[[phases]]
id = "optimization"
after = ["post-launch"]
schedule = { every = "90d" }
[[phases.tasks]]
id = "tune"
agent = "noop"

[[watches]]
id = "uptime"
from = "launch"
agent = "noop"
interval = "30s"
condition = "value < 99.9"
for = "10m"
consecutive_failures = 2
[[triggers]]
id = "uptime-breach"
on = "uptime"
action = "rollback"
[[triggers]]
id = "p0"
from = "launch"
on = "signal:incident"
when = "signals.incident.severity == 'P0'"
action = "rollback"
"#;

fn uptime(h: &mut Harness, value: f64) -> Result<(), Rejected> {
    h.now = Timestamp(h.now.0 + 30_000);
    let verdict = if value < 99.9 { SampleVerdict::Breach } else { SampleVerdict::Ok };
    h.apply(Event::WatchSampled(payload::WatchSampled {
        phase: "launch".into(),
        watch: "uptime".into(),
        value: Some(value),
        verdict,
        detail: String::new(),
        unreachable: false,
    }))?;
    h.settle(0);
    Ok(())
}

fn live(h: &Harness) -> bool {
    let liveness = watch_liveness(&h.instance, &h.workflow);
    assert_eq!(liveness.len(), 1, "{liveness:?}");
    !super::watches_due(&h.instance, &h.workflow).is_empty() && liveness[0].live
}

#[test]
fn regression_reactions_outlive_their_phase() {
    // Before its `from` phase starts, a workflow-level watch does not sample
    // and a workflow-level trigger does not act.
    let mut h = harness_for(SPANNED);
    h.hold.push("harden".into());
    h.settle(0);
    assert!(!live(&h), "uptime is not live during hardening");
    assert!(watch_liveness(&h.instance, &h.workflow)[0].why.contains("from phase launch until the end"));
    assert!(uptime(&mut h, 50.0).is_err(), "a sample before the span is refused");
    h.incident("P0");
    assert_eq!(h.instance.status.kind(), "running", "the P0 trigger is not live before launch");

    // Launch passed, the instance waits at the post-launch gate: the watch
    // still samples and a sustained breach rolls back.
    let mut h = harness_for(SPANNED);
    h.settle(0);
    assert_eq!(h.instance.phases[2].status.kind(), "awaiting_approval");
    assert_eq!(h.instance.phases[1].status.kind(), "passed");
    assert!(live(&h), "uptime samples while the release waits at a later gate");
    uptime(&mut h, 100.0).expect("sample");
    uptime(&mut h, 90.0).expect("sample");
    assert_eq!(h.instance.status.kind(), "running", "one breaching sample is not two");
    uptime(&mut h, 90.0).expect("sample");
    assert_eq!(h.instance.status.kind(), "rolled_back", "{:?}", h.kinds());
    assert!(h.kinds().iter().any(|k| k.contains("uptime-breach")), "{:?}", h.kinds());
    h.assert_replays();

    // A P0 while the instance waits at the later gate rolls back.
    let mut h = harness_for(SPANNED);
    h.settle(0);
    h.incident("P0");
    assert_eq!(h.instance.status.kind(), "rolled_back", "{:?}", h.kinds());

    // Between scheduled cycles of the last phase the release is live: the
    // watch samples, the P0 trigger acts.
    let mut h = harness_for(SPANNED);
    h.settle(0);
    decide_gate_of(&mut h, "post-launch", "stable", DecisionKind::Approve);
    assert_eq!(h.instance.effective_status(), EffectiveStatus::Scheduled);
    assert!(live(&h), "uptime samples between scheduled cycles");
    assert!(h.instance.is_active(&h.workflow), "an instance with a live watch stays in memory");
    h.incident("P0");
    assert_eq!(h.instance.status.kind(), "rolled_back", "{:?}", h.kinds());
    assert!(!live(&h), "nothing samples once the instance rolled back");
    h.assert_replays();
}

fn decide_gate_of(h: &mut Harness, phase: &str, gate: &str, kind: DecisionKind) {
    let decision = Decision {
        kind,
        principal: "olga".into(),
        auth: crate::machine::Authentication::Local,
        via: "olga".into(),
        comment: String::new(),
        request_id: String::new(),
        level: 0,
        seen: Default::default(),
        inputs: Default::default(),
    };
    h.apply(Event::DecisionRecorded(payload::DecisionRecorded { phase: phase.into(), gate: gate.into(), decision })).expect("decision");
    h.settle(0);
}

#[test]
fn workflow_level_reactions_are_checked_at_validate() {
    let refused = |toml: &str| match plan::load_source(&Source::from_text(toml, Format::Toml), &AgentNames::builtin()) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(diagnostics) => diagnostics.to_string(),
    };
    let base = SPANNED.split("[[watches]]").next().unwrap_or_default();
    let errors = refused(&format!(
        "{base}[[watches]]\nid = \"w\"\nfrom = \"lunch\"\nagent = \"noop\"\ninterval = \"1m\"\ncondition = \"value > 1\"\n"
    ));
    assert!(errors.contains("unknown phase `lunch`") && errors.contains("did you mean `launch`"), "{errors}");
    let errors = refused(&format!(
        "{base}[[watches]]\nid = \"w\"\nfrom = \"launch\"\nuntil = \"hardening\"\nagent = \"noop\"\ninterval = \"1m\"\ncondition = \"value > 1\"\n"
    ));
    assert!(errors.contains("does not run after phase `launch`"), "{errors}");
    let errors = refused(&format!("{base}[[triggers]]\non = \"task_failed:deploy\"\naction = \"rollback\"\n"));
    assert!(errors.contains("reacts to any task failed"), "{errors}");
    let errors = refused(&format!("{base}[[triggers]]\non = \"signal:incident\"\naction = \"halt_for_approval\"\n"));
    assert!(errors.contains("needs to know who decides"), "{errors}");
    let errors =
        refused(&SPANNED.replace("id = \"deploy\"\nagent = \"noop\"", "id = \"deploy\"\nagent = \"noop\"\non_demand = true").replace(
            "id = \"p0\"\nfrom = \"launch\"\non = \"signal:incident\"\nwhen = \"signals.incident.severity == 'P0'\"\naction = \"rollback\"",
            "id = \"p0\"\non = \"signal:incident\"\naction = \"run\"\ntask = \"deploy\"",
        ));
    assert!(errors.contains("cannot `run` a task"), "{errors}");
    let errors = refused(
        &SPANNED.replace("id = \"uptime-breach\"\non = \"uptime\"", "id = \"uptime-breach\"\non = \"uptime\"\nfrom = \"hardening\""),
    );
    assert!(errors.contains("is live exactly when its watch is"), "{errors}");
    let errors = refused(&SPANNED.replace("schedule = { every = \"90d\" }", "schedule = { every = \"90d\" }\n[[phases.watches]]\nid = \"x\"\nfrom = \"launch\"\nagent = \"noop\"\ninterval = \"1m\"\ncondition = \"value > 1\""));
    assert!(errors.contains("`from` does not apply to a phase's watch"), "{errors}");
    let errors = refused(&format!("{base}[[phases.triggers]]\non = \"uptime\"\naction = \"rollback\"\n[[watches]]\nid = \"uptime\"\nagent = \"noop\"\ninterval = \"1m\"\ncondition = \"value > 1\"\n"));
    assert!(errors.contains("not a watch of phase"), "{errors}");
}

#[test]
fn decision_inputs_are_checked_at_validate() {
    let gate = |inputs: &str, approval_extra: &str, task_params: &str, task_phase_after_gate: bool| {
        let after = if task_phase_after_gate { "after = [\"decide\"]" } else { "" };
        format!(
            "name = \"x\"\n[[phases]]\nid = \"decide\"\n[[phases.tasks]]\nid = \"prep\"\nagent = \"noop\"\n{}\n[[phases.gates]]\nid = \"go\"\n\
             [phases.gates.approval]\napprovers = [\"olga\"]\n{approval_extra}\n[phases.gates.approval.inputs]\n{inputs}\n\
             [[phases]]\nid = \"launch\"\n{after}\n[[phases.tasks]]\nid = \"ship\"\nagent = \"noop\"\nparams = {{ {task_params} }}\n",
            if task_phase_after_gate { "" } else { "params = { region = \"{{ decisions.go.inputs.region }}\" }" }
        )
    };
    let check = |toml: String| {
        plan::load_source(&Source::from_text(&toml, Format::Toml), &AgentNames::builtin()).map(|_| ()).map_err(|d| d.to_string())
    };
    let fine = gate("region = { type = \"string\" }", "", "region = \"{{ decisions.go.inputs.region }}\"", true);
    assert_eq!(check(fine), Ok(()));
    let cases = [
        (gate("region = {}", "", "", true), "has neither a type, a default nor options"),
        (gate("region = { type = \"integer\", default = \"eu\" }", "", "", true), "input `region`: its default is \"eu\""),
        (gate("region = { options = [\"eu\", \"us\"], default = \"ap\" }", "", "", true), "is not one of its options"),
        (gate("region = { type = \"string\" }", "timeout = \"1h\"\non_timeout = \"approve\"", "", true), "cannot choose input `region`"),
        (gate("region = { type = \"string\" }", "", "r = \"{{ decisions.go.inputs.zone }}\"", true), "gate `go` declares no input `zone`"),
        (gate("region = { type = \"string\" }", "", "r = \"{{ decisions.og.inputs.region }}\"", true), "unknown gate `og`"),
        (gate("region = { type = \"string\" }", "", "", false), "does not run after phase `decide`"),
    ];
    for (toml, expected) in cases {
        let errors = check(toml.clone()).expect_err(&toml);
        assert!(errors.contains(expected), "{expected}:\n{errors}");
    }
}

mod notify;
mod waits;

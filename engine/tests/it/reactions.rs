//! Watches, trigger halts, rollbacks and schedules through the embedding
//! API, with a metric the test controls and real time (scaled to
//! milliseconds).

use phasegate_engine::machine::payload;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phasegate_agents::{Agent, Error as AgentError, Registry, TaskContext, TaskOutput, TaskRequest};
use phasegate_engine::machine::{DecisionKind, Roles};
use phasegate_engine::model::{Format, Source};
use phasegate_engine::runtime::{DecisionRequest, Error};
use phasegate_engine::{Engine, StartOptions};
use phasegate_store::{SledStore, Store};
use serde_json::{json, Value};

/// A metric whose value the test sets; `None` answers "no data".
#[derive(Clone, Default)]
struct Metric(Arc<Mutex<Option<f64>>>);

impl Metric {
    fn set(&self, value: Option<f64>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    }
}

#[async_trait::async_trait]
impl Agent for Metric {
    fn name(&self) -> &str {
        "metric"
    }

    async fn run(&self, _request: TaskRequest, _context: TaskContext) -> Result<TaskOutput, AgentError> {
        let value = *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(TaskOutput(json!({ "value": value })))
    }
}

const LAUNCH: &str = r#"
name = "launch"
[vars]
error_rate_max = 0.10

[[phases]]
id = "deploy"
[[phases.tasks]]
id = "push"
agent = "noop"
rollback = { id = "unpush", agent = "noop" }
[[phases.tasks]]
id = "dns"
agent = "noop"
depends_on = ["push"]
rollback = { id = "restore-dns", agent = "sleep", params = { duration = "400ms" } }

[[phases]]
id = "watch"
after = ["deploy"]
[[phases.tasks]]
id = "soak"
agent = "sleep"
params = { duration = "60s" }
[[phases.watches]]
id = "error-rate"
agent = "metric"
interval = "50ms"
condition = "value > vars.error_rate_max"
for = "300ms"
[[phases.triggers]]
id = "roll-back-on-errors"
on = "error-rate"
action = "halt_for_approval"
approval = { approvers = ["role:sre"] }
then = "rollback"
[[phases.rollback]]
id = "page-out"
agent = "noop"
"#;

async fn engine_with(metric: &Metric, store: Arc<dyn Store>) -> Engine {
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(metric.clone()));
    let mut roles = std::collections::BTreeMap::new();
    roles.insert("sre".to_owned(), ["sam".to_owned()].into_iter().collect());
    Engine::builder().store(store).agents(registry).roles(Roles(roles)).build().await.expect("engine")
}

fn kinds(engine: &Engine, id: &str) -> Vec<String> {
    engine.history(id).expect("history").iter().map(|r| r.event().describe()).collect()
}

/// Waits until `done` holds, looking again after each event the engine
/// makes durable (nothing polls); fails after 10 s saying what it waited for.
async fn until(engine: &Engine, what: impl FnOnce() -> String, mut done: impl FnMut() -> bool) {
    use tokio::sync::broadcast::error::RecvError;
    // Subscribed before the first look, so no event falls between the two.
    let mut events = engine.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(_) | Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) | Err(_) => panic!("never saw {}", what()),
        }
    }
}

async fn wait_for(engine: &Engine, id: &str, status: phasegate_engine::machine::EffectiveStatus) {
    let became = || engine.instance(id).map(|(i, _)| i.effective_status() == status).unwrap_or(false);
    until(engine, || format!("{id} become {status}: {:?}", kinds(engine, id)), became).await;
}

fn approve(principal: &str) -> DecisionRequest {
    DecisionRequest {
        kind: DecisionKind::Approve,
        principal: principal.into(),
        auth: phasegate_engine::machine::Authentication::Local,
        comment: "error budget burnt".into(),
        request_id: String::new(),
        inputs: Default::default(),
    }
}

#[tokio::test]
async fn a_sustained_breach_halts_for_approval_and_the_approved_rollback_runs_in_reverse_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metric = Metric::default();
    metric.set(Some(0.01));
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db")).expect("store"));
    let engine = engine_with(&metric, Arc::clone(&store)).await;
    let workflow = engine.load_definition(&Source::from_text(LAUNCH, Format::Toml)).expect("valid");
    let id = engine.start(workflow, StartOptions { id: Some("rel-1".into()), ..StartOptions::default() }).await.expect("starts");

    // Healthy samples accumulate (as events); nothing fires.
    let healthy = || kinds(&engine, &id).iter().filter(|k| k.starts_with("WatchSampled(error-rate=0.01")).count();
    until(&engine, || "three healthy samples".to_owned(), || healthy() >= 3).await;
    assert!(healthy() >= 3, "samples are recorded as events: {:?}", kinds(&engine, &id));
    assert_eq!(engine.instance(&id).expect("loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::Running);

    metric.set(Some(0.25));
    wait_for(&engine, &id, phasegate_engine::machine::EffectiveStatus::AwaitingApproval).await;
    let history = kinds(&engine, &id);
    let breaches = history.iter().filter(|k| k.starts_with("WatchSampled(error-rate=0.25: breach")).count();
    assert!(breaches >= 2, "the breach had to last 300 ms at 50 ms intervals: {history:?}");
    assert!(history.iter().any(|k| k == "TriggerFired(roll-back-on-errors)"), "{history:?}");

    // The halt is listed with the approvals and only the role may decide.
    let pending = engine.approvals(None).expect("approvals");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].gate, "roll-back-on-errors");
    let before = engine.history(&id).expect("history").len();
    let refused = engine.decide(&id, None, approve("mallory")).await.expect_err("not an sre");
    assert!(matches!(refused, Error::Forbidden(_)), "{refused}");
    assert_eq!(engine.history(&id).expect("history").len(), before, "a refused decision appends nothing");

    let outcome = engine.decide(&id, Some("roll-back-on-errors"), approve("sam")).await.expect("approves");
    assert_eq!(outcome.gate, "roll-back-on-errors");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::RolledBack, "{:?}", kinds(&engine, &id));
    let history = kinds(&engine, &id);
    let undone: Vec<&String> = history.iter().filter(|k| k.starts_with("CompensationSucceeded")).collect();
    assert_eq!(
        undone,
        ["CompensationSucceeded(page-out#1)", "CompensationSucceeded(restore-dns#1)", "CompensationSucceeded(unpush#1)"],
        "reverse completion order: the watch phase started last, dns completed after push"
    );
    assert!(history.iter().any(|k| k.starts_with("TaskCancelled(soak")), "the soak in flight was cancelled: {history:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_rollback_resumes_without_repeating_finished_compensations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metric = Metric::default();
    metric.set(Some(0.01));
    let path = dir.path().join("db");
    let id = {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&path).expect("store"));
        let engine = engine_with(&metric, store).await;
        let workflow = engine.load_definition(&Source::from_text(LAUNCH, Format::Toml)).expect("valid");
        let id = engine.start(workflow, StartOptions { id: Some("rel-2".into()), ..StartOptions::default() }).await.expect("starts");
        // Deploy done and the watch phase (whose rollback is page-out) started.
        until(&engine, || "the watch phase to start".to_owned(), || kinds(&engine, &id).iter().any(|k| k == "PhaseStarted(watch#1)")).await;
        engine.rollback(&id, "op", "bad build", None).await.expect("rollback starts");
        // page-out is quick; restore-dns sleeps 400 ms: stop while it runs.
        until(
            &engine,
            || "restore-dns to be dispatched".to_owned(),
            || kinds(&engine, &id).iter().any(|k| k == "CompensationDispatched(restore-dns#1)"),
        )
        .await;
        engine.shutdown().await;
        id
    };
    let history_before = {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&path).expect("store"));
        let engine = engine_with(&metric, store).await;
        let before = kinds(&engine, &id);
        assert!(before.iter().any(|k| k == "CompensationSucceeded(page-out#1)"), "{before:?}");
        assert!(!before.iter().any(|k| k.starts_with("CompensationSucceeded(restore-dns")), "stopped mid-compensation: {before:?}");
        engine.run_until_idle().await;
        let after = kinds(&engine, &id);
        assert_eq!(
            engine.instance(&id).expect("loads").0.effective_status(),
            phasegate_engine::machine::EffectiveStatus::RolledBack,
            "{after:?}"
        );
        assert_eq!(after.iter().filter(|k| k.starts_with("CompensationDispatched(page-out")).count(), 1, "{after:?}");
        assert_eq!(
            after.iter().filter(|k| k.starts_with("CompensationDispatched(restore-dns")).count(),
            1,
            "re-dispatched with its key, not a new attempt: {after:?}"
        );
        engine.shutdown().await;
        after
    };
    assert!(history_before.iter().any(|k| k == "CompensationSucceeded(restore-dns#1)"));
}

#[tokio::test]
async fn rollback_requests_that_cannot_apply_are_refused_and_append_nothing() {
    let metric = Metric::default();
    let engine = engine_with(&metric, Arc::new(phasegate_store::MemoryStore::in_memory())).await;
    let toml = r#"
name = "plain"
[[phases]]
id = "only"
[[phases.tasks]]
id = "t"
agent = "noop"
"#;
    let workflow = engine.load_definition(&Source::from_text(toml, Format::Toml)).expect("valid");
    let id = engine.start(workflow, StartOptions::default()).await.expect("starts");
    engine.run_until_idle().await;
    let before = engine.history(&id).expect("history").len();
    let refused = engine.rollback(&id, "op", "", None).await.expect_err("completed");
    assert!(refused.to_string().contains("is completed"), "{refused}");
    let refused = engine.rollback(&id, "op", "", Some("nowhere")).await.expect_err("unknown phase");
    assert!(refused.to_string().contains("is completed") || refused.to_string().contains("no phase"), "{refused}");
    assert_eq!(engine.history(&id).expect("history").len(), before);
    let refused = engine.signal(&id, "incident", Value::Null, "pager").await.expect_err("finished");
    assert!(refused.to_string().contains("is completed"), "{refused}");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_scheduled_phase_runs_its_next_cycle_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let metric = Metric::default();
    let toml = r#"
name = "quarterly"
[[phases]]
id = "launch"
[[phases.tasks]]
id = "ship"
agent = "noop"
[[phases]]
id = "revalidate"
after = ["launch"]
schedule = { every = "1500ms" }
[[phases.tasks]]
id = "audit"
agent = "noop"
"#;
    // Time is the test's: the cycle falls due because the clock says so.
    let clock = Arc::new(phasegate_engine::runtime::ManualClock::at(phasegate_engine::runtime::clock::system_now()));
    let open = |clock: &Arc<phasegate_engine::runtime::ManualClock>| {
        let mut registry = Registry::with_builtins();
        registry.register(Arc::new(metric.clone()));
        Engine::builder()
            .store(Arc::new(SledStore::open(&path).expect("store")))
            .agents(registry)
            .clock(Arc::clone(clock) as Arc<dyn phasegate_engine::runtime::Clock>)
            .build()
    };
    let id = {
        let engine = open(&clock).await.expect("engine");
        let workflow = engine.load_definition(&Source::from_text(toml, Format::Toml)).expect("valid");
        let id = engine.start(workflow, StartOptions { id: Some("q".into()), ..StartOptions::default() }).await.expect("starts");
        engine.run_until_idle().await;
        let (instance, _) = engine.instance(&id).expect("loads");
        assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Scheduled);
        assert_eq!(
            engine.list(Some(phasegate_engine::machine::EffectiveStatus::Scheduled)).expect("list").len(),
            1,
            "the status index knows it"
        );
        engine.shutdown().await;
        id
    };
    // The process is gone when the cycle falls due; a new engine picks it up.
    clock.advance(Duration::from_millis(1600));
    let engine = open(&clock).await.expect("engine");
    let cycled = || {
        engine.instance(&id).is_ok_and(|(instance, _)| {
            instance.phases[1].attempt >= 2 && instance.effective_status() == phasegate_engine::machine::EffectiveStatus::Scheduled
        })
    };
    until(&engine, || format!("the next cycle to run after the restart: {:?}", kinds(&engine, &id)), cycled).await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.phases[0].attempt, 1, "only the scheduled phase runs again");
    assert_eq!(instance.phases[1].entered.as_deref(), Some("scheduled cycle 2"));
    let history = kinds(&engine, &id);
    assert_eq!(history.iter().filter(|k| *k == "ScheduleFired(revalidate)").count(), 1, "{history:?}");
    assert_eq!(history.iter().filter(|k| k.starts_with("TaskSucceeded(audit")).count(), 2, "{history:?}");
    engine.cancel(&id, "op", "end of the schedule").await.expect("cancel ends it");
    engine.shutdown().await;
}

/// Records what it is asked to send.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Value>>>);

#[async_trait::async_trait]
impl Agent for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    async fn run(&self, request: TaskRequest, _context: TaskContext) -> Result<TaskOutput, AgentError> {
        let body = request.params.get("json").cloned().unwrap_or(Value::Null);
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(body);
        Ok(TaskOutput(json!({"status": 200})))
    }
}

#[tokio::test]
async fn a_failed_task_notifies_and_loops_back_with_its_code_until_max_loops() {
    let recorder = Recorder::default();
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(recorder.clone()));
    let engine =
        Engine::builder().store(Arc::new(phasegate_store::MemoryStore::in_memory())).agents(registry).build().await.expect("engine");
    let toml = r#"
name = "loops"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
[[phases]]
id = "launch"
after = ["build"]
[[phases.tasks]]
id = "smoke"
agent = "noop"
params = { fail = "smoke test failed: 502 from /health" }
[[phases.triggers]]
id = "tell-the-channel"
on = "task_failed:smoke"
action = "notify"
notify = { agent = "recorder", params = { json = { text = "smoke failed" } } }
[[phases.triggers]]
id = "back-to-build"
on = "task_failed"
action = "goto"
phase = "build"
code = "LAUNCH-001"
reason = "Smoke tests failed in production: rebuild and redeploy."
max_loops = 2
"#;
    let workflow = engine.load_definition(&Source::from_text(toml, Format::Toml)).expect("valid");
    let id = engine.start(workflow, StartOptions { id: Some("l".into()), ..StartOptions::default() }).await.expect("starts");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Failed, "{:?}", kinds(&engine, &id));
    let history = kinds(&engine, &id);
    assert_eq!(history.iter().filter(|k| *k == "PhaseStarted(build#3)").count(), 1, "two loop-backs: {history:?}");
    assert!(!history.iter().any(|k| k == "PhaseStarted(build#4)"), "max_loops ends it: {history:?}");
    assert_eq!(instance.phases[0].loops, 2);
    assert!(instance.phases[0].entered.as_deref().is_some_and(|e| e.contains("LAUNCH-001")));
    match &instance.phases[1].status {
        phasegate_engine::machine::PhaseStatus::Failed { reason, .. } => assert!(reason.contains("max_loops = 2"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // The notification went out for every failure (three), with the definition's body.
    for _ in 0..100 {
        if recorder.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = recorder.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent.iter().all(|body| body["text"] == "smoke failed"), "{sent:?}");
    engine.shutdown().await;
}

/// A metric that answers after a delay, like a Prometheus on a loaded machine.
#[derive(Clone)]
struct Slow(Duration);

#[async_trait::async_trait]
impl Agent for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    async fn run(&self, _request: TaskRequest, _context: TaskContext) -> Result<TaskOutput, AgentError> {
        tokio::time::sleep(self.0).await;
        Ok(TaskOutput(json!({ "value": 0.0 })))
    }
}

/// Regression (release-semantics issue, item 5; seen in the lifecycle tests
/// on a loaded machine): a sample's timeout was its interval (at least 1 s),
/// so a slow but healthy answer was "no data", which `no_data = "breach"`
/// turned into a spurious rollback. The timeout is now the watch's own
/// setting (default: the interval, at least 10 s).
#[tokio::test]
async fn regression_a_slow_sample_is_not_missing_evidence() {
    let toml = |timeout: &str| {
        format!(
            "name = \"slow\"\n[[phases]]\nid = \"launch\"\n[[phases.tasks]]\nid = \"soak\"\nagent = \"sleep\"\nparams = {{ duration = \"2500ms\" }}\n\
             [[phases.watches]]\nid = \"uptime\"\nagent = \"slow\"\ninterval = \"100ms\"\ncondition = \"value > 1.0\"\nno_data = \"breach\"\n{timeout}"
        )
    };
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(Slow(Duration::from_millis(1300))));
    let engine =
        Engine::builder().store(Arc::new(phasegate_store::MemoryStore::in_memory())).agents(registry).build().await.expect("engine");
    let healthy = engine.load_definition(&Source::from_text(toml(""), Format::Toml)).expect("valid");
    let strict = engine.load_definition(&Source::from_text(toml("timeout = \"300ms\"\n"), Format::Toml)).expect("valid");
    let slow = engine.start(healthy, StartOptions { id: Some("slow".into()), ..StartOptions::default() }).await.expect("starts");
    let short = engine.start(strict, StartOptions { id: Some("short".into()), ..StartOptions::default() }).await.expect("starts");
    engine.run_until_idle().await;
    let samples = |id: &str| -> Vec<(Option<f64>, String)> {
        engine
            .history(id)
            .expect("history")
            .iter()
            .filter_map(|r| match r.event() {
                phasegate_engine::machine::Event::WatchSampled(payload::WatchSampled { value, detail, .. }) => {
                    Some((*value, detail.clone()))
                }
                _ => None,
            })
            .collect()
    };
    let slow_samples = samples(&slow);
    assert!(!slow_samples.is_empty() && slow_samples.iter().all(|(v, _)| *v == Some(0.0)), "{slow_samples:?}");
    assert_eq!(engine.instance(&slow).expect("loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    let short_samples = samples(&short);
    assert!(short_samples.iter().any(|(v, d)| v.is_none() && d.contains("timed out after 300ms")), "{short_samples:?}");
}

/// Issue 16 (durable waits): a two-hour soak is a timer in the state, not a
/// sleep in a process. The engine stops an hour into it; a new engine
/// resumes it with the hour left, and a deadline that fell due while no
/// engine ran acts as soon as one does.
#[tokio::test]
async fn a_wait_resumes_after_a_restart_with_the_time_left_and_a_deadline_acts_once_an_engine_runs() {
    use phasegate_engine::machine::{EffectiveStatus, InstanceStatus, TaskStatus, Timestamp};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let toml = r#"
name = "stabilise"
[vars]
soak = { type = "duration", default = "2h" }
[[phases]]
id = "launch"
deadline = { after = "3h", outcome = "halt" }
[[phases.tasks]]
id = "deploy"
agent = "noop"
[[phases.tasks]]
id = "soak"
agent = "wait"
params = { duration = "{{ vars.soak }}" }
depends_on = ["deploy"]
"#;
    let gated = r#"
name = "signoff"
[[phases]]
id = "review"
deadline = { after = "90m", outcome = "halt" }
[[phases.gates]]
id = "go"
criteria = [{ must = "vars.ready", label = "ready" }]
approval = { approvers = ["alice"] }
[vars]
ready = true
"#;
    let clock = Arc::new(phasegate_engine::runtime::ManualClock::at(phasegate_engine::runtime::clock::system_now()));
    let open = |clock: &Arc<phasegate_engine::runtime::ManualClock>| {
        Engine::builder()
            .store(Arc::new(SledStore::open(&path).expect("store")))
            .clock(Arc::clone(clock) as Arc<dyn phasegate_engine::runtime::Clock>)
            .build()
    };
    let soak_of = |engine: &Engine, id: &str| engine.instance(id).map(|(i, _)| i.phases[0].tasks[1].status.clone()).ok();
    let (soaking, reviewing, due) = {
        let engine = open(&clock).await.expect("engine");
        let start = |toml: &str, id: &str| {
            let workflow = engine.load_definition(&Source::from_text(toml, Format::Toml)).expect("valid");
            engine.start(workflow, StartOptions { id: Some(id.into()), ..StartOptions::default() })
        };
        let soaking = start(toml, "soaking").await.expect("starts");
        let reviewing = start(gated, "reviewing").await.expect("starts");
        let waiting = || matches!(soak_of(&engine, &soaking), Some(TaskStatus::Waiting { .. }));
        until(&engine, || format!("the soak to begin: {:?}", kinds(&engine, &soaking)), waiting).await;
        wait_for(&engine, &reviewing, EffectiveStatus::AwaitingApproval).await;
        let Some(TaskStatus::Waiting { since, due, .. }) = soak_of(&engine, &soaking) else { unreachable!() };
        assert_eq!(due.since(since), 2 * 3_600_000, "the default of vars.soak");
        clock.advance(Duration::from_secs(3600));
        assert_eq!(due.left(engine.now()), Duration::from_secs(3600));
        engine.shutdown().await;
        (soaking, reviewing, due)
    };
    // The engine is gone; a new one reads the same end from the store.
    let engine = open(&clock).await.expect("engine");
    assert_eq!(
        soak_of(&engine, &soaking),
        Some(TaskStatus::Waiting { attempt: 1, since: Timestamp(due.0 - 2 * 3_600_000), due }),
        "the wait resumes where it was"
    );
    // The review's 90-minute deadline passed while no engine ran: it acts now.
    clock.advance(Duration::from_secs(31 * 60));
    engine.wake().await;
    wait_for(&engine, &reviewing, EffectiveStatus::Halted).await;
    let (review, _) = engine.instance(&reviewing).expect("loads");
    let InstanceStatus::Halted { reason, .. } = &review.status else { unreachable!() };
    assert!(reason.contains("phase review's deadline of 1h30m passed"), "{reason}");
    assert!(matches!(soak_of(&engine, &soaking), Some(TaskStatus::Waiting { .. })), "29 minutes left");
    clock.advance(Duration::from_secs(29 * 60));
    engine.wake().await;
    wait_for(&engine, &soaking, EffectiveStatus::Completed).await;
    let history = kinds(&engine, &soaking);
    assert_eq!(history.iter().filter(|k| k.starts_with("WaitStarted(soak#1")).count(), 1, "started once: {history:?}");
    let elapsed = engine.history(&soaking).expect("history").into_iter().find(|r| r.event().kind() == "WaitElapsed").expect("elapsed");
    assert!(elapsed.at() >= due, "the wait ended at {} before its end {due}", elapsed.at());
    engine.shutdown().await;
}

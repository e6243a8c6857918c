//! The runtime through the embedding API: runs to completion, retries,
//! operator commands and their refusals, gates, redrive, restart.

use phasegate_engine::machine::payload;
use std::sync::Arc;

use phasegate_engine::machine::{Event, TaskStatus};
use phasegate_engine::model::{Format, Source};
use phasegate_engine::runtime::Error;
use phasegate_engine::{Engine, Mode, StartOptions};
use phasegate_store::{MemoryStore, Store};

fn definition(toml: &str) -> Source {
    Source::from_text(toml, Format::Toml)
}

const CHAIN: &str = r#"
name = "chain"
[vars]
label = "x"
[[phases]]
id = "one"
[[phases.tasks]]
id = "a"
agent = "noop"
params = { output = { n = 1 } }
[[phases.tasks]]
id = "b"
agent = "noop"
depends_on = ["a"]
retry = { max_attempts = 3, initial = "10ms", max = "20ms" }
params = { fail_retryable = "flaky", fail_attempts = 2 }
[[phases]]
id = "two"
after = ["one"]
[[phases.tasks]]
id = "c"
agent = "noop"
"#;

async fn memory_engine() -> Engine {
    Engine::builder().store(Arc::new(MemoryStore::in_memory())).build().await.expect("engine")
}

fn kinds(engine: &Engine, id: &str) -> Vec<&'static str> {
    engine.history(id).expect("history").iter().map(|r| r.event().kind()).collect()
}

#[tokio::test]
async fn a_chain_with_a_flaky_task_completes_and_its_log_is_contiguous() {
    let engine = memory_engine().await;
    let workflow = engine.load_definition(&definition(CHAIN)).expect("valid");
    let id = engine
        .start(workflow, StartOptions { id: Some("run-1".into()), started_by: "ci".into(), ..StartOptions::default() })
        .await
        .expect("starts");
    assert_eq!(id, "run-1");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    assert!(matches!(&instance.phases[0].tasks[1].status, TaskStatus::Succeeded { attempt: 3, .. }));
    let history = engine.history(&id).expect("history");
    let seqs: Vec<u64> = history.iter().map(|r| r.seq()).collect();
    assert_eq!(seqs, (1..=history.len() as u64).collect::<Vec<_>>());
    let kinds = kinds(&engine, &id);
    assert_eq!(kinds.iter().filter(|k| **k == "RetryScheduled").count(), 2);
    // Phase two starts only after phase one completed.
    let one_done = kinds.iter().position(|k| *k == "PhaseCompleted").expect("one completes");
    let two_started = kinds.iter().rposition(|k| *k == "PhaseStarted").expect("two starts");
    assert!(one_done < two_started);
    assert_eq!(engine.list(Some(phasegate_engine::machine::EffectiveStatus::Completed)).expect("list").len(), 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn commands_that_do_not_fit_the_state_are_refused_and_append_nothing() {
    let engine = memory_engine().await;
    let gated = r#"
name = "gated"
[[phases]]
id = "p"
[[phases.tasks]]
id = "t"
agent = "noop"
[[phases.gates]]
id = "g"
approval = { approvers = ["alice"] }
"#;
    let workflow = engine.load_definition(&definition(gated)).expect("valid");
    let id = engine.start(workflow, StartOptions { id: Some("g-1".into()), ..StartOptions::default() }).await.expect("starts");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::AwaitingApproval);
    let before = engine.history(&id).expect("history").len();

    let error = engine.resume(&id, "op").await.expect_err("not halted");
    assert!(matches!(&error, Error::Rejected(r) if r.reason == "only a halted instance can be resumed"), "{error}");
    let error = engine.retry(&id, "op", Some("t")).await.expect_err("t succeeded");
    assert!(error.to_string().contains("only a failed instance, or one with a phase on hold, can be redriven"), "{error}");
    let error = engine.halt("nope", "op", "", false).await.expect_err("unknown");
    assert!(matches!(error, Error::UnknownInstance(_)), "{error}");
    assert_eq!(engine.history(&id).expect("history").len(), before, "refusals append nothing");

    engine.halt(&id, "op", "freeze", false).await.expect("halts");
    let error = engine.halt(&id, "op", "again", false).await.expect_err("already halted");
    assert!(error.to_string().contains("was halted by op"), "{error}");
    engine.resume(&id, "op").await.expect("resumes");
    engine.cancel(&id, "op", "abandoned").await.expect("cancels");
    let error = engine.cancel(&id, "op", "again").await.expect_err("finished");
    assert!(error.to_string().contains("already finished"), "{error}");
    assert_eq!(kinds(&engine, &id)[before..], ["Halted", "Resumed", "Cancelled"]);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_failed_instance_is_redriven_from_its_failed_task_only() {
    let engine = memory_engine().await;
    let toml = r#"
name = "redrive"
[[phases]]
id = "p"
[[phases.tasks]]
id = "ok"
agent = "noop"
[[phases.tasks]]
id = "bad"
agent = "exec"
depends_on = ["ok"]
params = { argv = ["sh", "-c", "test -e \"$MARKER\""], env = { MARKER = "MARKER_PATH" } }
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("fixed");
    let toml = toml.replace("MARKER_PATH", marker.to_str().expect("utf-8 path"));
    let workflow = engine.load_definition(&definition(&toml)).expect("valid");
    let id = engine.start(workflow, StartOptions::default()).await.expect("starts");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Failed);
    let ok_before = instance.phases[0].tasks[0].status.clone();
    std::fs::write(&marker, "").expect("fix the cause");
    engine.retry(&id, "op", None).await.expect("redrives");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    assert_eq!(instance.phases[0].tasks[0].status, ok_before, "the succeeded task did not run again");
    let redriven = engine.history(&id).expect("history").into_iter().find(|r| r.event().kind() == "Redriven").expect("recorded");
    assert_eq!(redriven.event(), &Event::Redriven(payload::Redriven { by: "op".into(), tasks: vec!["bad".into()], phase: None }));
    engine.shutdown().await;
}

#[tokio::test]
async fn bad_vars_and_unknown_agents_are_refused_at_start() {
    let engine = memory_engine().await;
    let workflow = engine.load_definition(&definition(CHAIN)).expect("valid");
    let options = StartOptions { vars: vec![("nope".into(), "1".into())], ..StartOptions::default() };
    let error = engine.start(workflow.clone(), options).await.expect_err("unknown var");
    assert!(error.to_string().contains("workflow `chain` has no variable `nope` (it has: label)"), "{error}");
    let typed = r#"
name = "typed"
[vars]
n = { type = "integer" }
[[phases]]
id = "p"
[[phases.tasks]]
id = "t"
agent = "noop"
"#;
    let workflow = engine.load_definition(&definition(typed)).expect("valid");
    let error = engine.start(workflow.clone(), StartOptions::default()).await.expect_err("missing var");
    assert!(error.to_string().contains("--var n=..."), "{error}");
    let options = StartOptions { vars: vec![("n".into(), "five".into())], ..StartOptions::default() };
    let error = engine.start(workflow, options).await.expect_err("wrong type");
    assert_eq!(error.to_string(), "--var n=five: expected an integer");
    let exec_string =
        "name = \"w\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"exec\"\nparams = { argv = \"rm -rf /\" }\n";
    let workflow = engine.load_definition(&definition(exec_string)).expect("valid shape");
    let error = engine.start(workflow, StartOptions::default()).await.expect_err("bad params");
    assert!(error.to_string().contains("task `t` (agent `exec`): parameter `argv` must be an array"), "{error}");
    assert!(engine.list(None).expect("list").is_empty(), "nothing was stored");
    engine.shutdown().await;
}

#[tokio::test]
async fn an_attempt_in_flight_at_shutdown_is_dispatched_again_with_the_same_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = dir.path().join("ledger");
    let toml = format!(
        r#"
name = "restart"
[[phases]]
id = "p"
[[phases.tasks]]
id = "slow"
agent = "exec"
params = {{ argv = ["sh", "-c", "echo \"$PHASEGATE_IDEMPOTENCY_KEY\" >> '{}'; sleep 0.5"] }}
"#,
        ledger.display()
    );
    let store_dir = dir.path().join("db");
    let id = {
        let engine = Engine::builder().store_path(&store_dir).build().await.expect("engine");
        let workflow = engine.load_definition(&definition(&toml)).expect("valid");
        let id = engine.start(workflow, StartOptions::default()).await.expect("starts");
        // Wait until the attempt has started, then stop the engine under it.
        for _ in 0..200 {
            if std::fs::read_to_string(&ledger).is_ok_and(|l| !l.is_empty()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        engine.shutdown().await;
        id
    };
    let engine = Engine::builder().store_path(&store_dir).build().await.expect("reopens");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    let dispatched = kinds(&engine, &id).iter().filter(|k| **k == "TaskDispatched").count();
    assert_eq!(dispatched, 1, "the re-dispatch after restart is not a new attempt");
    let keys: Vec<String> = std::fs::read_to_string(&ledger).expect("ledger").lines().map(str::to_owned).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], keys[1], "both runs carried the same idempotency key");
    assert!(engine.store().outbox(&id).expect("outbox").is_empty());
    engine.shutdown().await;
}

#[tokio::test]
async fn passive_mode_records_commands_without_running_anything() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::in_memory());
    let engine = Engine::builder().store(Arc::clone(&store)).mode(Mode::Passive).build().await.expect("engine");
    let workflow = engine.load_definition(&definition(CHAIN)).expect("valid");
    let id = engine.start(workflow, StartOptions::default()).await.expect("starts");
    engine.run_until_idle().await;
    assert_eq!(kinds(&engine, &id), ["InstanceStarted"]);
    engine.shutdown().await;
    let driver = Engine::builder().store(store).build().await.expect("driving engine");
    driver.run_until_idle().await;
    assert_eq!(driver.instance(&id).expect("loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    driver.shutdown().await;
}

/// An in-process agent that records how many of its attempts overlap.
struct Gauge {
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl phasegate_agents::Agent for Gauge {
    fn name(&self) -> &str {
        "gauge"
    }

    async fn run(
        &self,
        _request: phasegate_agents::TaskRequest,
        _context: phasegate_agents::TaskContext,
    ) -> Result<phasegate_agents::TaskOutput, phasegate_agents::Error> {
        use std::sync::atomic::Ordering;
        let current = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(current, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(phasegate_agents::TaskOutput::empty())
    }
}

#[tokio::test]
async fn per_agent_concurrency_limits_hold() {
    let gauge = Arc::new(Gauge { now: 0.into(), max: 0.into() });
    let mut registry = phasegate_agents::Registry::with_builtins();
    registry.register(gauge.clone());
    let engine =
        Engine::builder().store(Arc::new(MemoryStore::in_memory())).agents(registry).agent_limit("gauge", 3).build().await.expect("engine");
    let mut toml = String::from("name = \"fan\"\n[[phases]]\nid = \"p\"\n");
    for i in 0..24 {
        toml.push_str(&format!("[[phases.tasks]]\nid = \"t{i}\"\nagent = \"gauge\"\n"));
    }
    let workflow = engine.load_definition(&definition(&toml)).expect("valid with the registered agent");
    let id = engine.start(workflow, StartOptions::default()).await.expect("starts");
    engine.run_until_idle().await;
    assert_eq!(engine.instance(&id).expect("loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    let max = gauge.max.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=3).contains(&max), "{max} gauge attempts overlapped; the limit is 3");
    engine.shutdown().await;
}

#[tokio::test]
async fn timeouts_fail_the_attempt_and_halt_can_cancel_running_work() {
    let engine = memory_engine().await;
    let toml = r#"
name = "slow"
[[phases]]
id = "p"
[[phases.tasks]]
id = "stuck"
agent = "sleep"
params = { duration = "30s" }
timeout = "50ms"
[[phases.tasks]]
id = "long"
agent = "sleep"
params = { duration = "30s" }
"#;
    let workflow = engine.load_definition(&definition(toml)).expect("valid");
    let id = engine.start(workflow, StartOptions::default()).await.expect("starts");
    // Wait for the timeout to fail the instance (stuck has no retries).
    let mut events = engine.subscribe();
    loop {
        let note = events.recv().await.expect("events");
        if note.instance == id && note.record.event().kind() == "InstanceFailed" {
            break;
        }
    }
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert!(matches!(&instance.phases[0].tasks[0].status, TaskStatus::Failed { error, .. } if error == "timed out after 50ms"));
    assert!(
        matches!(&instance.phases[0].tasks[1].status, TaskStatus::Cancelled { .. }),
        "the failure cancelled the other attempt: {:?}",
        engine.history(&id).expect("h").iter().map(|r| r.event().describe()).collect::<Vec<_>>()
    );

    let toml =
        "name = \"halt\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"sleep\"\nparams = { duration = \"30s\" }\n";
    let workflow = engine.load_definition(&definition(toml)).expect("valid");
    let id = engine.start(workflow, StartOptions::default()).await.expect("starts");
    engine.halt(&id, "op", "maintenance", true).await.expect("halts");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Halted);
    assert!(matches!(instance.phases[0].tasks[0].status, TaskStatus::Cancelled { attempt: 1, .. }));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_record_that_does_not_decode_quarantines_its_instance_only() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::in_memory());
    let engine = Engine::builder().store(Arc::clone(&store)).mode(Mode::Passive).build().await.expect("engine");
    let workflow = engine.load_definition(&definition(CHAIN)).expect("valid");
    let good = engine.start(workflow.clone(), StartOptions { id: Some("good".into()), ..StartOptions::default() }).await.expect("starts");
    let bad = engine.start(workflow, StartOptions { id: Some("bad".into()), ..StartOptions::default() }).await.expect("starts");
    engine.shutdown().await;
    // A record from a future version lands in the bad instance's log.
    store
        .append(phasegate_store::Batch {
            instance: bad.clone(),
            expected_seq: 1,
            events: vec![br#"{"v":"9","seq":2}"#.to_vec()],
            ..Default::default()
        })
        .expect("raw append");
    let engine = Engine::builder().store(Arc::clone(&store)).build().await.expect("engine recovers");
    engine.run_until_idle().await;
    assert_eq!(engine.instance(&good).expect("good loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    let error = engine.instance(&bad).expect_err("quarantined");
    assert!(matches!(&error, Error::Quarantined { reason, .. } if reason.contains("event 2 of instance bad does not decode")), "{error}");
    assert_eq!(engine.list(Some(phasegate_engine::machine::EffectiveStatus::Quarantined)).expect("list").len(), 1);
    let refused = engine.resume(&bad, "op").await.expect_err("commands refuse it too");
    assert!(matches!(refused, Error::Quarantined { .. }), "{refused}");
    engine.shutdown().await;
}

#[tokio::test]
async fn signals_are_recorded_and_read_by_conditions() {
    let engine = memory_engine().await;
    let toml = r#"
name = "signals"
[signals.incident]
description = "data: { severity = P0 | P1 | P2 }"
[[phases]]
id = "launch"
[[phases.gates]]
id = "go"
approval = { approvers = ["op"], self_approval = true }
[[phases]]
id = "respond"
after = ["launch"]
[[phases.tasks]]
id = "hotfix"
agent = "noop"
when = "has(signals.incident) && signals.incident.severity == 'P2'"
"#;
    let workflow = engine.load_definition(&definition(toml)).expect("valid");
    let with = engine.start(workflow.clone(), StartOptions { id: Some("with".into()), ..StartOptions::default() }).await.expect("starts");
    let without = engine.start(workflow, StartOptions { id: Some("without".into()), ..StartOptions::default() }).await.expect("starts");
    engine.run_until_idle().await;

    let undeclared = engine.signal(&with, "outage", serde_json::json!({}), "pager").await.expect_err("undeclared");
    assert!(undeclared.to_string().contains("declares no signal `outage` (declared signals: incident)"), "{undeclared}");
    engine.signal(&with, "incident", serde_json::json!({"severity": "P2", "id": "INC-7"}), "pager").await.expect("recorded");
    for id in [&with, &without] {
        let request = phasegate_engine::runtime::DecisionRequest {
            kind: phasegate_engine::machine::DecisionKind::Approve,
            principal: "op".into(),
            auth: phasegate_engine::machine::Authentication::Local,
            comment: String::new(),
            request_id: String::new(),
            inputs: Default::default(),
        };
        engine.decide(id, None, request).await.expect("approves");
    }
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&with).expect("loads");
    assert_eq!(instance.signals["incident"]["id"], "INC-7");
    assert!(matches!(instance.phases[1].tasks[0].status, TaskStatus::Succeeded { .. }), "P2 → the hotfix ran");
    let (instance, _) = engine.instance(&without).expect("loads");
    assert!(matches!(instance.phases[1].tasks[0].status, TaskStatus::Skipped { .. }), "no incident → no hotfix");
    let finished = engine.signal(&without, "incident", serde_json::json!({}), "pager").await.expect_err("completed");
    assert!(finished.to_string().contains("signals go to instances that have not finished"), "{finished}");
    let signals = engine.history(&with).expect("history").iter().filter(|r| r.event().kind() == "SignalReceived").count();
    assert_eq!(signals, 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_plugin_task_runs_through_the_json_protocol() {
    let engine = memory_engine().await;
    let plugin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/plugin.py").display().to_string();
    let toml = format!(
        "name = \"plugged\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"greet\"\nagent = \"plugin\"\nparams = {{ command = [\"python3\", {plugin:?}], name = \"{{{{ instance.id }}}}\" }}\n"
    );
    let workflow = engine.load_definition(&definition(&toml)).expect("valid");
    let id = engine.start(workflow, StartOptions { id: Some("plug-1".into()), ..StartOptions::default() }).await.expect("starts");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    match &instance.phases[0].tasks[0].status {
        TaskStatus::Succeeded { output, .. } => {
            assert_eq!(output["greeting"], "hello, plug-1", "params reach the plugin, placeholders rendered");
            assert_eq!(output["key"], "plug-1/p.1/greet/1");
        }
        other => panic!("{other:?}"),
    }
    engine.shutdown().await;
}

/// A store that works until it is told to make the next batch panic: a
/// stand-in for any bug that kills the driver task.
#[derive(Debug)]
struct Sabotaged {
    inner: MemoryStore,
    armed: std::sync::atomic::AtomicBool,
}

impl Store for Sabotaged {
    fn submit(&self, batch: phasegate_store::Batch, done: phasegate_store::Done) {
        if self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            panic!("sabotaged store");
        }
        self.inner.submit(batch, done);
    }
    fn head(&self, instance: &str) -> phasegate_store::Result<Option<phasegate_store::Head>> {
        self.inner.head(instance)
    }
    fn load(&self, instance: &str) -> phasegate_store::Result<Option<phasegate_store::Loaded>> {
        self.inner.load(instance)
    }
    fn events(&self, instance: &str, from: u64) -> phasegate_store::Result<Vec<(u64, Vec<u8>)>> {
        self.inner.events(instance, from)
    }
    fn instances(&self) -> phasegate_store::Result<Vec<(String, phasegate_store::Head)>> {
        self.inner.instances()
    }
    fn instances_with_status(&self, status: &str) -> phasegate_store::Result<Vec<String>> {
        self.inner.instances_with_status(status)
    }
    fn summary(&self, instance: &str) -> phasegate_store::Result<Option<Vec<u8>>> {
        self.inner.summary(instance)
    }
    fn index_range(&self, index: &str, start: &[u8], end: &[u8], limit: usize) -> phasegate_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.index_range(index, start, end, limit)
    }
    fn index_prefix(&self, index: &str, prefix: &[u8]) -> phasegate_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.index_prefix(index, prefix)
    }
    fn scan_index(&self, index: &str, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> phasegate_store::Result<()> {
        self.inner.scan_index(index, prefix, visit)
    }
    fn scan_summaries(&self, visit: &mut dyn FnMut(&str, &[u8]) -> bool) -> phasegate_store::Result<()> {
        self.inner.scan_summaries(visit)
    }
    fn quarantined(&self) -> phasegate_store::Result<Vec<(String, String)>> {
        self.inner.quarantined()
    }
    fn outbox(&self, instance: &str) -> phasegate_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.outbox(instance)
    }
    fn outbox_instances(&self) -> phasegate_store::Result<Vec<String>> {
        self.inner.outbox_instances()
    }
    fn put_definition(&self, hash: &str, bytes: &[u8]) -> phasegate_store::Result<()> {
        self.inner.put_definition(hash, bytes)
    }
    fn definition(&self, hash: &str) -> phasegate_store::Result<Option<Vec<u8>>> {
        self.inner.definition(hash)
    }
    fn quarantine(&self, instance: &str, reason: &str) -> phasegate_store::Result<()> {
        self.inner.quarantine(instance, reason)
    }
    fn quarantine_reason(&self, instance: &str) -> phasegate_store::Result<Option<String>> {
        self.inner.quarantine_reason(instance)
    }
    fn put_setting(&self, key: &str, value: Option<&[u8]>) -> phasegate_store::Result<()> {
        self.inner.put_setting(key, value)
    }
    fn settings(&self, prefix: &str) -> phasegate_store::Result<Vec<(String, Vec<u8>)>> {
        self.inner.settings(prefix)
    }
}

/// Regression (hardening issue): a driver task that died left a server
/// answering `/healthz` with "ok" while every write failed. The engine now
/// reports itself failed, with why, and `failed()` resolves so `serve` stops.
#[tokio::test]
async fn regression_a_dead_driver_task_makes_the_engine_unhealthy() {
    let store = Arc::new(Sabotaged { inner: MemoryStore::in_memory(), armed: std::sync::atomic::AtomicBool::new(false) });
    let engine = Engine::builder().store(Arc::clone(&store) as Arc<dyn Store>).build().await.expect("engine");
    let workflow = engine.load_definition(&definition(CHAIN)).expect("valid");
    engine.start(workflow.clone(), StartOptions { id: Some("before".into()), ..StartOptions::default() }).await.expect("starts");
    engine.run_until_idle().await;
    assert_eq!(engine.health(), Ok(()));
    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = engine.start(workflow, StartOptions { id: Some("after".into()), ..StartOptions::default() }).await;
    assert!(matches!(refused, Err(Error::ShutDown)), "{refused:?}");
    let why = tokio::time::timeout(std::time::Duration::from_secs(10), engine.failed()).await.expect("the failure is reported");
    assert!(why.contains("driver task stopped") && why.contains("sabotaged store"), "{why}");
    assert!(engine.health().is_err_and(|h| h.contains("driver task stopped")));
}

#[tokio::test]
async fn the_report_agent_renders_the_instance_report_to_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reports/ops/MONTHLY.md");
    let toml = format!(
        r#"
name = "monthly"
[[phases]]
id = "measure"
[[phases.tasks]]
id = "metrics"
agent = "noop"
params = {{ output = {{ error_ratio = 0.004, sources = {{ error_ratio = "prometheus, 30 days" }} }} }}
[[phases]]
id = "publish"
after = ["measure"]
[[phases.tasks]]
id = "ops-report"
agent = "report"
params = {{ kind = "ops", path = "{}", since = "2000-01" }}
"#,
        path.display()
    );
    let engine = memory_engine().await;
    let workflow = engine.load_definition(&definition(&toml)).expect("the report agent is built in");
    let id = engine.start(workflow, StartOptions { id: Some("m-1".into()), ..StartOptions::default() }).await.expect("starts");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    let written = std::fs::read_to_string(&path).expect("the report was written");
    assert!(written.contains("Ops report") || written.contains("ops report"), "{written}");
    assert!(written.contains("0.004") && written.contains("prometheus, 30 days"), "the measurement and its source: {written}");
    let TaskStatus::Succeeded { output, .. } = &instance.phases[1].tasks[0].status else {
        panic!("the report task succeeded: {:?}", instance.phases[1].tasks[0].status)
    };
    assert_eq!(output["kind"], "ops");
    assert_eq!(output["bytes"].as_u64(), Some(written.len() as u64));
    assert_eq!(output["period"]["from"], "2000-01-01T00:00:00.000Z");

    // Bad parameters are refused at start, naming the parameter; nothing is stored.
    let bad = toml.replace("kind = \"ops\"", "kind = \"weekly\"");
    let workflow = engine.load_definition(&definition(&bad)).expect("parses");
    let refused = engine.start(workflow, StartOptions { id: Some("m-2".into()), ..StartOptions::default() }).await.expect_err("bad kind");
    assert!(refused.to_string().contains("parameter `kind`"), "{refused}");
    assert!(engine.instance("m-2").is_err(), "nothing was stored");
}

/// Issue 18 item 4: each stored record links to the one before it, so an
/// edited, deleted or replaced event is found and named, and a head taken
/// from a report proves the log it was made from is still there.
#[tokio::test]
async fn an_edited_or_deleted_event_breaks_the_audit_chain_and_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let open = || async { Engine::builder().store_path(dir.path()).mode(Mode::Passive).build().await.expect("engine") };
    let engine = Engine::builder().store_path(dir.path()).build().await.expect("engine");
    let workflow = engine.load_definition(&definition(CHAIN)).expect("valid");
    engine.start(workflow, StartOptions { id: Some("a".into()), ..StartOptions::default() }).await.expect("starts");
    engine.run_until_idle().await;
    let audit = engine.audit("a", None).expect("audit");
    assert!(audit.ok() && audit.unlinked == 0, "{audit:?}");
    let head = audit.head.clone().expect("a head");
    assert_eq!(head.seq, engine.history("a").expect("history").len() as u64);
    let (instance, _) = engine.instance("a").expect("loads");
    assert_eq!(instance.chain, head.hash, "the state carries the chain's end");
    engine.shutdown().await;
    drop(engine);

    let key = |seq: u64| {
        let mut key = b"e:a\0".to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        key
    };
    let tamper = |change: &dyn Fn(&sled::Db)| {
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        change(&db);
        db.flush().expect("flush");
    };
    // Event 2 edited (its time moved by a millisecond): event 3's link no longer fits.
    let original = {
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        db.get(key(2)).expect("read").expect("event 2").to_vec()
    };
    tamper(&|db| {
        let mut record: serde_json::Value = serde_json::from_slice(&original).expect("json");
        record["at"] = serde_json::json!(record["at"].as_u64().expect("at") + 1);
        db.insert(key(2), serde_json::to_vec(&record).expect("json")).expect("write");
    });
    let engine = open().await;
    let broken = engine.audit("a", None).expect("audit");
    assert!(broken.broken.as_deref().is_some_and(|b| b.starts_with("event 3 does not match the chain")), "{broken:?}");
    engine.shutdown().await;
    drop(engine);

    // Put back, it holds again; a head that names another hash does not.
    tamper(&|db| {
        db.insert(key(2), original.clone()).expect("write");
    });
    let engine = open().await;
    assert!(engine.audit("a", Some(&head)).expect("audit").ok(), "the original log matches the head it had");
    let forged = phasegate_engine::runtime::audit::ChainHead { seq: head.seq, hash: "0".repeat(64) };
    let mismatch = engine.audit("a", Some(&forged)).expect("audit");
    assert!(mismatch.broken.as_deref().is_some_and(|b| b.contains("does not match the head given")), "{mismatch:?}");
    engine.shutdown().await;
    drop(engine);

    // The last event deleted: the log no longer reaches the head.
    tamper(&|db| {
        db.remove(key(head.seq)).expect("remove");
    });
    let engine = open().await;
    let deleted = engine.audit("a", None).expect("audit");
    assert!(deleted.broken.as_deref().is_some_and(|b| b.contains(&format!("the log ends at event {}", head.seq - 1))), "{deleted:?}");
    engine.shutdown().await;
}

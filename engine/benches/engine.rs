//! Throughput benchmarks on the sled store with durability on (nothing is
//! acknowledged before its flush), against the storage floor measured in the
//! same run.
//!
//! `cargo bench -p phasegate-engine --bench engine` runs every scenario
//! `PHASEGATE_BENCH_RUNS` times (default 3) and writes
//! `target/bench-results.json`; docs/benchmarks.md explains the figures.
//! Never a pass/fail test: machines are noisy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use phasegate_engine::model::{Format, Source};
use phasegate_engine::{Engine, StartOptions};
use phasegate_store::{SledStore, Store};
use serde_json::{json, Value};

/// Raw sled: `records` appends of a record like an event, flushed every `per_flush`.
fn floor(records: usize, per_flush: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(dir.path().join("floor")).expect("sled");
    let record = vec![7u8; 200];
    let started = Instant::now();
    for i in 0..records {
        db.insert((i as u64).to_be_bytes(), record.as_slice()).expect("insert");
        if (i + 1) % per_flush == 0 {
            db.flush().expect("flush");
        }
    }
    db.flush().expect("flush");
    started.elapsed()
}

fn chain(tasks: usize) -> String {
    let mut toml = String::from("name = \"chain\"\n[[phases]]\nid = \"p\"\n");
    for i in 0..tasks {
        let depends = if i == 0 { String::new() } else { format!("depends_on = [\"t{}\"]\n", i - 1) };
        toml.push_str(&format!("[[phases.tasks]]\nid = \"t{i}\"\nagent = \"noop\"\n{depends}"));
    }
    toml
}

fn fan_out(tasks: usize) -> String {
    let mut toml = String::from("name = \"fan\"\n[[phases]]\nid = \"p\"\n");
    let all: Vec<String> = (0..tasks).map(|i| format!("\"t{i}\"")).collect();
    for i in 0..tasks {
        toml.push_str(&format!("[[phases.tasks]]\nid = \"t{i}\"\nagent = \"noop\"\n"));
    }
    toml.push_str(&format!("[[phases.tasks]]\nid = \"join\"\nagent = \"noop\"\ndepends_on = [{}]\n", all.join(", ")));
    toml
}

/// Starts `instances` instances of `definition` on a fresh sled store, runs
/// them to completion, and returns the time and the events appended.
async fn run(definition: &str, instances: usize) -> (Duration, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db")).expect("store"));
    let engine = Engine::builder().store(Arc::clone(&store)).max_concurrent_tasks(1024).build().await.expect("engine");
    let workflow = engine.load_definition(&Source::from_text(definition, Format::Toml)).expect("valid");
    let started = Instant::now();
    let mut handles = Vec::with_capacity(instances);
    for i in 0..instances {
        handles.push(engine.start(workflow.clone(), StartOptions { id: Some(format!("i{i}")), ..StartOptions::default() }));
    }
    for handle in handles {
        handle.await.expect("starts");
    }
    engine.run_until_idle().await;
    let elapsed = started.elapsed();
    let events = store.stats().map_or(0, |s| s.events.load(std::sync::atomic::Ordering::Relaxed));
    for i in 0..instances.min(3) {
        let (instance, _) = engine.instance(&format!("i{i}")).expect("loads");
        assert_eq!(instance.effective_status(), "completed", "the benchmark checks its own work");
    }
    engine.shutdown().await;
    (elapsed, events)
}

fn stats(samples: &mut [f64]) -> Value {
    samples.sort_by(f64::total_cmp);
    json!({"min": samples[0], "median": samples[samples.len() / 2], "max": samples[samples.len() - 1]})
}

fn main() {
    let runs: usize = std::env::var("PHASEGATE_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut results = serde_json::Map::new();

    let mut one_by_one = Vec::new();
    let mut batched = Vec::new();
    for _ in 0..runs {
        one_by_one.push(2_000.0 / floor(2_000, 1).as_secs_f64());
        batched.push(100_000.0 / floor(100_000, 1_000).as_secs_f64());
    }
    let flush_each = stats(&mut one_by_one);
    let flush_batched = stats(&mut batched);
    println!(
        "floor: {:.0} records/s flushed one by one, {:.0} records/s flushed per 1,000 (median)",
        flush_each["median"].as_f64().unwrap_or(0.0),
        flush_batched["median"].as_f64().unwrap_or(0.0)
    );
    let floor_per_flush = 1.0 / flush_each["median"].as_f64().unwrap_or(1.0);
    results.insert("floor_records_per_s_flush_each".into(), flush_each);
    results.insert("floor_records_per_s_flush_per_1000".into(), flush_batched);

    for (name, definition, instances, tasks_each) in
        [("chain", chain(1_000), 1, 1_000usize), ("fan_out", fan_out(1_000), 1, 1_001), ("many", chain(10), 1_000, 10)]
    {
        let mut seconds = Vec::new();
        let mut transitions = Vec::new();
        for _ in 0..runs {
            let (elapsed, events) = runtime.block_on(run(&definition, instances));
            seconds.push(elapsed.as_secs_f64());
            transitions.push(events as f64 / elapsed.as_secs_f64());
        }
        let time = stats(&mut seconds);
        let rate = stats(&mut transitions);
        // The floor for a strictly sequential chain: one flush per step.
        let floor_s = floor_per_flush * (instances * tasks_each) as f64;
        let median = time["median"].as_f64().unwrap_or(0.0);
        println!(
            "{name}: {instances} instance(s) x {tasks_each} tasks: median {median:.3} s (min {:.3}, max {:.3}); {:.0} events/s; {:.2}x the one-flush-per-task floor",
            time["min"].as_f64().unwrap_or(0.0),
            time["max"].as_f64().unwrap_or(0.0),
            rate["median"].as_f64().unwrap_or(0.0),
            median / floor_s
        );
        results.insert(
            name.into(),
            json!({"instances": instances, "tasks_each": tasks_each, "seconds": time, "events_per_s": rate, "ratio_to_flush_per_task_floor": median / floor_s}),
        );
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-results.json");
    let _ = std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(results)).unwrap_or_default());
    println!("results: {}", path.display());
}

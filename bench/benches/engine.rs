//! phasegate's benchmarks, in one run so every figure has its floor and its
//! peer beside it: the raw sled floor, the engine's chain, fan-out and
//! many-instances shapes on sled with durability on (nothing acknowledged
//! before its flush), the same chain and fan-out on treadle with SQLite,
//! and recovery of a large store by a fresh process.
//!
//! `cargo bench -p phasegate-bench` runs every scenario
//! `PHASEGATE_BENCH_RUNS` times (default 3) and writes
//! `target/bench-results.json`. `PHASEGATE_BENCH_ONLY=floor,shapes,cluster,peer,recovery`
//! picks scenarios (`shapes` is `chain,fan_out,many`; without `floor` the
//! ratios are NaN); `PHASEGATE_BENCH_INSTANCES` sets the recovery store's
//! size (default 100,000, a tenth of them running);
//! `PHASEGATE_BENCH_POPULATE=DIR` only fills a store of that size, and
//! `PHASEGATE_BENCH_RECOVER=DIR` (with `PHASEGATE_BENCH_WAITING` and
//! `PHASEGATE_BENCH_RUNNING`) only recovers it, for profiling. docs/benchmarks.md
//! explains the figures. Never a pass/fail test: machines are noisy.

use std::path::{Path, PathBuf};

use phasegate_bench::{cluster, floor, median, peer, recovery, shapes, stats, unix_nanos};
use serde_json::{json, Map, Value};

const RECOVER: &str = "PHASEGATE_BENCH_RECOVER";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    // The fresh process of the recovery scenario.
    if let Ok(path) = std::env::var(RECOVER) {
        let measured = runtime.block_on(recovery::measure(
            Path::new(&path),
            env_usize("PHASEGATE_BENCH_WAITING", 0),
            env_usize("PHASEGATE_BENCH_RUNNING", 0),
        ));
        println!("{measured}");
        std::process::exit(0);
    }
    // A store to profile recovery on: populate it once, then run the
    // recovery process on (a copy of) it under a profiler.
    if let Ok(path) = std::env::var("PHASEGATE_BENCH_POPULATE") {
        let total = env_usize("PHASEGATE_BENCH_INSTANCES", 100_000);
        let took = runtime.block_on(recovery::populate(Path::new(&path), total - total / 10, total / 10));
        println!("populated {path} with {total} instances in {:.1} s", took.as_secs_f64());
        std::process::exit(0);
    }
    let runs = env_usize("PHASEGATE_BENCH_RUNS", 3).max(1);
    let only = std::env::var("PHASEGATE_BENCH_ONLY").unwrap_or_else(|_| "floor,shapes,cluster,peer,recovery".to_owned());
    let wanted =
        |name: &str| only.split(',').any(|o| o.trim() == name || (o.trim() == "shapes" && ["chain", "fan_out", "many"].contains(&name)));
    let mut results = Map::new();
    results.insert("runs".into(), json!(runs));

    // The floor: what sled costs with nothing of ours on top.
    let mut one_by_one = Vec::new();
    let mut batched = Vec::new();
    for _ in 0..if wanted("floor") { runs } else { 0 } {
        one_by_one.push(2_000.0 / floor(2_000, 1).as_secs_f64());
        batched.push(100_000.0 / floor(100_000, 1_000).as_secs_f64());
    }
    let flush_each = stats(&mut one_by_one);
    let flush_batched = stats(&mut batched);
    if wanted("floor") {
        println!(
            "floor: {:.0} records/s flushed one by one, {:.0} records/s flushed per 1,000 (median of {runs})",
            median(&flush_each),
            median(&flush_batched)
        );
    }
    // Without the floor (profiling one scenario) the ratios are NaN.
    let one_flush_s = 1.0 / median(&flush_each);
    let batched_record_s = 1.0 / median(&flush_batched);
    results.insert("floor_records_per_s_flush_each".into(), flush_each);
    results.insert("floor_records_per_s_flush_per_1000".into(), flush_batched);

    let mut ours = Map::new();
    for (name, definition, instances, tasks_each) in [
        ("chain", shapes::chain(1_000), 1, 1_000usize),
        ("fan_out", shapes::fan_out(1_000), 1, 1_001),
        ("many", shapes::chain(10), 1_000, 10),
    ] {
        if wanted(name) {
            let mut seconds = Vec::new();
            let mut transitions = Vec::new();
            let mut events_per_batch = Vec::new();
            for _ in 0..runs {
                let run = runtime.block_on(shapes::run(&definition, instances));
                seconds.push(run.elapsed.as_secs_f64());
                // A task transition: dispatched, or finished.
                transitions.push((2 * instances * tasks_each) as f64 / run.elapsed.as_secs_f64());
                events_per_batch.push(run.events as f64 / run.flushes.max(1) as f64);
            }
            let time = stats(&mut seconds);
            let rate = stats(&mut transitions);
            let grouping = stats(&mut events_per_batch);
            let tasks = (instances * tasks_each) as f64;
            // Strictly sequential with one flush per task; and every transition in batches of 1,000.
            let to_flush_each = median(&time) / (one_flush_s * tasks);
            let to_batched = median(&time) / (batched_record_s * 2.0 * tasks);
            println!(
                "{name}: {instances} instance(s) x {tasks_each} tasks: median {:.3} s (min {:.3}, max {:.3}); {:.0} task transitions/s; \
                 {:.1} events per flush; {to_flush_each:.2}x one flush per task, {to_batched:.1}x the batched floor",
                median(&time),
                time["min"].as_f64().unwrap_or(0.0),
                time["max"].as_f64().unwrap_or(0.0),
                median(&rate),
                median(&grouping),
            );
            ours.insert(name.into(), json!(median(&time)));
            results.insert(
                name.into(),
                json!({"instances": instances, "tasks_each": tasks_each, "seconds": time, "task_transitions_per_s": rate,
                       "events_per_flush": grouping, "ratio_to_one_flush_per_task": to_flush_each, "ratio_to_batched_floor": to_batched}),
            );
        }
    }

    if wanted("cluster") {
        match cluster::Postgres::start() {
            Err(why) => {
                println!("cluster: not measured: no PostgreSQL ({why}); scripts/install-deps installs it");
                results.insert("cluster".into(), json!({"not_measured": why}));
            }
            Ok(postgres) => {
                let mut figures = Map::new();
                for (name, definition, instances, tasks_each) in [
                    ("chain", shapes::chain(1_000), 1, 1_000usize),
                    ("fan_out", shapes::fan_out(1_000), 1, 1_001),
                    ("many", shapes::chain(10), 1_000, 10),
                ] {
                    let mut by_nodes = Map::new();
                    let mut one_node = f64::NAN;
                    for nodes in 1..=3usize {
                        let mut transitions = Vec::new();
                        for round in 0..runs {
                            let url = postgres.fresh_database(&format!("bench_{name}_{nodes}_{round}"));
                            let run = runtime.block_on(cluster::run(&url, &definition, instances, nodes));
                            transitions.push((2 * instances * tasks_each) as f64 / run.elapsed.as_secs_f64());
                        }
                        let rate = stats(&mut transitions);
                        if nodes == 1 {
                            one_node = median(&rate);
                        }
                        let sled = ours.get(name).and_then(Value::as_f64).map(|s| (2 * instances * tasks_each) as f64 / s);
                        println!(
                            "cluster {name}: {nodes} node(s) on PostgreSQL: {:.0} task transitions/s ({:.2}x one node{})",
                            median(&rate),
                            median(&rate) / one_node,
                            sled.map(|s| format!(", {:.2}x sled in this run", median(&rate) / s)).unwrap_or_default()
                        );
                        by_nodes
                            .insert(nodes.to_string(), json!({"task_transitions_per_s": rate, "over_one_node": median(&rate) / one_node}));
                    }
                    figures.insert(name.into(), Value::Object(by_nodes));
                }
                let url = postgres.fresh_database("bench_takeover");
                let took = cluster::takeover(&url, cluster::LEASE);
                println!(
                    "cluster takeover: the two survivors held every shard {:.2} s after a node was killed with -9 (lease {} s)",
                    took.as_secs_f64(),
                    cluster::LEASE.as_secs()
                );
                figures.insert("takeover_s".into(), json!(took.as_secs_f64()));
                figures.insert("lease_s".into(), json!(cluster::LEASE.as_secs()));
                results.insert("cluster".into(), Value::Object(figures));
            }
        }
    }

    if wanted("peer") {
        let mut peer_results = Map::new();
        for (name, workflow) in [("chain", peer::chain(1_000)), ("fan_out", peer::fan_out(1_000))] {
            let mut seconds = Vec::new();
            let mut durability = (String::new(), 0);
            for _ in 0..runs {
                let dir = tempfile::tempdir().expect("tempdir");
                seconds.push(runtime.block_on(peer::run(&workflow, dir.path())).as_secs_f64());
                durability = peer::sqlite_durability(&dir.path().join("treadle.db"));
            }
            let time = stats(&mut seconds);
            let ratio = ours.get(name).and_then(Value::as_f64).map(|ours| median(&time) / ours);
            println!(
                "treadle {name}: median {:.3} s (min {:.3}, max {:.3}); SQLite journal_mode={} synchronous={}{}",
                median(&time),
                time["min"].as_f64().unwrap_or(0.0),
                time["max"].as_f64().unwrap_or(0.0),
                durability.0,
                durability.1,
                ratio.map(|r| format!("; phasegate is {r:.1}x faster")).unwrap_or_default()
            );
            peer_results.insert(
                name.into(),
                json!({"seconds": time, "journal_mode": durability.0, "synchronous": durability.1, "peer_over_phasegate": ratio}),
            );
        }
        results.insert("peer_treadle_sqlite".into(), Value::Object(peer_results));
    }

    if wanted("recovery") {
        let total = env_usize("PHASEGATE_BENCH_INSTANCES", 100_000);
        let running = total / 10;
        let waiting = total - running;
        let template = tempfile::tempdir().expect("tempdir");
        let populated = runtime.block_on(recovery::populate(&template.path().join("db"), waiting, running));
        let bytes = dir_size(&template.path().join("db"));
        println!(
            "recovery: populated {waiting} waiting + {running} running instances in {:.1} s ({:.0} MiB on disk)",
            populated.as_secs_f64(),
            bytes as f64 / 1_048_576.0
        );
        let mut ready = Vec::new();
        let mut first_dispatch = Vec::new();
        let mut all_dispatched = Vec::new();
        let mut approvals = Vec::new();
        let mut status_all = Vec::new();
        let mut status_one = Vec::new();
        let mut console_inbox = Vec::new();
        let mut console_instances = Vec::new();
        let mut per_instance = Vec::new();
        for _ in 0..runs {
            let copy = tempfile::tempdir().expect("tempdir");
            recovery::copy_dir(&template.path().join("db"), &copy.path().join("db")).expect("copy");
            let measured = recover_in_fresh_process(&copy.path().join("db"), waiting, running);
            let since = |field: &str, spawned: u128| {
                measured[field].as_str().and_then(|v| v.parse::<u128>().ok()).map_or(f64::NAN, |at| at.saturating_sub(spawned) as f64 / 1e9)
            };
            let spawned = measured["spawned_at"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
            ready.push(since("ready_at", spawned));
            first_dispatch.push(since("first_dispatch_at", spawned));
            all_dispatched.push(since("all_dispatched_at", spawned));
            // Five calls each: the median, which the first call's cold cache does not move.
            let warm = |field: &str| {
                let mut all: Vec<f64> =
                    measured[field].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
                median(&stats(&mut all))
            };
            approvals.push(warm("approvals_s"));
            status_all.push(warm("status_all_s"));
            status_one.push(warm("status_one_s"));
            console_inbox.push(warm("console_inbox_s"));
            console_instances.push(warm("console_instances_s"));
            let start = measured["resident_at_start"].as_f64().unwrap_or(0.0);
            per_instance.push((measured["resident_at_ready"].as_f64().unwrap_or(0.0) - start) / total as f64);
        }
        let figures = json!({
            "waiting": waiting, "running": running, "populate_s": populated.as_secs_f64(), "store_bytes": bytes,
            "ready_s": stats(&mut ready), "first_dispatch_s": stats(&mut first_dispatch), "all_dispatched_s": stats(&mut all_dispatched),
            "approvals_s": stats(&mut approvals), "status_all_s": stats(&mut status_all), "status_one_s": stats(&mut status_one),
            "console_inbox_s": stats(&mut console_inbox), "console_instances_s": stats(&mut console_instances),
            "resident_bytes_per_instance_at_ready": stats(&mut per_instance),
        });
        println!(
            "recovery of {total}: ready {:.3} s, first dispatch {:.3} s, all {running} dispatched {:.3} s after process start; \
             approvals over {waiting} {:.1} ms; status of all {:.1} ms, of one {:.2} ms; console inbox {:.1} ms, instance list {:.1} ms \
             (first pages, over HTTP); {:.0} bytes resident per instance at ready",
            median(&figures["ready_s"]),
            median(&figures["first_dispatch_s"]),
            median(&figures["all_dispatched_s"]),
            median(&figures["approvals_s"]) * 1e3,
            median(&figures["status_all_s"]) * 1e3,
            median(&figures["status_one_s"]) * 1e3,
            median(&figures["console_inbox_s"]) * 1e3,
            median(&figures["console_instances_s"]) * 1e3,
            median(&figures["resident_bytes_per_instance_at_ready"]),
        );
        results.insert("recovery".into(), figures);
    }

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-results.json");
    match std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(results)).unwrap_or_default()) {
        Ok(()) => println!("results: {}", path.display()),
        Err(error) => eprintln!("cannot write {}: {error}", path.display()),
    }
}

/// Runs this binary again as the recovery scenario's fresh process and
/// returns what it measured, with the moment it was started.
fn recover_in_fresh_process(path: &Path, waiting: usize, running: usize) -> Value {
    let exe: PathBuf = std::env::current_exe().expect("own path");
    let spawned_at = unix_nanos();
    let output = std::process::Command::new(exe)
        .env(RECOVER, path)
        .env("PHASEGATE_BENCH_WAITING", waiting.to_string())
        .env("PHASEGATE_BENCH_RUNNING", running.to_string())
        .output()
        .expect("runs");
    assert!(output.status.success(), "recovery process failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut measured: Value = serde_json::from_slice(&output.stdout).expect("the recovery process prints JSON");
    measured["spawned_at"] = json!(spawned_at.to_string());
    measured
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => dir_size(&e.path()),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}

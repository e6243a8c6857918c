//! The engine's throughput shapes: a chain, a fan-out and many instances,
//! on a fresh sled store with durability on.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phasegate_engine::model::{Format, Source};
use phasegate_engine::{Engine, StartOptions};
use phasegate_store::{SledStore, Store};

/// One phase of `tasks` no-op tasks, each depending on the one before.
pub fn chain(tasks: usize) -> String {
    let mut toml = String::from("name = \"chain\"\n[[phases]]\nid = \"p\"\n");
    for i in 0..tasks {
        let depends = if i == 0 { String::new() } else { format!("depends_on = [\"t{}\"]\n", i - 1) };
        toml.push_str(&format!("[[phases.tasks]]\nid = \"t{i}\"\nagent = \"noop\"\n{depends}"));
    }
    toml
}

/// One phase of `tasks` independent no-op tasks and a join that depends on all of them.
pub fn fan_out(tasks: usize) -> String {
    let mut toml = String::from("name = \"fan\"\n[[phases]]\nid = \"p\"\n");
    let all: Vec<String> = (0..tasks).map(|i| format!("\"t{i}\"")).collect();
    for i in 0..tasks {
        toml.push_str(&format!("[[phases.tasks]]\nid = \"t{i}\"\nagent = \"noop\"\n"));
    }
    toml.push_str(&format!("[[phases.tasks]]\nid = \"join\"\nagent = \"noop\"\ndepends_on = [{}]\n", all.join(", ")));
    toml
}

/// What one run of a shape measured.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// From the first start to every instance completed and durable.
    pub elapsed: Duration,
    /// Events appended (durably) in that time.
    pub events: u64,
    /// Flushes of the group commit in that time.
    pub flushes: u64,
}

/// Starts `instances` instances of `definition` on a fresh sled store and
/// runs them to completion; checks they completed.
pub async fn run(definition: &str, instances: usize) -> Run {
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
    let (events, flushes) = store.stats().map_or((0, 0), |s| (s.events.load(Ordering::Relaxed), s.flushes.load(Ordering::Relaxed)));
    for i in 0..instances.min(3) {
        let (instance, _) = engine.instance(&format!("i{i}")).expect("loads");
        assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed, "the benchmark checks its own work");
    }
    engine.shutdown().await;
    Run { elapsed, events, flushes }
}

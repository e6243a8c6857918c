//! The evidence conditions read, built from an instance's state.

use serde_json::{json, Map, Value};

use super::{Instance, TaskStatus};

/// The evidence object: `vars`, `tasks`, `phases`, `metrics` (watches of
/// the current phase attempts) and `signals`. A task that has not produced anything has only
/// its `status` and `attempts`, so conditions reading its output are
/// inconclusive rather than false.
pub fn evidence(instance: &Instance) -> Map<String, Value> {
    let mut tasks = Map::new();
    let mut phases = Map::new();
    let mut metrics = Map::new();
    for phase in &instance.phases {
        let status = phase.status.kind();
        phases.insert(phase.id.clone(), json!({"status": status, "attempt": phase.attempt, "loops": phase.loops}));
        for watch in &phase.watches {
            let mut entry = Map::new();
            // No sample yet: `value` is absent, so conditions reading it are inconclusive.
            if let Some(value) = watch.samples.last().and_then(|s| s.value) {
                entry.insert("value".to_owned(), json!(value));
            }
            entry.insert("firing".to_owned(), Value::from(watch.firing));
            entry.insert("samples".to_owned(), watch.samples.iter().filter_map(|s| s.value).map(|v| json!(v)).collect());
            if let Some(since) = watch.breaching_since {
                entry.insert("breaching_since".to_owned(), Value::from(since.0));
            }
            metrics.insert(watch.id.clone(), Value::Object(entry));
        }

        for task in &phase.tasks {
            let mut entry = Map::new();
            entry.insert("status".to_owned(), Value::from(task.status.kind()));
            entry.insert("attempts".to_owned(), Value::from(task.attempts));
            match &task.status {
                TaskStatus::Succeeded { output, duration_ms, .. } => {
                    entry.insert("output".to_owned(), output.clone());
                    entry.insert("duration_ms".to_owned(), Value::from(*duration_ms));
                }
                TaskStatus::Failed { error, .. } | TaskStatus::RetryWaiting { error, .. } => {
                    entry.insert("error".to_owned(), Value::from(error.as_str()));
                }
                TaskStatus::Pending | TaskStatus::Dispatched { .. } | TaskStatus::Skipped { .. } | TaskStatus::Cancelled { .. } => {}
            }
            tasks.insert(task.id.clone(), Value::Object(entry));
        }
    }
    let mut evidence = Map::new();
    evidence.insert("vars".to_owned(), Value::Object(instance.vars.clone()));
    evidence.insert("tasks".to_owned(), Value::Object(tasks));
    evidence.insert("phases".to_owned(), Value::Object(phases));
    evidence.insert("metrics".to_owned(), Value::Object(metrics));
    evidence.insert("signals".to_owned(), Value::Object(instance.signals.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
    evidence
}

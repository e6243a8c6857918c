//! The evidence conditions read, built from an instance's state.

use serde_json::{json, Map, Value};

use super::{Instance, TaskStatus};

/// The evidence object: `vars`, `tasks`, `phases` (and, as they land,
/// `metrics` and `signals`). A task that has not produced anything has only
/// its `status` and `attempts`, so conditions reading its output are
/// inconclusive rather than false.
pub fn evidence(instance: &Instance) -> Map<String, Value> {
    let mut tasks = Map::new();
    let mut phases = Map::new();
    for phase in &instance.phases {
        let status = phase.status.kind();
        phases.insert(phase.id.clone(), json!({"status": status, "attempt": phase.attempt}));
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
    evidence.insert("metrics".to_owned(), Value::Object(Map::new()));
    evidence.insert("signals".to_owned(), Value::Object(instance.signals.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
    evidence
}

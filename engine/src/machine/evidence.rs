//! The evidence conditions read, built from an instance's state.

use serde_json::{json, Map, Value};

use super::{Instance, TaskStatus};

/// Each gate of a phase with its latest approval (by a person, or by a
/// deadline's `on_timeout = "approve"` with the inputs' defaults).
fn latest_approvals(phase: &super::PhaseState) -> impl Iterator<Item = (&str, &super::Decision)> {
    phase.gates.iter().filter_map(|gate| {
        gate.decisions.iter().rev().find(|(_, d)| d.kind == super::DecisionKind::Approve).map(|(_, d)| (gate.id.as_str(), d))
    })
}

/// Gate id → the inputs of its latest approval: what task parameters read
/// as `{{ decisions.GATE.inputs.NAME }}`.
pub fn decision_inputs(instance: &Instance) -> Map<String, Value> {
    instance.phases.iter().flat_map(latest_approvals).map(|(gate, d)| (gate.to_owned(), Value::Object(d.inputs.clone()))).collect()
}

/// The evidence object: `vars`, `tasks`, `phases`, `metrics` (watches of
/// the current phase attempts), `signals` and `decisions` (each gate's
/// latest approval by a person: who, and the inputs it carried). A task that has not produced anything has only
/// its `status` and `attempts`, so conditions reading its output are
/// inconclusive rather than false.
pub fn evidence(instance: &Instance) -> Map<String, Value> {
    let mut tasks = Map::new();
    let mut phases = Map::new();
    let mut metrics = Map::new();
    let mut decisions = Map::new();
    for phase in &instance.phases {
        for (gate, decision) in latest_approvals(phase) {
            let entry = json!({"decision": decision.kind.verb(), "by": decision.principal, "inputs": decision.inputs});
            decisions.insert(gate.to_owned(), entry);
        }
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
                TaskStatus::Waiting { due, .. } => {
                    entry.insert("due".to_owned(), Value::from(due.0));
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
    evidence.insert("decisions".to_owned(), Value::Object(decisions));
    evidence.insert("signals".to_owned(), Value::Object(instance.signals.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
    evidence
}

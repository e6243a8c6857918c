//! Events in words: one line per event, for people reading a history (the
//! CLI's `history`, the web console's timeline).

use crate::machine::{payload, Event};

/// ` (token …)`: how a decider was authenticated, when it was recorded.
fn how(auth: &crate::machine::Authentication) -> String {
    if auth.is_unrecorded() {
        String::new()
    } else {
        format!(" ({auth})")
    }
}

/// One line for an event, for people (the CLI's history, the console's timeline).
pub fn event(event: &Event) -> String {
    match event {
        Event::InstanceStarted(payload::InstanceStarted { workflow, started_by, .. }) => {
            format!("started workflow {workflow} (by {started_by})")
        }
        Event::PhaseStarted(payload::PhaseStarted { phase, attempt }) => {
            format!("phase {phase} started (attempt {attempt})")
        }
        Event::TaskDispatched(payload::TaskDispatched { task, attempt, key, .. }) => {
            format!("task {task} dispatched (attempt {attempt}, key {key})")
        }
        Event::TaskSucceeded(payload::TaskSucceeded { task, attempt, duration_ms, .. }) => {
            format!("task {task} succeeded (attempt {attempt}, {duration_ms} ms)")
        }
        Event::TaskFailed(payload::TaskFailed { task, attempt, error, retryable, .. }) => {
            format!("task {task} failed (attempt {attempt}{}): {error}", if *retryable { "" } else { ", permanently" })
        }
        Event::RetryScheduled(payload::RetryScheduled { task, attempt, due, .. }) => {
            format!("task {task} will retry (attempt {attempt}) at {due}")
        }
        Event::TaskSkipped(payload::TaskSkipped { task, reason, .. }) => format!("task {task} skipped: {reason}"),
        Event::WaitStarted(payload::WaitStarted { task, attempt, due, .. }) => format!("task {task} waits until {due} (attempt {attempt})"),
        Event::WaitElapsed(payload::WaitElapsed { task, attempt, .. }) => format!("task {task}: its wait is over (attempt {attempt})"),
        Event::DeadlinePassed(payload::DeadlinePassed { outcome, reason, .. }) => format!("deadline passed ({}): {reason}", outcome.name()),
        Event::TaskCancelled(payload::TaskCancelled { task, attempt, reason, .. }) => {
            format!("task {task} cancelled (attempt {attempt}): {reason}")
        }
        Event::GateEvaluated(payload::GateEvaluated { phase, gate, evaluation }) => {
            let failed: Vec<&str> =
                evaluation.criteria.iter().filter(|c| c.verdict == crate::machine::Verdict::Fail).map(|c| c.id.as_str()).collect();
            let unknown: Vec<&str> =
                evaluation.criteria.iter().filter(|c| c.verdict == crate::machine::Verdict::Inconclusive).map(|c| c.id.as_str()).collect();
            let mut line = format!("gate {phase}/{gate} evaluated: {} criteria", evaluation.criteria.len());
            if !failed.is_empty() {
                line.push_str(&format!(", failed: {}", failed.join(", ")));
            }
            if !unknown.is_empty() {
                line.push_str(&format!(", inconclusive: {}", unknown.join(", ")));
            }
            line
        }
        Event::DecisionRecorded(payload::DecisionRecorded { phase, gate, decision }) => {
            let comment = if decision.comment.is_empty() { String::new() } else { format!(": {}", decision.comment) };
            format!("gate {phase}/{gate} {} by {}{}{comment}", decision.kind.past(), decision.principal, how(&decision.auth))
        }
        Event::GateTimedOut(payload::GateTimedOut { phase, gate, level, action }) => format!(
            "gate {phase}/{gate}: deadline of level {level} passed, on_timeout = {}",
            serde_json::to_value(action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        ),
        Event::PhaseCompleted(payload::PhaseCompleted { phase }) => format!("phase {phase} passed"),
        Event::PhaseFailed(payload::PhaseFailed { phase, reason }) => format!("phase {phase} failed: {reason}"),
        Event::InstanceCompleted => "completed".to_owned(),
        Event::InstanceFailed(payload::InstanceFailed { reason }) => format!("failed: {reason}"),
        Event::Halted(payload::Halted { by, reason, cancel_running }) => {
            format!(
                "halted by {by}{}{}",
                if *cancel_running { " (in-flight tasks cancelled)" } else { "" },
                if reason.is_empty() { String::new() } else { format!(": {reason}") }
            )
        }
        Event::Resumed(payload::Resumed { by }) => format!("resumed by {by}"),
        Event::Cancelled(payload::Cancelled { by, reason }) => {
            format!("cancelled by {by}{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })
        }
        Event::Redriven(payload::Redriven { by, tasks, phase: None }) => format!("redriven by {by}: {}", tasks.join(", ")),
        Event::Redriven(payload::Redriven { by, phase: Some(phase), .. }) => format!("redriven by {by}: phase {phase} runs again"),
        Event::SignalReceived(payload::SignalReceived { name, data, by }) => format!("signal {name} from {by}: {data}"),
        Event::WatchSampled(payload::WatchSampled { phase, watch, value, verdict, detail, .. }) => {
            let value = value.map_or_else(|| "no data".to_owned(), |v| v.to_string());
            let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
            format!("watch {phase}/{watch} sampled {value}: {}{detail}", verdict.name())
        }
        Event::WatchInconclusive(payload::WatchInconclusive { phase, watch, reason }) => {
            format!("watch {phase}/{watch} inconclusive, halted: {reason}")
        }
        Event::TriggerFired(payload::TriggerFired { phase, trigger, cause }) => format!("trigger {phase}/{trigger} fired: {cause}"),
        Event::TriggerSkipped(payload::TriggerSkipped { phase, trigger, reason }) => {
            format!("trigger {phase}/{trigger} did not act: {reason}")
        }
        Event::TriggerDecided(payload::TriggerDecided { phase, trigger, decision }) => {
            let comment = if decision.comment.is_empty() { String::new() } else { format!(": {}", decision.comment) };
            format!("trigger {phase}/{trigger} {} by {}{}{comment}", decision.kind.past(), decision.principal, how(&decision.auth))
        }
        Event::TriggerTimedOut(payload::TriggerTimedOut { phase, trigger, level, action }) => format!(
            "trigger {phase}/{trigger}: deadline of level {level} passed, on_timeout = {}",
            serde_json::to_value(action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        ),
        Event::RollbackStarted(payload::RollbackStarted { by, reason, to }) => {
            let to = to.as_deref().map(|to| format!(" to phase {to}")).unwrap_or_default();
            format!("rollback{to} started by {by}{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })
        }
        Event::CompensationDispatched(payload::CompensationDispatched { id, attempt, key, .. }) => {
            format!("compensation {id} dispatched (attempt {attempt}, key {key})")
        }
        Event::CompensationSucceeded(payload::CompensationSucceeded { id, attempt, duration_ms, .. }) => {
            format!("compensation {id} succeeded (attempt {attempt}, {duration_ms} ms)")
        }
        Event::CompensationFailed(payload::CompensationFailed { id, attempt, error, retryable, .. }) => {
            format!("compensation {id} failed (attempt {attempt}{}): {error}", if *retryable { "" } else { ", permanently" })
        }
        Event::CompensationRetryScheduled(payload::CompensationRetryScheduled { id, attempt, due, .. }) => {
            format!("compensation {id} will retry (attempt {attempt}) at {due}")
        }
        Event::RollbackCompleted => "rollback completed".to_owned(),
        Event::ScheduleFired(payload::ScheduleFired { phase }) => format!("phase {phase}: scheduled cycle due"),
        Event::BaselinesLoaded(payload::BaselinesLoaded { baselines }) => {
            let from: Vec<String> = baselines.iter().map(|(gate, b)| format!("{gate} from {} ({})", b.instance, b.at)).collect();
            format!("baselines loaded: {}", from.join(", "))
        }
    }
}

//! What every command shares: the async runtime, opening the engine on
//! `--db`, running a command against a live server or the local store, and
//! reporting an engine error with its exit status.

use super::args::{Cli, EXIT_INVALID, EXIT_USAGE};
use super::backend::Backend;
use crate::machine::{payload, Event};
use crate::runtime::Error;
use crate::{Engine, Mode};

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|error| {
        eprintln!("error: cannot start the async runtime: {error}");
        EXIT_USAGE
    })
}

/// Opens the engine on `--db`, with the roles and limits of the configuration.
pub(super) async fn open_engine(cli: &Cli, mode: Mode, concurrency: usize, create: bool) -> Result<Engine, u8> {
    let config = cli.config().map_err(|message| fail!("usage", EXIT_USAGE, "{message}"))?;
    let concurrency = config.limits.max_concurrent_tasks.unwrap_or(concurrency);
    let mut builder =
        Engine::builder().store_path(&cli.db).create_store(create).mode(mode).max_concurrent_tasks(concurrency).roles(config.roles());
    for (agent, limit) in &config.limits.agents {
        builder = builder.agent_limit(agent.clone(), *limit);
    }
    builder.build().await.map_err(|error| report(&error))
}

/// Prints an engine error and returns the exit status it calls for: 2 for
/// usage or I/O (no store, a store in use or damaged), 1 for everything
/// refused or failed.
pub(super) fn report(error: &Error) -> u8 {
    let code = match error {
        Error::Store(
            phasegate_store::Error::Io(_)
            | phasegate_store::Error::InUse { .. }
            | phasegate_store::Error::NewerFormat { .. }
            | phasegate_store::Error::NoStore { .. }
            | phasegate_store::Error::LostData { .. },
        ) => EXIT_USAGE,
        _ => EXIT_INVALID,
    };
    match error {
        // Diagnostics print their own `error:` prefix, one per problem.
        Error::Definition(diagnostics) if super::output::json_errors() => super::output::error("invalid", &diagnostics.to_string(), code),
        Error::Definition(diagnostics) => {
            eprintln!("{diagnostics}");
            code
        }
        other => super::output::error(other.kind(), &other.to_string(), code),
    }
}

/// Prints one JSON document on standard output.
pub(super) fn print_json<T: serde::Serialize + ?Sized>(value: &T) {
    super::output::with_stdout(|out| {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)
    });
}

/// Runs one short command against the store without driving anything:
/// opens the engine in passive mode, runs `body`, shuts the engine down, and
/// turns an error into its message and exit status. `body` returns the exit
/// status of success.
pub(super) fn command(cli: &Cli, body: impl AsyncFnOnce(&Backend) -> Result<u8, Error>) -> u8 {
    command_with(cli, false, body)
}

/// [`command`], creating the store when `create` and there is none (only
/// `start` does: every other command needs a store that exists).
pub(super) fn command_with(cli: &Cli, create: bool, body: impl AsyncFnOnce(&Backend) -> Result<u8, Error>) -> u8 {
    let Ok(runtime) = runtime() else { return EXIT_USAGE };
    runtime.block_on(async {
        // A live server owns the store: talk to it. Otherwise open the store here.
        let backend = match super::backend::find_server(&cli.db, cli.named()).await {
            Ok(Some(remote)) => Backend::Remote(remote),
            Ok(None) => match open_engine(cli, Mode::Passive, 1, create).await {
                Ok(engine) => Backend::Local(engine),
                Err(status) => return status,
            },
            Err(message) => return fail!("unauthorized", EXIT_USAGE, "{message}"),
        };
        let result = body(&backend).await;
        backend.shutdown().await;
        result.unwrap_or_else(|error| report(&error))
    })
}

/// ` (token …)`: how a decider was authenticated, when it was recorded.
fn how(auth: &crate::machine::Authentication) -> String {
    if auth.is_unrecorded() {
        String::new()
    } else {
        format!(" ({auth})")
    }
}

/// One line for an event, for people.
pub(super) fn describe(event: &Event) -> String {
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

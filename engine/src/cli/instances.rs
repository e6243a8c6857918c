//! Commands that start, drive, command and read instances.

use crate::machine::payload;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::backend::Backend;
use super::{Cli, OutputFormat, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::machine::{Event, Instance, PhaseStatus, TaskStatus};
use crate::model::Source;
use crate::runtime::{Error, Summary};
use crate::{Engine, Mode, StartOptions};

/// Arguments of `phasegate start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The definition file (.toml or .json).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Override a variable: `--var name=value` (typed by its declaration); repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// The instance id (default: generated from the workflow's name).
    #[arg(long)]
    pub id: Option<String>,
    /// Compare scored gates with this instance's passes (default: the latest
    /// pass of each gate by any instance of the workflow).
    #[arg(long, value_name = "INSTANCE")]
    pub baseline: Option<String>,
}

/// Arguments of `phasegate run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Return once nothing is left to run (everything done, failed, halted or
    /// waiting for people) instead of serving until interrupted.
    #[arg(long)]
    pub until_idle: bool,
    /// Most task attempts running at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

/// Arguments of commands that take one instance.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Arguments of `phasegate status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The instance id; without it, every instance is listed.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
}

/// Arguments of `phasegate list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only instances with this status.
    #[arg(long, value_enum)]
    pub status: Option<crate::machine::EffectiveStatus>,
}

/// Arguments of `phasegate halt`.
#[derive(Debug, Args)]
pub struct HaltArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Also cancel the attempts in flight (by default they finish).
    #[arg(long)]
    pub cancel_running: bool,
    /// Why, recorded in the history.
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// Arguments of `phasegate rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Compensate only this phase and those after it, then run it again as a new attempt.
    #[arg(long, value_name = "PHASE")]
    pub to: Option<String>,
    /// Why, recorded in the history.
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// Arguments of `phasegate cancel`.

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Why, recorded in the history.
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// Arguments of `phasegate retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Only this task (default: every failed or cancelled task).
    #[arg(value_name = "TASK")]
    pub task: Option<String>,
}

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

pub(super) fn print_json(value: &serde_json::Value) {
    super::output::with_stdout(|out| {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)
    });
}

/// `phasegate start`.
pub(super) fn start(cli: &Cli, args: &StartArgs) -> u8 {
    let mut vars = Vec::new();
    for pair in &args.vars {
        match pair.split_once('=') {
            Some((name, value)) if !name.is_empty() => vars.push((name.trim().to_owned(), value.to_owned())),
            _ => {
                return fail!("usage", EXIT_USAGE, "--var {pair}: write it as name=value");
            }
        }
    }
    let source = match Source::read(&args.file) {
        Ok(source) => source,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return EXIT_USAGE;
        }
    };
    command_with(cli, true, async |engine| {
        let options = StartOptions { id: args.id.clone(), vars, started_by: cli.principal(), baseline: args.baseline.clone() };
        let id = engine.start(&source, options).await?;
        match cli.output {
            OutputFormat::Json => print_json(&json!({"id": id})),
            OutputFormat::Text => {
                outln!("{id}");
                eprintln!("started {id}; `phasegate run --until-idle` drives it");
            }
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate halt`, `resume`, `cancel`, `retry`: one operator event each.
pub(super) fn operate(cli: &Cli, id: &str, what: Operation<'_>) -> u8 {
    command(cli, async |engine| {
        let by = cli.principal();
        let by = by.as_str();
        let operation = match what {
            Operation::Halt { cancel_running, reason } => super::backend::Operation::Halt { by, reason, cancel_running },
            Operation::Rollback { to, reason } => super::backend::Operation::Rollback { by, reason, to },
            Operation::Resume => super::backend::Operation::Resume { by },
            Operation::Cancel { reason } => super::backend::Operation::Cancel { by, reason },
            Operation::Retry { task } => super::backend::Operation::Retry { by, task },
        };
        let seq = engine.operate(id, operation).await?;
        let status = engine.instance(id).await.map(|(instance, _)| instance.effective_status().as_str()).unwrap_or("unknown");
        match cli.output {
            OutputFormat::Json => print_json(&json!({"instance": id, "seq": seq, "status": status})),
            OutputFormat::Text => outln!("{id}: {status} (event {seq})"),
        }
        Ok(EXIT_OK)
    })
}

/// Arguments of `phasegate signal`.
#[derive(Debug, Args)]
pub struct SignalArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The signal's name, as declared under [signals.NAME].
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The signal's data, as JSON (e.g. '{"severity": "P1"}'); default {}.
    #[arg(long, default_value = "{}")]
    pub data: String,
}

/// `phasegate signal`.
pub(super) fn signal(cli: &Cli, args: &SignalArgs) -> u8 {
    let data: serde_json::Value = match serde_json::from_str(&args.data) {
        Ok(data) => data,
        Err(error) => {
            return fail!("usage", EXIT_USAGE, "--data is not JSON ({error}); write it like '{{\"severity\": \"P1\"}}'");
        }
    };
    command(cli, async |engine| {
        let by = cli.principal();
        let seq = engine.operate(&args.id, super::backend::Operation::Signal { by: &by, name: &args.name, data }).await?;
        match cli.output {
            OutputFormat::Json => print_json(&json!({"instance": args.id, "signal": args.name, "seq": seq})),
            OutputFormat::Text => outln!("{}: signal {} recorded (event {seq})", args.id, args.name),
        }
        Ok(EXIT_OK)
    })
}

/// An operator command.
#[derive(Debug, Clone, Copy)]
pub(super) enum Operation<'a> {
    Halt { cancel_running: bool, reason: &'a str },
    Rollback { to: Option<&'a str>, reason: &'a str },
    Resume,
    Cancel { reason: &'a str },
    Retry { task: Option<&'a str> },
}

/// `phasegate run`.
pub(super) fn run(cli: &Cli, args: &RunArgs) -> u8 {
    let Ok(runtime) = runtime() else {
        return EXIT_USAGE;
    };
    runtime.block_on(async {
        if let Some(server) = super::backend::find_server(&cli.db, &cli.principal()).await {
            eprintln!(
                "error: `phasegate serve` at {} owns this store and drives its instances already; other commands go through it, `run` is not needed",
                server.base()
            );
            return EXIT_USAGE;
        }
        let engine = match open_engine(cli, Mode::Drive, args.concurrency, true).await {
            Ok(engine) => engine,
            Err(status) => return status,
        };
        let mut progress = Progress::new(engine.subscribe());
        let finished = async {
            if args.until_idle {
                engine.run_until_idle().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = finished => {}
            () = progress.follow() => {}
            _ = tokio::signal::ctrl_c() => eprintln!("interrupted; stopping (attempts in flight resume on the next run)"),
        }
        progress.drain();
        engine.shutdown().await;
        let failed = progress.finish(&engine, cli);
        // 0: everything driven is done or waits for people; 1: a release
        // failed or was rolled back, or the store refused writes.
        if let Err(why) = engine.health() {
            return fail!("store", EXIT_INVALID, "{why}; what the store refused was not done");
        }
        if failed.is_empty() {
            EXIT_OK
        } else {
            eprintln!("error: {} ended {}", failed.len(), failed.join(", "));
            EXIT_INVALID
        }
    })
}

/// Live progress on stderr: a spinner with counts in a terminal, plain lines otherwise.
struct Progress {
    events: tokio::sync::broadcast::Receiver<crate::runtime::Notification>,
    bar: Option<indicatif::ProgressBar>,
    touched: std::collections::BTreeSet<String>,
    done: u64,
    failed: u64,
    running: i64,
}

impl Progress {
    fn new(events: tokio::sync::broadcast::Receiver<crate::runtime::Notification>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Self { events, bar, touched: std::collections::BTreeSet::new(), done: 0, failed: 0, running: 0 }
    }

    async fn follow(&mut self) {
        loop {
            match self.events.recv().await {
                Ok(notification) => self.show(&notification),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(notification) = self.events.try_recv() {
            self.show(&notification);
        }
    }

    fn show(&mut self, notification: &crate::runtime::Notification) {
        let event = notification.record.event();
        self.touched.insert(notification.instance.clone());
        match event {
            Event::TaskDispatched(_) => self.running += 1,
            Event::TaskSucceeded(_) => {
                self.running -= 1;
                self.done += 1;
            }
            Event::TaskFailed(_) => {
                self.running -= 1;
                self.failed += 1;
            }
            Event::TaskCancelled(_) => self.running -= 1,
            _ => {}
        }
        let line = match event {
            Event::InstanceStarted(_)
            | Event::PhaseStarted(_)
            | Event::PhaseCompleted(_)
            | Event::PhaseFailed(_)
            | Event::GateEvaluated(_)
            | Event::DecisionRecorded(_)
            | Event::GateTimedOut(_)
            | Event::TaskFailed(_)
            | Event::RetryScheduled(_)
            | Event::InstanceCompleted
            | Event::InstanceFailed(_)
            | Event::Halted(_)
            | Event::Resumed(_)
            | Event::Cancelled(_)
            | Event::Redriven(_)
            | Event::SignalReceived(_)
            | Event::WatchInconclusive(_)
            | Event::TriggerFired(_)
            | Event::TriggerSkipped(_)
            | Event::TriggerDecided(_)
            | Event::TriggerTimedOut(_)
            | Event::RollbackStarted(_)
            | Event::CompensationSucceeded(_)
            | Event::CompensationFailed(_)
            | Event::RollbackCompleted
            | Event::ScheduleFired(_) => Some(format!("{}  {}  {}", notification.record.at(), notification.instance, describe(event))),
            Event::WatchSampled(payload::WatchSampled { verdict, .. }) if *verdict != crate::machine::SampleVerdict::Ok => {
                Some(format!("{}  {}  {}", notification.record.at(), notification.instance, describe(event)))
            }
            _ => None,
        };
        match (&self.bar, line) {
            (Some(bar), Some(line)) => bar.println(line),
            (None, Some(line)) => eprintln!("{line}"),
            _ => {}
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} instance(s) · tasks {} done, {} running, {} failed",
                self.touched.len(),
                self.done,
                self.running.max(0),
                self.failed
            ));
        }
    }

    /// Prints where every instance it saw stands; returns those that failed
    /// or were rolled back (as `id (status)`).
    fn finish(&mut self, engine: &Engine, cli: &Cli) -> Vec<String> {
        let output = cli.output;
        let mut failed = Vec::new();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let pending = engine.approvals(None).unwrap_or_default();
        let mut summary = Vec::new();
        for id in &self.touched {
            if let Ok((instance, _)) = engine.instance(id) {
                let next: Vec<String> =
                    pending.iter().filter(|p| &p.instance == id).map(|p| approve_command(cli, engine.roles(), p)).collect();
                summary.push(json!({"id": id, "status": instance.effective_status(), "waiting": waiting(&instance), "approve": next}));
                if matches!(
                    instance.status,
                    crate::machine::InstanceStatus::Failed { .. } | crate::machine::InstanceStatus::RolledBack { .. }
                ) {
                    failed.push(format!("{id} ({})", instance.effective_status()));
                }
                if output == OutputFormat::Text {
                    let status = instance.effective_status();
                    match waiting(&instance).as_slice() {
                        [] => outln!("{id}: {status}"),
                        phases => outln!("{id}: {status} (phase {} waits for a decision)", phases.join(", ")),
                    }
                    for (approval, command) in pending.iter().filter(|p| &p.instance == id).zip(&next) {
                        outln!(
                            "  {}/{} waits for {} more approval(s) from {}; to approve:\n    {command}",
                            approval.phase,
                            approval.gate,
                            (approval.required as usize).saturating_sub(approval.approvals.len()),
                            approval.approvers.join(", ")
                        );
                    }
                }
            }
        }
        if output == OutputFormat::Json {
            print_json(&serde_json::Value::Array(summary));
        }
        failed
    }
}

/// The exact command that approves a pending decision: this binary, this
/// store and configuration, and a principal the configuration allows (or a
/// placeholder when no one is named yet).
fn approve_command(cli: &Cli, roles: &crate::machine::Roles, pending: &crate::runtime::PendingApproval) -> String {
    let binary = std::env::args().next().unwrap_or_else(|| "phasegate".to_owned());
    let mut command = vec![binary];
    if cli.db != std::path::Path::new(".phasegate") {
        command.push(format!("--db {}", cli.db.display()));
    }
    if let Some(config) = &cli.config {
        command.push(format!("--config {}", config.display()));
    }
    let principal = pending
        .approvers
        .iter()
        .filter(|approver| !pending.approvals.contains(approver))
        .find_map(|approver| match approver.strip_prefix("role:") {
            Some(role) => roles.0.get(role).and_then(|members| members.iter().find(|m| !pending.approvals.contains(m)).cloned()),
            None => Some(approver.clone()),
        })
        .unwrap_or_else(|| "NAME".to_owned());
    command.push(format!("--as {principal} approve {} {}/{} --comment \"...\"", pending.instance, pending.phase, pending.gate));
    command.join(" ")
}

fn waiting(instance: &Instance) -> Vec<String> {
    instance.phases.iter().filter(|p| matches!(p.status, PhaseStatus::AwaitingApproval { .. })).map(|p| p.id.clone()).collect()
}

/// One line for an event, for people.
fn describe(event: &Event) -> String {
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
            format!("gate {phase}/{gate} {} by {}{comment}", decision.kind.past(), decision.principal)
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
        Event::Redriven(payload::Redriven { by, tasks }) => format!("redriven by {by}: {}", tasks.join(", ")),
        Event::SignalReceived(payload::SignalReceived { name, data, by }) => format!("signal {name} from {by}: {data}"),
        Event::WatchSampled(payload::WatchSampled { phase, watch, value, verdict, detail }) => {
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
            format!("trigger {phase}/{trigger} {} by {}{comment}", decision.kind.past(), decision.principal)
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

/// `phasegate status`.
pub(super) fn status(cli: &Cli, args: &StatusArgs) -> u8 {
    let Some(id) = &args.id else {
        return list(cli, &ListArgs { status: None });
    };
    command(cli, async |engine| {
        let (instance, workflow) = engine.instance(id).await?;
        match cli.output {
            OutputFormat::Json => {
                let mut value = serde_json::to_value(&instance).unwrap_or_default();
                value["effective_status"] = json!(instance.effective_status());
                print_json(&value);
            }
            OutputFormat::Text => {
                let mut out = String::new();
                out.push_str(&format!(
                    "instance  {}\nworkflow  {} (definition {})\n",
                    instance.id,
                    instance.workflow,
                    &instance.definition_hash[..12.min(instance.definition_hash.len())]
                ));
                out.push_str(&format!("status    {}\n", instance.effective_status()));
                out.push_str(&format!(
                    "started   {} by {}\nupdated   {} (event {})\n",
                    instance.started_at, instance.started_by, instance.updated_at, instance.seq
                ));
                for (p, phase) in instance.phases.iter().enumerate() {
                    let plan = &workflow.phases[p];
                    out.push_str(&format!(
                        "\nphase {}  {}{}\n",
                        phase.id,
                        phase.status.kind(),
                        if phase.attempt > 1 { format!(" (attempt {})", phase.attempt) } else { String::new() }
                    ));
                    if let PhaseStatus::Failed { reason, .. } = &phase.status {
                        out.push_str(&format!("  reason: {reason}\n"));
                    }
                    if let Some(entered) = &phase.entered {
                        out.push_str(&format!("  entered: {entered}\n"));
                    }
                    if let Some(next) = phase.next_cycle {
                        out.push_str(&format!("  next cycle: {next}\n"));
                    }
                    for watch in &phase.watches {
                        let latest = watch.samples.last().map_or_else(
                            || "no sample yet".to_owned(),
                            |s| format!("{} ({})", s.value.map_or_else(|| "no data".to_owned(), |v| v.to_string()), s.verdict.name()),
                        );
                        let state = if watch.firing {
                            "FIRING"
                        } else if watch.breaching_since.is_some() {
                            "breaching"
                        } else {
                            "ok"
                        };
                        out.push_str(&format!("  watch {:<18} {state:<14} {} samples, latest {latest}\n", watch.id, watch.taken));
                    }
                    for task in &phase.tasks {
                        let detail = match &task.status {
                            TaskStatus::Succeeded { attempt, duration_ms, .. } => format!("attempt {attempt}, {duration_ms} ms"),
                            TaskStatus::Failed { attempt, error, .. } => {
                                format!("attempt {attempt}: {error}")
                            }
                            TaskStatus::RetryWaiting { attempt, due, error } => format!("attempt {attempt} due {due}; last error: {error}"),
                            TaskStatus::Dispatched { attempt, at, .. } => {
                                format!("attempt {attempt} since {at}")
                            }
                            TaskStatus::Skipped { reason } => reason.clone(),
                            TaskStatus::Cancelled { attempt, .. } => format!("attempt {attempt}"),
                            TaskStatus::Pending => String::new(),
                        };
                        out.push_str(&format!("  {:<24} {:<14} {detail}\n", task.id, task.status.kind()));
                    }
                    for (g, gate) in phase.gates.iter().enumerate() {
                        if matches!(gate.status, crate::machine::GateStatus::Pending)
                            && !matches!(phase.status, PhaseStatus::Running { .. })
                        {
                            continue;
                        }
                        out.push_str(&gate_lines(&instance, plan, g, gate));
                    }
                }
                if let crate::machine::InstanceStatus::AwaitingDecision { phase, trigger, cause, .. } = &instance.status {
                    out.push_str(&format!("\nwaiting   trigger {phase}/{trigger}: {cause}\n"));
                    for blocker in crate::machine::blockers(&instance, &workflow, crate::runtime::clock::system_now()) {
                        out.push_str(&format!("  {}\n", blocker.message));
                    }
                }
                if let Some(rollback) = &instance.rollback {
                    let to = rollback.to.as_deref().map(|to| format!(" to {to}")).unwrap_or_default();
                    out.push_str(&format!("\nrollback{to} by {} at {}: {}\n", rollback.by, rollback.started_at, rollback.reason));
                    for step in &rollback.steps {
                        let undoes = step.task.as_deref().map_or_else(|| format!("phase {}", step.phase), |t| format!("task {t}"));
                        out.push_str(&format!("  {:<24} {:<14} undoes {undoes}\n", step.state.id, step.state.status.kind()));
                    }
                }
                out!("{out}");
            }
        }
        Ok(EXIT_OK)
    })
}

/// A gate's state for `status`: its verdicts with the evidence read, its
/// decisions, and who may decide now.
fn gate_lines(instance: &Instance, plan: &crate::plan::Phase, g: usize, gate: &crate::machine::GateState) -> String {
    use crate::machine::{GateStatus, Verdict};
    let mut out = format!("  gate {}  {}\n", gate.id, gate.status.kind());
    if let Some(evaluation) = &gate.evaluation {
        for criterion in &evaluation.criteria {
            let level = match criterion.level {
                crate::plan::Level::Must => "must",
                crate::plan::Level::Should => "should",
            };
            let verdict = match criterion.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "FAIL",
                Verdict::Inconclusive => "INCONCLUSIVE",
                Verdict::Warning => "WARNING",
            };
            let values: Vec<String> = criterion.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            let values = if values.is_empty() { String::new() } else { format!(" [{}]", values.join(", ")) };
            let detail = if criterion.detail.is_empty() || criterion.verdict == Verdict::Pass {
                String::new()
            } else {
                format!(" ({})", criterion.detail)
            };
            let scored =
                if evaluation.score.is_some() { format!(" ({}/{} points)", criterion.points, criterion.weight) } else { String::new() };
            let deltas: Vec<String> =
                criterion.deltas.iter().map(|(path, delta)| format!("{path} {:+.1}% vs baseline", delta * 100.0)).collect();
            let deltas = if deltas.is_empty() { String::new() } else { format!(" [{}]", deltas.join(", ")) };
            out.push_str(&format!(
                "    {verdict:<12} {level:<6} {}: `{}`{values}{deltas}{scored}{detail}\n",
                criterion.label, criterion.condition
            ));
        }
        if let Some(score) = &evaluation.score {
            out.push_str(&format!(
                "    score {}% ({} of {} points): {} band (pass ≥ {}%, warning ≥ {}%)\n",
                score.percent,
                score.points,
                score.total,
                super::gates::band_name(score.band),
                score.bands.pass,
                score.bands.warning
            ));
        }
    }
    for (at, decision) in &gate.decisions {
        let comment = if decision.comment.is_empty() { String::new() } else { format!(": {}", decision.comment) };
        out.push_str(&format!("    {} by {} at {at} (level {}){comment}\n", decision.kind.past(), decision.principal, decision.level));
    }
    if let GateStatus::AwaitingDecision { level, deadline, approvals, .. } = &gate.status {
        if let Some(authority) = crate::machine::Target::gate_of(plan, g).authority(*level) {
            let who: Vec<String> = authority.approvers.iter().map(ToString::to_string).collect();
            let deadline = deadline.map(|d| format!(", deadline {d}")).unwrap_or_default();
            out.push_str(&format!(
                "    waits for {} of {} approval(s) from {} (level {level}{deadline}); `phasegate approve {} {}/{} --as NAME`\n",
                authority.required as usize - approvals.len().min(authority.required as usize),
                authority.required,
                who.join(", "),
                instance.id,
                plan.id,
                gate.id
            ));
        }
    }
    out
}

/// `phasegate list`.
pub(super) fn list(cli: &Cli, args: &ListArgs) -> u8 {
    command(cli, async |engine| {
        let instances = engine.list(args.status).await?;
        match cli.output {
            OutputFormat::Json => {
                print_json(&serde_json::Value::Array(instances.iter().map(|(id, summary)| json!({"id": id, "summary": summary})).collect()))
            }
            OutputFormat::Text => {
                if instances.is_empty() {
                    eprintln!("no instances{}", args.status.as_ref().map(|s| format!(" with status {s}")).unwrap_or_default());
                }
                for (id, Summary { status, workflow, updated_at, current, .. }) in &instances {
                    outln!("{id:<40} {status:<18} {workflow:<20} {updated_at}  {}", current.join(","));
                }
            }
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate history`.
pub(super) fn history(cli: &Cli, args: &InstanceArgs) -> u8 {
    command(cli, async |engine| {
        let records = engine.history(&args.id).await?;
        match cli.output {
            OutputFormat::Json => print_json(&serde_json::to_value(&records).unwrap_or_default()),
            OutputFormat::Text => {
                for record in &records {
                    outln!("{:>5}  {}  {}", record.seq(), record.at(), describe(record.event()));
                }
            }
        }
        Ok(EXIT_OK)
    })
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
        let backend = match super::backend::find_server(&cli.db, &cli.principal()).await {
            Some(remote) => Backend::Remote(remote),
            None => match open_engine(cli, Mode::Passive, 1, create).await {
                Ok(engine) => Backend::Local(engine),
                Err(status) => return status,
            },
        };
        let result = body(&backend).await;
        backend.shutdown().await;
        result.unwrap_or_else(|error| report(&error))
    })
}

/// Arguments of `phasegate report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Which report: readiness, gate, checklist, certificate, ops.
    #[arg(long)]
    pub kind: String,
    /// md (Markdown, default) or json.
    #[arg(long, default_value = "md")]
    pub format: String,
    /// certificate: the phase (default: the last that passed); readiness: the last phase covered (default: all started).
    #[arg(long, value_name = "PHASE")]
    pub phase: Option<String>,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

/// `phasegate report`: a document rendered from the instance's state and log.
pub(super) fn report_command(cli: &Cli, args: &ReportArgs) -> u8 {
    let kind = match crate::report::Kind::parse(&args.kind) {
        Ok(kind) => kind,
        Err(problem) => {
            return fail!("usage", EXIT_USAGE, "--kind: {problem}");
        }
    };
    let json = match args.format.as_str() {
        "md" | "markdown" => false,
        "json" => true,
        other => {
            return fail!("usage", EXIT_USAGE, "--format {other}: choose md or json");
        }
    };
    command(cli, async |engine| {
        let (instance, workflow) = engine.instance(&args.id).await?;
        let history = engine.history(&args.id).await?;
        let input = crate::report::Input {
            instance: &instance,
            workflow: &workflow,
            history: &history,
            now: crate::runtime::clock::system_now(),
            phase: args.phase.as_deref(),
        };
        let rendered = crate::report::render(kind, &input).map_err(Error::Invalid)?;
        let text = if json { serde_json::to_string_pretty(&rendered.data).unwrap_or_default() + "\n" } else { rendered.markdown };
        match &args.out {
            Some(path) => std::fs::write(path, text).map_err(|e| Error::Invalid(format!("--out {}: {e}", path.display())))?,
            None => out!("{text}"),
        }
        Ok(EXIT_OK)
    })
}

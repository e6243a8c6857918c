//! `phasegate run`: drives instances and shows their progress as it happens.

use std::io::IsTerminal;

use serde_json::json;

use super::args::*;
use super::common::{open_engine, print_json, runtime};
use crate::describe::event as describe;
use crate::machine::{payload, Event, Instance, PhaseStatus};
use crate::{Engine, Mode};

/// `phasegate run`.
pub(super) fn run(cli: &Cli, args: &RunArgs) -> u8 {
    let Ok(runtime) = runtime() else {
        return EXIT_USAGE;
    };
    runtime.block_on(async {
        if let Some(server) = super::backend::live_server(&cli.db).await {
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
            () = progress.follow(&engine) => {}
            _ = tokio::signal::ctrl_c() => eprintln!("interrupted; stopping (attempts in flight resume on the next run)"),
        }
        progress.drain(&engine);
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
    pacer: super::progress::Pacer,
}

impl Progress {
    fn new(events: tokio::sync::broadcast::Receiver<crate::runtime::Notification>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Self { events, bar, touched: std::collections::BTreeSet::new(), done: 0, failed: 0, running: 0, pacer: Default::default() }
    }

    async fn follow(&mut self, engine: &Engine) {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                note = self.events.recv() => match note {
                    Ok(notification) => self.show(engine, &notification),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = ticks.tick() => {
                    for line in self.pacer.tick(engine.now()) {
                        self.print(line);
                    }
                }
            }
        }
    }

    fn drain(&mut self, engine: &Engine) {
        while let Ok(notification) = self.events.try_recv() {
            self.show(engine, &notification);
        }
    }

    fn print(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn show(&mut self, engine: &Engine, notification: &crate::runtime::Notification) {
        for line in self.pacer.observe(engine, notification) {
            self.print(line);
        }
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
        if let Some(line) = line {
            self.print(line);
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
                let next: Vec<Vec<String>> =
                    pending.iter().filter(|p| &p.instance == id).map(|p| approve_commands(cli, &engine.roles(), p)).collect();
                summary.push(
                    json!({"id": id, "status": instance.effective_status(), "waiting": waiting(&instance), "approve": next.concat()}),
                );
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
                    for (approval, commands) in pending.iter().filter(|p| &p.instance == id).zip(&next) {
                        let each = if commands.len() > 1 { " (each of these)" } else { "" };
                        outln!(
                            "  {}/{} waits for approvals: {}; to approve{each}:\n    {}",
                            approval.phase,
                            approval.gate,
                            approval.still_needed_among(&engine.roles()),
                            commands.join("\n    ")
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
/// The exact commands that move a wait on: one per group that still needs
/// an approval (each approval of a per-role wait counts for one group), each
/// as someone who may decide: a member of that group who has not approved
/// and did not start the instance (four-eyes), with the comment it needs.
fn approve_commands(cli: &Cli, roles: &crate::machine::Roles, pending: &crate::runtime::PendingApproval) -> Vec<String> {
    let binary = std::env::args().next().unwrap_or_else(|| "phasegate".to_owned());
    let mut prefix = vec![binary];
    if cli.db != std::path::Path::new(".phasegate") {
        prefix.push(format!("--db {}", cli.db.display()));
    }
    if let Some(config) = &cli.config {
        prefix.push(format!("--config {}", config.display()));
    }
    let groups: Vec<Vec<String>> = {
        let short: Vec<Vec<String>> =
            pending.needs.first().into_iter().flatten().filter(|g| g.missing() > 0).map(|g| g.approvers.clone()).collect();
        if short.is_empty() {
            vec![pending.approvers.clone()]
        } else {
            short
        }
    };
    let mut chosen: Vec<String> = Vec::new();
    for group in groups {
        let principal = group
            .iter()
            .flat_map(|approver| match approver.strip_prefix("role:") {
                Some(role) => roles.0.get(role).map(|members| members.iter().cloned().collect()).unwrap_or_default(),
                None => vec![approver.clone()],
            })
            .find(|who| !pending.approvals.contains(who) && *who != pending.started_by && !chosen.contains(who))
            .unwrap_or_else(|| "NAME".to_owned());
        chosen.push(principal);
    }
    chosen.dedup();
    chosen
        .into_iter()
        .map(|principal| {
            let mut command = prefix.clone();
            command.push(format!("--as {principal} approve {} {}/{} --comment \"...\"", pending.instance, pending.phase, pending.gate));
            command.join(" ")
        })
        .collect()
}

fn waiting(instance: &Instance) -> Vec<String> {
    instance.phases.iter().filter(|p| matches!(p.status, PhaseStatus::AwaitingApproval { .. })).map(|p| p.id.clone()).collect()
}

//! Reading state: `status` (an instance's phases, tasks, gates and what
//! blocks it), `list` and `history`.

use serde_json::json;

use super::args::*;
use super::common::{command, print_json};
use crate::describe::event as describe;
use crate::machine::{Instance, PhaseStatus, TaskStatus};
use crate::runtime::{Error, Summary};
use std::time::Duration;

/// Time left as a person reads it: the two largest units (`13d 23h`,
/// `4m 10s`), which is as precise as a redrawn status needs.
fn left_text(left: std::time::Duration) -> String {
    let secs = left.as_secs();
    let units = [(secs / 86_400, "d"), (secs / 3_600 % 24, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")];
    let Some(first) = units.iter().position(|(n, _)| *n > 0) else { return "0s".to_owned() };
    units[first..].iter().take(2).filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect::<Vec<_>>().join(" ")
}

/// A deadline in one line: how long, its outcome, and when it passes (and
/// how much time is left), or that it acted.
fn deadline_text(deadline: &crate::machine::DeadlineState, now: crate::machine::Timestamp) -> String {
    let after = crate::plan::format_duration(std::time::Duration::from_millis(deadline.after_ms));
    let outcome = deadline.outcome.name();
    match (deadline.acted, deadline.due) {
        (true, _) => format!("{after}, outcome {outcome}: passed, and its outcome was applied"),
        (false, Some(due)) if due <= now => format!("{after}, outcome {outcome}: passed at {due}"),
        (false, Some(due)) => format!("{after}, outcome {outcome}: {} left, at {due}", left_text(due.left(now))),
        (false, None) => format!("{after}, outcome {outcome}: counts while the phase runs"),
    }
}

/// `phasegate status`.
pub(super) fn status(cli: &Cli, args: &StatusArgs) -> u8 {
    let Some(id) = &args.id else {
        return list(cli, &ListArgs { status: None });
    };
    if args.watch {
        return watch(cli, id);
    }
    command(cli, async |engine| {
        let (instance, workflow) = engine.instance(id).await?;
        match cli.output {
            OutputFormat::Json => {
                let mut value = serde_json::to_value(&instance).unwrap_or_default();
                value["effective_status"] = json!(instance.effective_status());
                value["watches"] = json!(crate::machine::watch_liveness(&instance, &workflow));
                value["deadlines"] = json!(crate::machine::deadlines(&instance, &workflow));
                print_json(&value);
            }
            OutputFormat::Text => {
                let text = status_text(&instance, &workflow, crate::runtime::clock::system_now());
                out!("{text}");
            }
        }
        Ok(EXIT_OK)
    })
}

/// An instance's state for people: its phases with their tasks (attempts,
/// durations, waits with the time left), watches (the latest sample, how
/// long a breach has held of its `for`), gates (verdicts, who must decide),
/// deadlines and rollback. `status` prints it; `status --watch` redraws it.
fn status_text(instance: &Instance, workflow: &crate::plan::Workflow, now: crate::machine::Timestamp) -> String {
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
    let liveness = crate::machine::watch_liveness(instance, workflow);
    let deadlines = crate::machine::deadlines(instance, workflow);
    if let Some(own) = deadlines.iter().find(|d| d.phase.is_none()) {
        out.push_str(&format!("deadline  {}\n", deadline_text(own, now)));
    }
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
        if let Some(deadline) = deadlines.iter().find(|d| d.phase.as_deref() == Some(phase.id.as_str())) {
            out.push_str(&format!("  deadline: {}\n", deadline_text(deadline, now)));
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
            if let Some(live) = liveness.iter().find(|l| l.phase == phase.id && l.watch == watch.id) {
                out.push_str(&format!("        {}\n", live.why));
            }
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
                TaskStatus::Waiting { attempt, since, due } => {
                    format!("attempt {attempt}: {} left, until {due} (since {since})", left_text(due.left(now)))
                }
                TaskStatus::Skipped { reason } => reason.clone(),
                TaskStatus::Cancelled { attempt, .. } => format!("attempt {attempt}"),
                TaskStatus::Pending => String::new(),
            };
            out.push_str(&format!("  {:<24} {:<14} {detail}\n", task.id, task.status.kind()));
        }
        for (g, gate) in phase.gates.iter().enumerate() {
            if matches!(gate.status, crate::machine::GateStatus::Pending) && !matches!(phase.status, PhaseStatus::Running { .. }) {
                continue;
            }
            out.push_str(&gate_lines(instance, plan, g, gate));
        }
    }
    if let crate::machine::InstanceStatus::AwaitingDecision { phase, trigger, cause, .. } = &instance.status {
        out.push_str(&format!("\nwaiting   trigger {phase}/{trigger}: {cause}\n"));
        for blocker in crate::machine::blockers(instance, workflow, now) {
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
    out
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
                score.band.name(),
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
            let deadline = deadline.map(|d| format!(", deadline {d}")).unwrap_or_default();
            let have = if approvals.is_empty() { String::new() } else { format!("; approved so far by {}", approvals.join(", ")) };
            out.push_str(&format!(
                "    waits for {} (level {level}{deadline}{have}); `phasegate approve {} {}/{} --as NAME`\n",
                authority.still_needed(&gate.approvals_via()),
                instance.id,
                plan.id,
                gate.id
            ));
            for (name, input) in plan.gates[g].approval.iter().flat_map(|a| &a.inputs) {
                out.push_str(&format!("    input {}; give it with --input {name}=VALUE\n", input.describe(name)));
            }
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
pub(super) fn history(cli: &Cli, args: &HistoryArgs) -> u8 {
    if args.follow {
        return follow(cli, &args.id, View::History);
    }
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

/// `phasegate logs ID [TASK] [--attempt N] [--follow]`.
pub(super) fn logs(cli: &Cli, args: &LogsArgs) -> u8 {
    command(cli, async |engine| {
        let mut printed: std::collections::BTreeMap<(String, u32), usize> = std::collections::BTreeMap::new();
        let print_new = async |printed: &mut std::collections::BTreeMap<(String, u32), usize>| -> Result<(), Error> {
            for log in engine.task_logs(&args.id, args.task.as_deref(), args.attempt, 0).await? {
                let seen = printed.entry((log.task.clone(), log.attempt)).or_insert(0);
                for line in log.lines.iter().skip(*seen) {
                    print_log_line(cli, &log.task, log.attempt, line);
                }
                *seen = log.lines.len();
            }
            Ok(())
        };
        loop {
            print_new(&mut printed).await?;
            if !args.follow {
                break;
            }
            if !still_printing(engine, &args.id, args.task.as_deref()).await? {
                // A last read, for what was written between the two reads above.
                print_new(&mut printed).await?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if printed.is_empty() && !args.follow {
            let which = args.task.as_deref().map_or_else(|| "its tasks".to_owned(), |t| format!("task {t}"));
            eprintln!("no logs of {which} in {} (exec and plugin tasks keep what they print, per attempt)", args.id);
        }
        Ok(EXIT_OK)
    })
}

/// One line of a task's log: `TASK#ATTEMPT out | text`, or one JSON object.
fn print_log_line(cli: &Cli, task: &str, attempt: u32, line: &crate::runtime::task_logs::LogLine) {
    match cli.output {
        OutputFormat::Json => {
            let value = json!({"task": task, "attempt": attempt, "at": line.at, "stream": line.stream, "line": line.line});
            outln!("{}", serde_json::to_string(&value).unwrap_or_default());
        }
        OutputFormat::Text => {
            let stream = match line.stream {
                phasegate_agents::LogStream::Stdout => "out",
                phasegate_agents::LogStream::Stderr => "err",
            };
            outln!("{task}#{attempt} {stream} | {}", line.line);
        }
    }
}

/// True while `task` (or, with none named, any task) of instance `id` may
/// still print: it runs, waits to run or to retry, and the instance is not done.
async fn still_printing(backend: &super::backend::Backend, id: &str, task: Option<&str>) -> Result<bool, Error> {
    let (instance, _) = backend.instance(id).await?;
    if outcome(instance.effective_status()).is_some() {
        return Ok(false);
    }
    let tasks = instance.phases.iter().flat_map(|p| &p.tasks).filter(|t| task.is_none_or(|name| name == t.id));
    let mut any = false;
    for state in tasks {
        any = true;
        if matches!(state.status, TaskStatus::Pending | TaskStatus::Dispatched { .. } | TaskStatus::RetryWaiting { .. }) {
            return Ok(true);
        }
    }
    Ok(!any && task.is_some() && instance.effective_status() == crate::machine::EffectiveStatus::Running)
}

/// One record as `history --follow` prints it: a line of text, or one JSON object per line.
fn print_record(cli: &Cli, id: &str, record: &crate::machine::Record) {
    match cli.output {
        OutputFormat::Json => {
            let line = serde_json::to_string(&serde_json::json!({"instance": id, "record": record})).unwrap_or_default();
            outln!("{line}");
        }
        OutputFormat::Text => outln!("{:>5}  {}  {}", record.seq(), record.at(), describe(record.event())),
    }
}

/// The exit status of an instance that is done (no event will come on its
/// own any more): 0 completed, 1 failed, cancelled, rolled back or set apart.
fn outcome(status: crate::machine::EffectiveStatus) -> Option<u8> {
    use crate::machine::EffectiveStatus as S;
    match status {
        S::Completed => Some(EXIT_OK),
        S::Failed | S::Cancelled | S::RolledBack | S::Quarantined => Some(EXIT_INVALID),
        S::Running | S::AwaitingApproval | S::OnHold | S::Halted | S::RollingBack | S::Scheduled => None,
    }
}

/// What a follower shows.
#[derive(Clone, Copy)]
enum View {
    /// `history --follow`: every record, then each new one.
    History,
    /// `status --watch`: the whole state redrawn (in a terminal), or a line per change.
    Status {
        /// Standard output is a terminal.
        terminal: bool,
    },
}

impl View {
    /// Shows the instance's state and the records that are new since the last call.
    /// `was` is the status shown last (none the first time): a plain
    /// follower says when it changes.
    fn show(
        self,
        cli: &Cli,
        instance: &Instance,
        workflow: &crate::plan::Workflow,
        new: &[crate::machine::Record],
        was: Option<crate::machine::EffectiveStatus>,
    ) {
        let id = &instance.id;
        let now = instance.effective_status();
        match self {
            View::History => new.iter().for_each(|record| print_record(cli, id, record)),
            View::Status { terminal: true } => {
                let text = status_text(instance, workflow, crate::runtime::clock::system_now());
                out!("\x1b[H\x1b[2J{text}\n(watching {id}: redrawn as events are made durable; Ctrl-C stops)\n");
            }
            View::Status { terminal: false } => {
                if was.is_some() {
                    for record in new {
                        outln!("{}  {id}  {}", record.at(), describe(record.event()));
                    }
                }
                if was != Some(now) {
                    outln!("{}  {id}  status {now}", instance.updated_at);
                }
            }
        }
    }

    /// How long to wait for a change before showing the state again: every
    /// second in a terminal (the time left counts down), else only on change.
    fn wait(self) -> Duration {
        match self {
            View::Status { terminal: true } => Duration::from_secs(1),
            View::History | View::Status { terminal: false } => Duration::from_secs(25),
        }
    }
}

/// `status ID --watch`.
fn watch(cli: &Cli, id: &str) -> u8 {
    follow(cli, id, View::Status { terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()) })
}

/// Follows instance `id` until it is done, showing it as `view` says, and
/// exits with its outcome. Through a server it long-polls for new records.
/// With none running, it shows the store as it is and, since nothing moves
/// an instance while no process drives it, hands the store back (so a
/// server can open it) and waits for `phasegate serve` to follow through.
fn follow(cli: &Cli, id: &str, view: View) -> u8 {
    let Ok(runtime) = super::common::runtime() else { return EXIT_USAGE };
    let result: Result<u8, Error> = runtime.block_on(async {
        let remote = match super::backend::find_server(&cli.db, cli.named()).await {
            Ok(found) => found,
            Err(message) => return Ok(fail!("unauthorized", EXIT_USAGE, "{message}")),
        };
        // The status shown last: none until the first showing.
        let mut was: Option<crate::machine::EffectiveStatus> = None;
        let (backend, mut last) = match remote {
            Some(remote) => (super::backend::Backend::Remote(remote), 0),
            None => {
                let engine = match super::common::open_engine(cli, crate::Mode::Passive, 1, false).await {
                    Ok(engine) => engine,
                    Err(status) => return Ok(status),
                };
                let local = super::backend::Backend::Local(engine);
                let shown = async {
                    let (instance, workflow) = local.instance(id).await?;
                    let records = local.history(id).await?;
                    view.show(cli, &instance, &workflow, &records, None);
                    Ok::<_, Error>((instance.seq, instance.effective_status()))
                }
                .await;
                local.shutdown().await;
                drop(local);
                let (last, status) = shown?;
                if let Some(code) = outcome(status) {
                    return Ok(code);
                }
                was = Some(status);
                eprintln!(
                    "no server drives {}: nothing changes {id} while no process does. Waiting for `phasegate serve` to start on it (Ctrl-C stops)",
                    cli.db.display()
                );
                let remote = loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match super::backend::find_server(&cli.db, cli.named()).await {
                        Ok(Some(remote)) => break remote,
                        Ok(None) => {}
                        Err(message) => return Ok(fail!("unauthorized", EXIT_USAGE, "{message}")),
                    }
                };
                eprintln!("following {id} through the server at {}", remote.base());
                (super::backend::Backend::Remote(remote), last)
            }
        };
        loop {
            let mut records = backend.history_after(id, last, if was.is_none() { Duration::ZERO } else { view.wait() }).await?;
            let (instance, workflow) = backend.instance(id).await?;
            // The state may be ahead of the records read: read up to it, so none goes unshown.
            let read = records.last().map_or(last, |r| r.seq());
            if instance.seq > read {
                records.extend(backend.history_after(id, read, Duration::ZERO).await?);
            }
            if let Some(record) = records.last() {
                last = record.seq();
            }
            view.show(cli, &instance, &workflow, &records, was);
            was = Some(instance.effective_status());
            if let Some(code) = outcome(instance.effective_status()) {
                return Ok(code);
            }
        }
    });
    result.unwrap_or_else(|error| super::common::report(&error))
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_left_shows_its_two_largest_units() {
        let left = |secs| super::left_text(std::time::Duration::from_secs(secs));
        assert_eq!(left(14 * 86_400 - 2), "13d 23h");
        assert_eq!(left(86_400 + 30), "1d");
        assert_eq!(left(250), "4m 10s");
        assert_eq!(left(3_600), "1h");
        assert_eq!(left(0), "0s");
    }
}

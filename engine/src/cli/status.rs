//! Reading state: `status` (an instance's phases, tasks, gates and what
//! blocks it), `list` and `history`.

use serde_json::json;

use super::args::*;
use super::common::{command, print_json};
use crate::describe::event as describe;
use crate::machine::{Instance, PhaseStatus, TaskStatus};
use crate::runtime::Summary;

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
                let liveness = crate::machine::watch_liveness(&instance, &workflow);
                let now = crate::runtime::clock::system_now();
                let deadlines = crate::machine::deadlines(&instance, &workflow);
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

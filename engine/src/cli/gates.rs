//! `approve`, `reject`, `hold`, `escalate`, `approvals` and `advance`.

use serde_json::json;

use super::args::*;
use super::common::{command, print_json};
use crate::machine::DecisionKind;
use crate::runtime::DecisionRequest;

/// Takes a decision.
pub(super) fn decide(cli: &Cli, kind: DecisionKind, args: &DecisionArgs) -> u8 {
    let mut inputs = serde_json::Map::new();
    for pair in &args.inputs {
        match pair.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                if inputs.insert(name.trim().to_owned(), serde_json::Value::String(value.to_owned())).is_some() {
                    return fail!("usage", EXIT_USAGE, "--input {}: given twice", name.trim());
                }
            }
            _ => return fail!("usage", EXIT_USAGE, "--input {pair}: write it as name=value"),
        }
    }
    command(cli, async |engine| {
        // Through a server, the credential says who decides; against the
        // store, the caller names themselves, and that is only asserted.
        let (principal, auth) = match engine {
            super::backend::Backend::Remote(_) => (String::new(), crate::machine::Authentication::Unrecorded),
            super::backend::Backend::Local(_) => match cli.named() {
                Some(named) => (named.to_owned(), crate::machine::Authentication::Local),
                None => {
                    return Ok(fail!(
                        "usage",
                        EXIT_USAGE,
                        "{} needs to know who decides: pass --as PRINCIPAL or set PHASEGATE_USER (no server runs, so it is recorded as asserted)",
                        kind.verb()
                    ))
                }
            },
        };
        let request = DecisionRequest {
            kind,
            principal,
            auth,
            comment: args.comment.clone(),
            request_id: args.request_id.clone().unwrap_or_default(),
            inputs: inputs.clone(),
        };
        let outcome = engine.decide(&args.id, args.gate.as_deref(), request).await?;
        match cli.output {
            OutputFormat::Json => print_json(&serde_json::to_value(&outcome).unwrap_or_default()),
            OutputFormat::Text => {
                let replayed = if outcome.replayed { " (repeated request: nothing changed)" } else { "" };
                let what = outcome.subject.noun();
                outln!(
                    "{}: {what} {}/{} {} by {}{replayed}; {what} {}, instance {}",
                    outcome.instance,
                    outcome.phase,
                    outcome.gate,
                    outcome.kind.past(),
                    outcome.principal,
                    outcome.gate_status,
                    outcome.instance_status.map_or("unknown", |s| s.as_str())
                );
            }
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate approvals`.
pub(super) fn approvals(cli: &Cli, args: &ApprovalsArgs) -> u8 {
    command(cli, async |engine| {
        let pending = engine.approvals(args.principal.as_deref()).await?;
        // Who holds each role, from the configuration this command reads (the server's, when it shares the file).
        let roles = cli.config().map(|config| config.roles()).unwrap_or_default();
        let now = crate::runtime::clock::system_now();
        match cli.output {
            OutputFormat::Json => {
                let rows: Vec<serde_json::Value> = pending
                    .iter()
                    .map(|p| {
                        let mut value = serde_json::to_value(p).unwrap_or_default();
                        value["waiting_ms"] = json!(now.since(p.since));
                        value
                    })
                    .collect();
                print_json(&serde_json::Value::Array(rows));
            }
            OutputFormat::Text => {
                if pending.is_empty() {
                    eprintln!("no decisions pending{}", args.principal.as_ref().map(|p| format!(" for {p}")).unwrap_or_default());
                }
                for p in &pending {
                    let waiting = crate::plan::format_duration(std::time::Duration::from_secs(now.since(p.since) / 1000));
                    let deadline = p.deadline.map(|d| format!(", deadline {d}")).unwrap_or_default();
                    let notes =
                        if p.inconclusive.is_empty() { String::new() } else { format!("; inconclusive: {}", p.inconclusive.join(", ")) };
                    let warnings = if p.warnings.is_empty() { String::new() } else { format!("; warnings: {}", p.warnings.join(", ")) };
                    let score = match &p.score {
                        Some(score) => format!(
                            "; score {}% ({} band: pass ≥ {}%, warning ≥ {}%): {}",
                            score.percent,
                            score.band.name(),
                            score.bands.pass,
                            score.bands.warning,
                            p.breakdown
                                .iter()
                                .map(|(label, points, weight)| format!("{label} {points}/{weight}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        None => String::new(),
                    };
                    let needs = format!("approvals: {}", p.still_needed_among(&roles));
                    let needs = if p.inputs.is_empty() { needs } else { format!("{needs}; inputs: {}", p.inputs.join("; ")) };
                    outln!(
                        "{} {}/{}  level {}, {needs}; waiting {waiting}{deadline}{score}{notes}{warnings}",
                        p.instance,
                        p.phase,
                        p.gate,
                        p.level,
                    );
                }
            }
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate advance`.
pub(super) fn advance(cli: &Cli, id: &str) -> u8 {
    command(cli, async |engine| {
        let report = engine.advance(id).await?;
        match cli.output {
            OutputFormat::Json => print_json(&serde_json::to_value(&report).unwrap_or_default()),
            OutputFormat::Text => {
                if report.appended > 0 {
                    outln!("{id}: advanced ({} event(s)); now {}", report.appended, report.status.map_or("unknown", |s| s.as_str()));
                } else {
                    outln!("{id}: {}; nothing to advance", report.status.map_or("unknown", |s| s.as_str()));
                }
                for blocker in &report.blockers {
                    outln!("  blocked: {}", blocker.message);
                }
            }
        }
        // Nothing could move and something blocks: the caller should know.
        Ok(if report.appended == 0 && !report.blockers.is_empty() { EXIT_INVALID } else { EXIT_OK })
    })
}

//! `approve`, `reject`, `hold`, `escalate`, `approvals` and `advance`.

use clap::Args;
use serde_json::json;

use super::instances::{open_engine, print_json, report, runtime};
use super::{Cli, OutputFormat, EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::machine::{DecisionKind, Timestamp};
use crate::runtime::DecisionRequest;
use crate::Mode;

/// Arguments of the decision commands.
#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The gate (`phase/gate` or a gate id); optional when exactly one gate awaits a decision.
    #[arg(value_name = "GATE")]
    pub gate: Option<String>,
    /// Why; recorded with the decision and shown in reports.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// An id for this request: repeating a request with the same id returns
    /// the original outcome and changes nothing.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// Arguments of `phasegate approvals`.
#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// Only decisions this principal may take (directly or through a role).
    #[arg(long = "for", value_name = "PRINCIPAL")]
    pub principal: Option<String>,
}

/// Takes a decision.
pub(super) fn decide(cli: &Cli, kind: DecisionKind, args: &DecisionArgs) -> u8 {
    let Some(principal) = cli.principal.clone().filter(|p| !p.trim().is_empty()) else {
        eprintln!("error: {} needs to know who decides: pass --as PRINCIPAL or set PHASEGATE_USER", kind.verb());
        return EXIT_USAGE;
    };
    let Ok(runtime) = runtime() else {
        return EXIT_USAGE;
    };
    runtime.block_on(async {
        let engine = match open_engine(cli, Mode::Passive, 1).await {
            Ok(engine) => engine,
            Err(status) => return status,
        };
        let request =
            DecisionRequest { kind, principal, comment: args.comment.clone(), request_id: args.request_id.clone().unwrap_or_default() };
        let result = engine.decide(&args.id, args.gate.as_deref(), request).await;
        engine.shutdown().await;
        match result {
            Ok(outcome) => {
                match cli.output {
                    OutputFormat::Json => print_json(&serde_json::to_value(&outcome).unwrap_or_default()),
                    OutputFormat::Text => {
                        let replayed = if outcome.replayed { " (repeated request: nothing changed)" } else { "" };
                        println!(
                            "{}: gate {}/{} {} by {}{replayed}; gate {}, instance {}",
                            outcome.instance,
                            outcome.phase,
                            outcome.gate,
                            outcome.kind.past(),
                            outcome.principal,
                            outcome.gate_status,
                            outcome.instance_status
                        );
                    }
                }
                EXIT_OK
            }
            Err(error) => report(&error),
        }
    })
}

/// `phasegate approvals`.
pub(super) fn approvals(cli: &Cli, args: &ApprovalsArgs) -> u8 {
    let Ok(runtime) = runtime() else {
        return EXIT_USAGE;
    };
    runtime.block_on(async {
        let engine = match open_engine(cli, Mode::Passive, 1).await {
            Ok(engine) => engine,
            Err(status) => return status,
        };
        let result = engine.approvals(args.principal.as_deref());
        engine.shutdown().await;
        let pending = match result {
            Ok(pending) => pending,
            Err(error) => return report(&error),
        };
        let now = Timestamp::now();
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
                    println!(
                        "{} {}/{}  level {}, {}/{} approvals from {}; waiting {waiting}{deadline}{notes}{warnings}",
                        p.instance,
                        p.phase,
                        p.gate,
                        p.level,
                        p.approvals.len(),
                        p.required,
                        p.approvers.join(", ")
                    );
                }
            }
        }
        EXIT_OK
    })
}

/// `phasegate advance`.
pub(super) fn advance(cli: &Cli, id: &str) -> u8 {
    let Ok(runtime) = runtime() else {
        return EXIT_USAGE;
    };
    runtime.block_on(async {
        let engine = match open_engine(cli, Mode::Passive, 1).await {
            Ok(engine) => engine,
            Err(status) => return status,
        };
        let result = engine.advance(id).await;
        engine.shutdown().await;
        let report_value = match result {
            Ok(report) => report,
            Err(error) => return report(&error),
        };
        match cli.output {
            OutputFormat::Json => print_json(&serde_json::to_value(&report_value).unwrap_or_default()),
            OutputFormat::Text => {
                if report_value.appended > 0 {
                    println!("{id}: advanced ({} event(s)); now {}", report_value.appended, report_value.status);
                } else {
                    println!("{id}: {}; nothing to advance", report_value.status);
                }
                for blocker in &report_value.blockers {
                    println!("  blocked: {}", blocker.message);
                }
            }
        }
        if report_value.appended == 0 && !report_value.blockers.is_empty() {
            EXIT_INVALID
        } else {
            EXIT_OK
        }
    })
}

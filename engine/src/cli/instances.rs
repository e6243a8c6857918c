//! Commands that start, drive, command and read instances.

use serde_json::json;

use super::args::*;
use super::common::{command, command_with, print_json};
use crate::model::Source;
use crate::runtime::Error;
use crate::StartOptions;

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
                match engine {
                    super::backend::Backend::Remote(_) => eprintln!("started {id}; the server drives it (`phasegate status {id}`)"),
                    super::backend::Backend::Local(_) => eprintln!("started {id}; `phasegate run --until-idle` drives it"),
                }
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
            Operation::RetryPhase { phase } => super::backend::Operation::RetryPhase { by, phase },
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
    RetryPhase { phase: &'a str },
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
    let mut window = [None, None];
    for (slot, (flag, text)) in window.iter_mut().zip([("--since", &args.since), ("--until", &args.until)]) {
        if let Some(text) = text {
            match crate::report::parse_instant(text) {
                Ok(at) => *slot = Some(at),
                Err(problem) => return fail!("usage", EXIT_USAGE, "{flag}: {problem}"),
            }
        }
    }
    let [since, until] = window;
    command(cli, async |engine| {
        let (instance, workflow) = engine.instance(&args.id).await?;
        let history = engine.history(&args.id).await?;
        let input = crate::report::Input {
            instance: &instance,
            workflow: &workflow,
            history: &history,
            now: crate::runtime::clock::system_now(),
            phase: args.phase.as_deref(),
            since,
            until,
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

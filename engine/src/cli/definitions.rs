//! `validate`, `graph` and `schema`: commands that read definitions and write
//! nothing but their output.

use std::io::Write as _;

use serde::Serialize;

use super::args::*;
use super::common::print_json;
use crate::model::{Diagnostics, Kind};
use crate::plan::{self, AgentNames, Workflow};

fn agent_names(extra: &[String]) -> AgentNames {
    extra.iter().fold(AgentNames::builtin(), |names, name| names.with(name.clone()))
}

/// The exit status a set of diagnostics calls for: I/O and file-type problems
/// are usage errors (2), everything else an invalid definition (1).
fn failure_status(diagnostics: &Diagnostics) -> u8 {
    let usage = diagnostics.iter().any(|d| matches!(d.kind, Kind::Io | Kind::UnsupportedFormat));
    if usage {
        EXIT_USAGE
    } else {
        EXIT_INVALID
    }
}

#[derive(Serialize)]
struct FileReport<'a> {
    file: &'a std::path::Path,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow: Option<Summary>,
    diagnostics: Diagnostics,
}

#[derive(Serialize)]
struct Summary {
    name: String,
    version: u32,
    phases: usize,
    tasks: usize,
    gates: usize,
    watches: usize,
    triggers: usize,
}

impl Summary {
    fn of(workflow: &Workflow) -> Self {
        let count = |f: fn(&plan::Phase) -> usize| workflow.phases.iter().map(f).sum();
        Self {
            name: workflow.name.clone(),
            version: workflow.version,
            phases: workflow.phases.len(),
            tasks: count(|p| p.tasks.len()),
            gates: count(|p| p.gates.len()),
            watches: count(|p| p.watches.len()),
            triggers: count(|p| p.triggers.len()),
        }
    }
}

pub(super) fn validate(cli: &Cli, args: &ValidateArgs) -> u8 {
    let agents = agent_names(&args.agents);
    let mut status = EXIT_OK;
    let mut reports = Vec::new();
    // With a roles configuration, a `required_from` role nobody holds is an
    // error now rather than a gate that can never pass.
    let roles = cli.config().map(|c| c.roles()).unwrap_or_default();
    for file in &args.files {
        let report = match plan::load(file, &agents) {
            Ok(workflow) => {
                let staffed = |role: &str| roles.0.get(role).is_some_and(|members| !members.is_empty());
                let problems = if roles.0.is_empty() { Vec::new() } else { workflow.unstaffed_roles(staffed) };
                if problems.is_empty() {
                    FileReport { file, valid: true, workflow: Some(Summary::of(&workflow)), diagnostics: Diagnostics::default() }
                } else {
                    let root = crate::model::FieldPath::root();
                    let diagnostics = Diagnostics(
                        problems
                            .into_iter()
                            .map(|m| crate::model::Diagnostic::new(crate::model::Kind::UnknownReference, &root, m))
                            .collect(),
                    );
                    status = status.max(failure_status(&diagnostics));
                    FileReport { file, valid: false, workflow: None, diagnostics }
                }
            }
            Err(diagnostics) => {
                status = status.max(failure_status(&diagnostics));
                FileReport { file, valid: false, workflow: None, diagnostics }
            }
        };
        reports.push(report);
    }
    match cli.output {
        OutputFormat::Json => print_json(&reports),
        OutputFormat::Text => {
            let mut stdout = std::io::stdout().lock();
            let mut stderr = std::io::stderr().lock();
            for report in &reports {
                match &report.workflow {
                    Some(summary) => {
                        let _ = writeln!(
                            stdout,
                            "ok: {} — workflow `{}` v{}: {} phases, {} tasks, {} gates, {} watches, {} triggers",
                            report.file.display(),
                            summary.name,
                            summary.version,
                            summary.phases,
                            summary.tasks,
                            summary.gates,
                            summary.watches,
                            summary.triggers
                        );
                    }
                    None => {
                        let _ = writeln!(stderr, "{}", report.diagnostics);
                    }
                }
            }
            let invalid: Vec<&FileReport<'_>> = reports.iter().filter(|r| !r.valid).collect();
            if !invalid.is_empty() {
                let problems: usize = invalid.iter().map(|r| r.diagnostics.len()).sum();
                let _ = writeln!(stderr, "\n{} of {} file(s) invalid, {problems} problem(s) in all", invalid.len(), reports.len());
            }
        }
    }
    status
}

pub(super) fn graph(cli: &Cli, args: &GraphArgs) -> u8 {
    let workflow = match plan::load(&args.file, &agent_names(&args.agents)) {
        Ok(workflow) => workflow,
        Err(diagnostics) => {
            match cli.output {
                OutputFormat::Json => print_json(&diagnostics),
                OutputFormat::Text => eprintln!("{diagnostics}"),
            }
            return failure_status(&diagnostics);
        }
    };
    let text = match args.format {
        GraphFormat::Dot => plan::to_dot(&workflow),
        GraphFormat::Mermaid => plan::to_mermaid(&workflow),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    EXIT_OK
}

pub(super) fn schema() -> u8 {
    let _ = std::io::stdout().lock().write_all(crate::model::json_schema_text().as_bytes());
    EXIT_OK
}

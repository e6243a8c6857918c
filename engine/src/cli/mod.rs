//! The `phasegate` command line: argument parsing and one module per group of
//! commands. Compiled only with the `cli` feature so embedders do not pay for
//! clap.

#[macro_use]
mod output;
mod backend;
mod backup;
mod definitions;
mod demo_target;
mod gates;
mod instances;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the input was understood and refused (an invalid definition, say).
pub const EXIT_INVALID: u8 = 1;
/// Exit status: usage or I/O error.
pub const EXIT_USAGE: u8 = 2;

/// phasegate: durable release workflows with quality gates and human approvals.
#[derive(Debug, Parser)]
#[command(name = "phasegate", bin_name = "phasegate", version, about, long_about = None)]
pub struct Cli {
    /// The data directory holding the store.
    #[arg(long, global = true, env = "PHASEGATE_DB", default_value = ".phasegate")]
    pub db: PathBuf,
    /// Output format of commands that print results.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Who you are, recorded with every command and checked by gates.
    #[arg(long = "as", global = true, env = "PHASEGATE_USER", value_name = "PRINCIPAL")]
    pub principal: Option<String>,
    /// The configuration file (roles, limits); default: phasegate.toml beside the data directory.
    #[arg(long, global = true, env = "PHASEGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Format of log lines on stderr (filtered by RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// For scripts: one JSON document on stdout.
    Json,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check definition files and report every problem (exit 0 valid, 1 invalid, 2 usage or I/O error).
    Validate(definitions::ValidateArgs),
    /// Print the phase/task graph of a definition as Graphviz DOT or Mermaid.
    Graph(definitions::GraphArgs),
    /// Print the JSON Schema of the definition format.
    Schema,
    /// Start an instance of a definition (pins it; prints the instance id).
    Start(instances::StartArgs),
    /// Drive instances: dispatch tasks, retry, follow the phase graph.
    Run(instances::RunArgs),
    /// Show an instance's phases and tasks (or list all instances).
    Status(instances::StatusArgs),
    /// List instances, optionally by status.
    List(instances::ListArgs),
    /// Show every event of an instance.
    History(instances::InstanceArgs),
    /// Stop new dispatch (in-flight attempts finish unless --cancel-running).
    Halt(instances::HaltArgs),
    /// Let a halted instance go on (a rollback halted by a failed compensation goes on with it).
    Resume(instances::InstanceArgs),
    /// Run the compensations of completed work in reverse completion order (`run` carries them out).
    Rollback(instances::RollbackArgs),
    /// Cancel an instance.
    Cancel(instances::CancelArgs),
    /// Redrive a failed instance from its failed tasks (or one task), keeping what succeeded.
    Retry(instances::RetryArgs),
    /// Approve at a gate (counts toward its quorum).
    Approve(gates::DecisionArgs),
    /// Reject at a gate: the phase fails.
    Reject(gates::DecisionArgs),
    /// Put a gate on hold for remediation (`retry` re-runs tasks, then the gate is evaluated again).
    Hold(gates::DecisionArgs),
    /// Move a gate's decision to the next escalation level.
    Escalate(gates::DecisionArgs),
    /// List the decisions people are waiting for.
    Approvals(gates::ApprovalsArgs),
    /// Move an instance past a gate that passed, or say exactly what blocks it.
    Advance(instances::InstanceArgs),
    /// Deliver an external event (an incident, say) that conditions read as signals.NAME.
    Signal(instances::SignalArgs),
    /// Render a report from an instance's log: readiness, gate, checklist, certificate, ops (Markdown or JSON).
    Report(instances::ReportArgs),
    /// Drive instances like `run` and serve the control API (HTTP JSON, token-authenticated) for the CLI and tools.
    Serve(serve::ServeArgs),
    /// Write a consistent copy of the store (live, through a running server) into a new directory.
    Backup(backup::BackupArgs),
    /// Copy a backup into a new data directory (--db), never over an existing store.
    Restore(backup::RestoreArgs),
    /// Serve the demo service the shipped release lifecycle checks, deploys and rolls back (loopback only).
    DemoTarget(demo_target::DemoTargetArgs),
}

impl Cli {
    /// The configuration: `--config`, or phasegate.toml beside the data
    /// directory when it exists, or none.
    pub fn config(&self) -> Result<crate::config::Config, String> {
        match &self.config {
            Some(path) => crate::config::Config::read(path),
            None => {
                let beside = self
                    .db
                    .parent()
                    .map(|p| if p.as_os_str().is_empty() { std::path::Path::new(".") } else { p })
                    .unwrap_or(std::path::Path::new("."))
                    .join("phasegate.toml");
                if beside.is_file() {
                    crate::config::Config::read(&beside)
                } else {
                    Ok(crate::config::Config::default())
                }
            }
        }
    }

    /// The principal commands are recorded under: `--as`, `PHASEGATE_USER`, `USER`.
    pub fn principal(&self) -> String {
        self.principal
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// Runs the CLI with the process's arguments and returns its exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    init_logging(cli.log_format);
    output::set_json_errors(cli.output == OutputFormat::Json);
    let status = match &cli.command {
        Command::Validate(args) => definitions::validate(&cli, args),
        Command::Graph(args) => definitions::graph(&cli, args),
        Command::Schema => definitions::schema(),
        Command::Start(args) => instances::start(&cli, args),
        Command::Run(args) => instances::run(&cli, args),
        Command::Status(args) => instances::status(&cli, args),
        Command::List(args) => instances::list(&cli, args),
        Command::History(args) => instances::history(&cli, args),
        Command::Halt(args) => {
            instances::operate(&cli, &args.id, instances::Operation::Halt { cancel_running: args.cancel_running, reason: &args.reason })
        }
        Command::Resume(args) => instances::operate(&cli, &args.id, instances::Operation::Resume),
        Command::Rollback(args) => {
            instances::operate(&cli, &args.id, instances::Operation::Rollback { to: args.to.as_deref(), reason: &args.reason })
        }

        Command::Cancel(args) => instances::operate(&cli, &args.id, instances::Operation::Cancel { reason: &args.reason }),
        Command::Retry(args) => instances::operate(&cli, &args.id, instances::Operation::Retry { task: args.task.as_deref() }),
        Command::Approve(args) => gates::decide(&cli, crate::machine::DecisionKind::Approve, args),
        Command::Reject(args) => gates::decide(&cli, crate::machine::DecisionKind::Reject, args),
        Command::Hold(args) => gates::decide(&cli, crate::machine::DecisionKind::Hold, args),
        Command::Escalate(args) => gates::decide(&cli, crate::machine::DecisionKind::Escalate, args),
        Command::Approvals(args) => gates::approvals(&cli, args),
        Command::Advance(args) => gates::advance(&cli, &args.id),
        Command::Signal(args) => instances::signal(&cli, args),
        Command::DemoTarget(args) => demo_target::run(args),
        Command::Serve(args) => serve::serve(&cli, args),
        Command::Report(args) => instances::report_command(&cli, args),
        Command::Backup(args) => backup::backup(&cli, args),
        Command::Restore(args) => backup::restore(&cli, args),
    };
    ExitCode::from(status)
}

fn init_logging(format: LogFormat) {
    // sled's own log lines (through the `log` crate) are its internals, not
    // the user's business: off unless RUST_LOG asks for them.
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sled=off"));
    // Colour codes only for a person at a terminal, never into a file or pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

//! Every command's arguments, as clap parses them: the one place the CLI's
//! surface is declared, imported by the modules that carry commands out (and
//! importing none of them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// A PostgreSQL store shared by several nodes (postgres://USER@HOST:PORT/DATABASE) instead of
    /// the sled store in --db, which then keeps only this node's files (task logs, admin token).
    #[arg(long, global = true, env = "PHASEGATE_STORE", value_name = "URL", hide_env_values = true)]
    pub store: Option<String>,
    /// Output format of commands that print results.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Who you are, against a store with no server (recorded as asserted, not proven). Through a
    /// server your token says who you are, and --as must match it.
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
    Validate(ValidateArgs),
    /// Print the phase/task graph of a definition as Graphviz DOT or Mermaid.
    Graph(GraphArgs),
    /// Print the JSON Schema of the definition format.
    Schema,
    /// Start an instance of a definition (pins it; prints the instance id).
    Start(StartArgs),
    /// Drive instances: dispatch tasks, retry, follow the phase graph.
    Run(RunArgs),
    /// Show an instance's phases and tasks (or list all instances).
    Status(StatusArgs),
    /// List instances, optionally by status.
    List(ListArgs),
    /// Show every event of an instance (`--follow`: and each new one as it is made durable).
    History(HistoryArgs),
    /// Show what a task printed (stdout and stderr, per attempt; `--follow` while it runs).
    Logs(LogsArgs),
    /// Stop new dispatch (in-flight attempts finish unless --cancel-running).
    Halt(HaltArgs),
    /// Let a halted instance go on (a rollback halted by a failed compensation goes on with it).
    Resume(InstanceArgs),
    /// Run the compensations of completed work in reverse completion order (`run` carries them out).
    Rollback(RollbackArgs),
    /// Cancel an instance.
    Cancel(CancelArgs),
    /// Redrive a failed instance from its failed tasks (or one task), keeping what succeeded.
    Retry(RetryArgs),
    /// Approve at a gate (counts toward its quorum).
    Approve(DecisionArgs),
    /// Reject at a gate: the phase fails.
    Reject(DecisionArgs),
    /// Put a gate on hold for remediation (`retry` re-runs tasks, then the gate is evaluated again).
    Hold(DecisionArgs),
    /// Move a gate's decision to the next escalation level.
    Escalate(DecisionArgs),
    /// List the decisions people are waiting for.
    Approvals(ApprovalsArgs),
    /// Move an instance past a gate that passed, or say exactly what blocks it.
    Advance(InstanceArgs),
    /// Deliver an external event (an incident, say) that conditions read as signals.NAME.
    Signal(SignalArgs),
    /// Render a report from an instance's log: readiness, gate, checklist, certificate, ops (Markdown or JSON).
    Report(ReportArgs),
    /// Drive instances like `run`; serve the control API (HTTP JSON, authenticated) and the web console at /console/.
    Serve(ServeArgs),
    /// Check the tamper-evident audit chain of instances (exit 1 naming the first record that does not match).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write a consistent copy of the store (live, through a running server) into a new directory.
    Backup(BackupArgs),
    /// Copy a backup into a new data directory (--db), never over an existing store.
    Restore(RestoreArgs),
    /// Issue, list and revoke people's API tokens (admin: through a server, the admin token).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Keep your API token in your credentials file (read from standard input, stored with mode 0600).
    Login(LoginArgs),
    /// Show who a running server takes you to be (your credential, your roles).
    Whoami,
    /// The store's own settings.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print the shell code that completes phasegate's commands, flags, instance ids and gates (from the store).
    Completions(CompletionsArgs),
}

/// Arguments of `phasegate completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// A shell `completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// `source <(phasegate completions bash)` in ~/.bashrc.
    Bash,
    /// `source <(phasegate completions zsh)` in ~/.zshrc.
    Zsh,
    /// `phasegate completions fish | source` in ~/.config/fish/config.fish.
    Fish,
    /// `phasegate completions powershell | Out-String | Invoke-Expression` in $PROFILE.
    Powershell,
    /// `eval (phasegate completions elvish | slurp)` in ~/.elvish/rc.elv.
    Elvish,
}

impl Shell {
    /// The name clap_complete knows the shell by.
    pub fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
            Shell::Powershell => "powershell",
            Shell::Elvish => "elvish",
        }
    }
}

/// What a person does with each command, for `phasegate --help`: define,
/// run, decide, operate, report (and set up).
pub const GROUPS: [(&str, &[&str]); 6] = [
    ("Define", &["validate", "graph", "schema"]),
    ("Run and watch", &["start", "run", "serve", "status", "list", "history", "logs"]),
    ("Decide", &["approvals", "approve", "reject", "hold", "escalate", "advance"]),
    ("Operate", &["halt", "resume", "cancel", "retry", "rollback", "signal", "backup", "restore"]),
    ("Report and audit", &["report", "audit"]),
    ("Set up", &["users", "login", "whoami", "store", "completions"]),
];

/// `phasegate users ...`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Issue NAME an API token (printed once on standard output; only its hash is stored).
    Add(UsersAddArgs),
    /// List the users, their roles and token ids (never the tokens).
    List,
    /// Revoke NAME's token: the server refuses it from now on.
    Revoke(UsersRevokeArgs),
}

/// Arguments of `phasegate users add`.
#[derive(Debug, Args)]
pub struct UsersAddArgs {
    /// The user's name: the principal their requests act as.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// A role to grant on top of phasegate.toml's [roles]; repeatable.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
}

/// Arguments of `phasegate users revoke`.
#[derive(Debug, Args)]
pub struct UsersRevokeArgs {
    /// The user whose token is revoked.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// Arguments of `phasegate login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Write the credentials here instead of $PHASEGATE_CREDENTIALS or ~/.config/phasegate/credentials.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `phasegate store ...`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Show the store's policy, or change it (admin: through a server, the admin token).
    Policy(PolicyArgs),
    /// Create or upgrade the PostgreSQL store's schema (--store URL); run once before starting nodes of a new version.
    Migrate,
    /// Copy a whole store into a new one: a sled data directory into PostgreSQL, or back.
    Copy(CopyArgs),
}

/// Arguments of `phasegate store copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy: a data directory, or a postgres:// URL.
    #[arg(long, value_name = "DIR|URL")]
    pub from: String,
    /// Where to copy it: a new (empty) directory, or an empty PostgreSQL database.
    #[arg(long, value_name = "DIR|URL")]
    pub to: String,
}

/// Arguments of `phasegate store policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Refuse decisions no credential proved (the CLI with no server), so every decision goes through the server.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub require_authenticated_decisions: Option<bool>,
}

impl Cli {
    /// The PostgreSQL store to use: `--store` (or `PHASEGATE_STORE`), else
    /// the configuration's `[store] url`; none for the sled store in --db.
    pub fn store_url(&self) -> Result<Option<String>, String> {
        let url = match &self.store {
            Some(url) => Some(url.clone()),
            None => self.config()?.store.url,
        };
        match url {
            Some(url) if !phasegate_store::postgres::is_url(&url) => Err(format!(
                "--store {:?}: give a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE); the embedded sled store is chosen with --db DIR",
                if url.contains('@') { "(a URL, hidden)" } else { url.as_str() }
            )),
            other => Ok(other),
        }
    }

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

    /// The principal the caller named: `--as` or `PHASEGATE_USER`.
    pub fn named(&self) -> Option<&str> {
        self.principal.as_deref().map(str::trim).filter(|p| !p.is_empty())
    }

    /// The principal commands against the local store are recorded under: `--as`, `PHASEGATE_USER`, `USER`.
    pub fn principal(&self) -> String {
        self.principal
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

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
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: String,
}

/// Arguments of `phasegate status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The instance id; without it, every instance is listed.
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: Option<String>,
    /// Redraw the instance's state as events are made durable (in a terminal; elsewhere a line per change),
    /// until it is done; the exit status is its outcome.
    #[arg(long, requires = "id")]
    pub watch: bool,
}

/// Arguments of `phasegate logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The instance id.
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: String,
    /// The task (or rollback step); default: every task that printed something.
    #[arg(value_name = "TASK")]
    pub task: Option<String>,
    /// The attempt (default: the latest).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Keep printing new lines while the attempt runs; ends when it does.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// Arguments of `phasegate history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The instance id.
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: String,
    /// Print each new event as it is made durable, until the instance is done; the exit status is its outcome.
    #[arg(long, short = 'f')]
    pub follow: bool,
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
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
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
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
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
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: String,
    /// Why, recorded in the history.
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// Arguments of `phasegate retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The instance id.
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: String,
    /// Only this task (default: every failed or cancelled task).
    #[arg(value_name = "TASK", conflicts_with = "phase")]
    pub task: Option<String>,
    /// Run this whole phase again instead (every task, then its gates): after
    /// a gate failed, or while it is on hold for remediation.
    #[arg(long, value_name = "PHASE")]
    pub phase: Option<String>,
}

/// Arguments of `phasegate signal`.
#[derive(Debug, Args)]
pub struct SignalArgs {
    /// The instance id.
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: String,
    /// The signal's name, as declared under [signals.NAME].
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The signal's data, as JSON (e.g. '{"severity": "P1"}'); default {}.
    #[arg(long, default_value = "{}")]
    pub data: String,
}

/// Arguments of `phasegate report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The instance id.
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: String,
    /// Which report: readiness, gate, checklist, certificate, deployment, ops.
    #[arg(long)]
    pub kind: String,
    /// md (Markdown, default) or json.
    #[arg(long, default_value = "md")]
    pub format: String,
    /// certificate: the phase, or `all` for every phase that passed (default: the last that passed); readiness: the last phase
    /// covered (default: all started); deployment: the phase that deployed (default: the latest started phase whose tasks declare a rollback).
    #[arg(long, value_name = "PHASE")]
    pub phase: Option<String>,
    /// ops: the period's start, inclusive (2026-11-01, 2026-11 or RFC 3339; default: the last calendar month, or the month so
    /// far for an instance started since).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// ops: the period's end, exclusive (default: the end of the last calendar month, or now when only --since is given).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

/// Arguments of the decision commands.
#[derive(Debug, Args)]
pub struct DecisionArgs {
    /// The instance id.
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: String,
    /// The gate (`phase/gate` or a gate id); optional when exactly one gate awaits a decision.
    #[arg(value_name = "GATE", add = clap_complete::ArgValueCompleter::new(super::candidates::gates))]
    pub gate: Option<String>,
    /// Why; recorded with the decision and shown in reports.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// An id for this request: repeating a request with the same id returns
    /// the original outcome and changes nothing.
    #[arg(long)]
    pub request_id: Option<String>,
    /// An input the gate declares: `--input name=value` (typed by its
    /// declaration; lists and objects as JSON); repeatable, with `approve`.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
}

/// Arguments of `phasegate approvals`.
#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// Only decisions this principal may take (directly or through a role).
    #[arg(long = "for", value_name = "PRINCIPAL")]
    pub principal: Option<String>,
}

/// Arguments of `phasegate validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Definition files (.toml or .json).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also accept this agent name (one registered by an embedding program or plugin); repeatable.
    #[arg(long = "agent", value_name = "NAME")]
    pub agents: Vec<String>,
}

/// Arguments of `phasegate graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The definition file (.toml or .json).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The graph language to print.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// Also accept this agent name; repeatable.
    #[arg(long = "agent", value_name = "NAME")]
    pub agents: Vec<String>,
}

/// Graph languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart, for Markdown pages.
    Mermaid,
}

/// `phasegate audit ...`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check each stored record's link to the one before it, the log's end
    /// against its head and snapshot, and optionally a head a certificate or
    /// report carried (`--head SEQ:HASH`).
    Verify(AuditVerifyArgs),
}

/// Arguments of `phasegate audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The instance (default: every instance).
    #[arg(value_name = "ID", add = clap_complete::ArgValueCompleter::new(super::candidates::instances))]
    pub id: Option<String>,
    /// A chain head from a certificate or report (`SEQ:HASH`): the store must still hold that record.
    #[arg(long, value_name = "SEQ:HASH", requires = "id")]
    pub head: Option<String>,
}

/// Arguments of `phasegate backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new directory to write the copy into (must not exist, or be empty).
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
}

/// Arguments of `phasegate restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore (a directory written by `phasegate backup`).
    #[arg(value_name = "SRC")]
    pub source: PathBuf,
}

/// Arguments of `phasegate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; see the address file).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,
    /// Allow a non-loopback address (every request still needs the token).
    #[arg(long)]
    pub allow_remote: bool,
    /// Most task attempts running at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

//! The `phasegate` command line: argument parsing and one module per group of
//! commands. Compiled only with the `cli` feature so embedders do not pay for
//! clap.

//!
//! Imports run one way: `args` (what clap parses, with the value completers
//! of `candidates`) and `output` (how results are printed) import no command
//! module; `backend` and `common` build on
//! them; the command modules (`definitions`, `instances`, `run`, `status`,
//! `gates`, `serve`, `backup`, `identity`, `complete`) use those and the
//! helpers `progress` and `candidates`, and not each other; this file
//! only dispatches. Events in words come from `crate::describe`, shared with
//! the web console.

#[macro_use]
mod output;
mod args;
mod backend;
mod backup;
mod candidates;
mod common;
mod complete;
mod definitions;
mod gates;
mod identity;
mod instances;
mod progress;
mod run;
mod serve;
mod status;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

pub use args::*;

/// The CLI's definition, with `--help` listing the commands by what a
/// person does with them ([`GROUPS`]) instead of in one long list.
pub fn command() -> clap::Command {
    let command = Cli::command();
    let mut listing = String::new();
    for (group, names) in GROUPS {
        listing.push_str(group);
        listing.push_str(":\n");
        for name in names {
            let about = command.find_subcommand(name).and_then(|c| c.get_about()).map(ToString::to_string).unwrap_or_default();
            listing.push_str(&format!("  {name:<12} {about}\n"));
        }
        listing.push('\n');
    }
    let template = String::from("{about-with-newline}\n{usage-heading} {usage}\n\n") + &listing + "Options:\n{options}{after-help}";
    command.help_template(template).after_help("`phasegate COMMAND --help` says more about each; docs/ has the manual.")
}

/// Runs the CLI with the process's arguments and returns its exit status.
pub fn main() -> ExitCode {
    // A shell asking for completions gets them, and nothing else runs.
    complete::answer_if_asked();
    let cli = match command().try_get_matches().and_then(|matches| Cli::from_arg_matches(&matches)) {
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
        Command::Run(args) => run::run(&cli, args),
        Command::Status(args) => status::status(&cli, args),
        Command::List(args) => status::list(&cli, args),
        Command::History(args) => status::history(&cli, args),
        Command::Logs(args) => status::logs(&cli, args),
        Command::Halt(args) => {
            instances::operate(&cli, &args.id, instances::Operation::Halt { cancel_running: args.cancel_running, reason: &args.reason })
        }
        Command::Resume(args) => instances::operate(&cli, &args.id, instances::Operation::Resume),
        Command::Rollback(args) => {
            instances::operate(&cli, &args.id, instances::Operation::Rollback { to: args.to.as_deref(), reason: &args.reason })
        }

        Command::Cancel(args) => instances::operate(&cli, &args.id, instances::Operation::Cancel { reason: &args.reason }),
        Command::Retry(args) => match &args.phase {
            Some(phase) => instances::operate(&cli, &args.id, instances::Operation::RetryPhase { phase }),
            None => instances::operate(&cli, &args.id, instances::Operation::Retry { task: args.task.as_deref() }),
        },
        Command::Approve(args) => gates::decide(&cli, crate::machine::DecisionKind::Approve, args),
        Command::Reject(args) => gates::decide(&cli, crate::machine::DecisionKind::Reject, args),
        Command::Hold(args) => gates::decide(&cli, crate::machine::DecisionKind::Hold, args),
        Command::Escalate(args) => gates::decide(&cli, crate::machine::DecisionKind::Escalate, args),
        Command::Approvals(args) => gates::approvals(&cli, args),
        Command::Advance(args) => gates::advance(&cli, &args.id),
        Command::Signal(args) => instances::signal(&cli, args),
        Command::Serve(args) => serve::serve(&cli, args),
        Command::Report(args) => instances::report_command(&cli, args),
        Command::Audit(AuditCommand::Verify(args)) => backup::audit_verify(&cli, args),
        Command::Backup(args) => backup::backup(&cli, args),
        Command::Restore(args) => backup::restore(&cli, args),
        Command::Users(UsersCommand::Add(args)) => identity::add(&cli, args),
        Command::Users(UsersCommand::List) => identity::list(&cli),
        Command::Users(UsersCommand::Revoke(args)) => identity::revoke(&cli, args),
        Command::Login(args) => identity::login(&cli, args),
        Command::Whoami => identity::whoami(&cli),
        Command::Store(StoreCommand::Policy(args)) => identity::policy(&cli, args),
        Command::Store(StoreCommand::Migrate) => backup::migrate(&cli),
        Command::Store(StoreCommand::Copy(args)) => backup::copy(&cli, args),
        Command::Completions(args) => complete::completions(args.shell),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command is listed in `--help`, in exactly one group.
    #[test]
    fn every_command_is_in_one_help_group() {
        let command = Cli::command();
        for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
            let groups = GROUPS.iter().filter(|(_, names)| names.contains(&sub.get_name())).count();
            assert_eq!(groups, 1, "`{}` is in {groups} groups of GROUPS", sub.get_name());
        }
        for (_, names) in GROUPS {
            for name in names {
                assert!(command.find_subcommand(name).is_some(), "GROUPS names `{name}`, which is no command");
            }
        }
    }
}

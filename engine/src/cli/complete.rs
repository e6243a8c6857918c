//! Shell completion: `phasegate completions SHELL` prints the shell code
//! that asks this binary for completions as the user types (clap_complete's
//! dynamic completion), so commands and flags complete from the definition
//! of the CLI, and instance ids and waiting gates from the store
//! (`candidates`).

use clap::CommandFactory as _;

use super::args::{Cli, Shell, EXIT_OK, EXIT_USAGE};

/// Answers a completion request (`COMPLETE=SHELL phasegate ...`, as the
/// registered shell code runs it) and exits; returns for any other run.
pub(super) fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(super::command).complete();
}

/// `phasegate completions SHELL`: the registration code for the shell.
pub(super) fn completions(shell: Shell) -> u8 {
    let shells = clap_complete::env::Shells::builtins();
    let Some(completer) = shells.completer(shell.name()) else {
        return fail!("usage", EXIT_USAGE, "completions: no completer for {}", shell.name());
    };
    let binary = std::env::current_exe().map_or_else(|_| "phasegate".to_owned(), |p| p.to_string_lossy().into_owned());
    let name = Cli::command().get_name().to_owned();
    let mut out = Vec::new();
    if let Err(error) = completer.write_registration("COMPLETE", &name, &name, &binary, &mut out) {
        return fail!("usage", EXIT_USAGE, "completions: {error}");
    }
    super::output::with_stdout(|stdout| stdout.write_all(&out));
    EXIT_OK
}

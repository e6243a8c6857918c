//! Shell completion: `phasegate completions SHELL` prints the shell code
//! that asks this binary for completions as the user types (clap_complete's
//! dynamic completion), so commands and flags complete from the definition
//! of the CLI, and instance ids and waiting gates from the store itself
//! (through its running server when there is one). The store is
//! `$PHASEGATE_DB`, or `.phasegate` in the current directory: a completer
//! sees only the word being completed, not the rest of the line.

use clap::CommandFactory as _;
use clap_complete::CompletionCandidate;

use super::args::{Cli, Shell, EXIT_OK, EXIT_USAGE};
use super::backend::Backend;

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

/// What the store says, for a completer: nothing when there is no store
/// or it cannot be read (completion must never print an error).
fn ask<T: Default>(body: impl AsyncFnOnce(&Backend) -> Result<T, crate::runtime::Error>) -> T {
    let db = std::env::var_os("PHASEGATE_DB").map_or_else(|| std::path::PathBuf::from(".phasegate"), std::path::PathBuf::from);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return T::default() };
    runtime.block_on(async {
        let backend = match super::backend::find_server(&db, None).await {
            Ok(Some(remote)) => Backend::Remote(remote),
            Ok(None) => match crate::Engine::builder().store_path(&db).create_store(false).mode(crate::Mode::Passive).build().await {
                Ok(engine) => Backend::Local(engine),
                Err(_) => return T::default(),
            },
            Err(_) => return T::default(),
        };
        let answer = body(&backend).await.unwrap_or_default();
        backend.shutdown().await;
        answer
    })
}

/// Instance ids that start with what was typed.
pub(super) fn instances(current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().into_owned();
    let rows = ask(async |backend: &Backend| backend.list(None).await);
    rows.into_iter()
        .filter(|(id, _)| id.starts_with(&typed))
        .map(|(id, summary)| CompletionCandidate::new(id).help(Some(format!("{} {}", summary.workflow, summary.status.as_str()).into())))
        .collect()
}

/// The gates (`phase/gate`) waiting for a decision that start with what was typed.
pub(super) fn gates(current: &std::ffi::OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().into_owned();
    let pending = ask(async |backend: &Backend| backend.approvals(None).await);
    let mut names: Vec<(String, String)> =
        pending.into_iter().map(|p| (format!("{}/{}", p.phase, p.gate), p.instance)).filter(|(gate, _)| gate.starts_with(&typed)).collect();
    names.sort();
    names.dedup_by(|a, b| a.0 == b.0);
    names.into_iter().map(|(gate, instance)| CompletionCandidate::new(gate).help(Some(format!("waiting in {instance}").into()))).collect()
}

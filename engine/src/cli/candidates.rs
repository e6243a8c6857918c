//! What a shell completes values with: instance ids and waiting gates from
//! the store itself (through its running server when there is one). The
//! store is `$PHASEGATE_DB`, or `.phasegate` in the current directory: a
//! completer sees only the word being completed, not the rest of the line.
//! `args` names these completers, so this module imports no command module
//! (and not `args`).

use clap_complete::CompletionCandidate;

use super::backend::Backend;

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

//! Helpers for the workspace-level tests: the real `phasegate` binary that
//! cargo builds for them, and scratch directories.
//!
//! Tests here run the binary as a user would, so they see exactly what a user
//! sees: exit status, stdout, stderr and the files left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) mod served;

/// Waits until `done` holds, asking again every 50 ms for at most 30 s, then
/// fails naming `what`: how a test waits on a process it does not drive
/// (a server, the binary), instead of sleeping and asserting.
pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// The repository root (where `Cargo.toml`, `workflows/` and `docs/` live).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Path of the `phasegate` binary under test: cargo builds it for this test
/// binary (the package's `phasegate-under-test` target, compiled from the
/// shipped `engine/src/main.rs`), so a test never runs a stale binary and
/// never builds one itself.
pub(crate) fn phasegate_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_phasegate-under-test"))
}

/// Path of an example of the engine crate. Cargo does not build examples for
/// another package's tests: `scripts/test` builds every target first, and
/// this fails with what to run when the example is missing.
pub(crate) fn example_bin(name: &str) -> PathBuf {
    let dir = phasegate_bin().parent().map(|dir| dir.join("examples")).unwrap_or_default();
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is not built: run `cargo build -p phasegate-engine --examples` (scripts/test does)", path.display());
    path
}

/// A `phasegate` command run in `dir`, with logging quiet, the store inside
/// `dir`, and no credential but the data directory's admin token (none from
/// the environment or the user's own credentials file).
pub(crate) fn phasegate(dir: &Path) -> Command {
    let mut command = Command::new(phasegate_bin());
    command
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("PHASEGATE_DB")
        .env_remove("PHASEGATE_USER")
        .env_remove("PHASEGATE_TOKEN")
        .env("PHASEGATE_CREDENTIALS", dir.join("no-credentials"));
    command
}

/// Runs `phasegate ARGS` in `dir` and returns what it did.
pub(crate) fn run(dir: &Path, args: &[&str]) -> Output {
    phasegate(dir).args(args).output().expect("phasegate runs")
}

/// Stdout of an output, as text.
pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr of an output, as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file below `dir` with its size, to prove a command wrote nothing.
pub(crate) fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.push((path.clone(), 0));
                pending.push(path);
            } else {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((path, size));
            }
        }
    }
    out.sort();
    out
}

//! Helpers for the workspace-level tests: the real `phasegate` binary, built
//! once per test process, and scratch directories.
//!
//! Tests here run the binary as a user would, so they see exactly what a user
//! sees: exit status, stdout, stderr and the files left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod served;

/// The repository root (where `Cargo.toml`, `workflows/` and `docs/` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Path of the `phasegate` binary, built from the current sources the first
/// time it is asked for, so a test never runs a stale binary.
pub fn phasegate_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Test executables live in <target>/<profile>/deps/.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>").to_path_buf();
        let target_dir = profile_dir.parent().expect("<target>").to_path_buf();
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
        let profile = if profile == "debug" { "dev" } else { profile };
        // The same selection and targets as scripts/test's build, so cargo
        // resolves the same features and finds everything already built; a
        // narrower `-p phasegate-engine` would unify features differently
        // and rebuild the engine and its dependencies a second time.
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "--workspace", "--all-targets", "--profile", profile])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(workspace_root());
        // `cargo test` gives this process the test crate's variables
        // (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...). Some build scripts (ring's)
        // rerun when one changes, so inheriting them would rebuild the
        // workspace here and again in the next plain `cargo build`.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            let from_cargo_test =
                ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"]
                    .iter()
                    .any(|prefix| name.starts_with(prefix));
            if from_cargo_test {
                build.env_remove(&name);
            }
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the phasegate binary failed");
        profile_dir.join(format!("phasegate{}", std::env::consts::EXE_SUFFIX))
    })
}

/// Path of an example of the engine crate (built with the `phasegate` binary
/// by the same workspace build).
pub fn example_bin(name: &str) -> PathBuf {
    let binary = phasegate_bin();
    binary.parent().map(|dir| dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX))).unwrap_or_default()
}

/// A `phasegate` command run in `dir`, with logging quiet and the store inside `dir`.
pub fn phasegate(dir: &Path) -> Command {
    let mut command = Command::new(phasegate_bin());
    command.current_dir(dir).env_remove("RUST_LOG").env_remove("PHASEGATE_DB").env_remove("PHASEGATE_USER");
    command
}

/// Runs `phasegate ARGS` in `dir` and returns what it did.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    phasegate(dir).args(args).output().expect("phasegate runs")
}

/// Stdout of an output, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr of an output, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file below `dir` with its size, to prove a command wrote nothing.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
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

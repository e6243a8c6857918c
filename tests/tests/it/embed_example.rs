//! engine/examples/embed.rs, run as a user would: it embeds the engine with a
//! custom in-process agent, follows the event stream, and shuts down cleanly
//! so the next run reopens the same store.

use crate::support::example_bin;

#[test]
fn the_embedding_example_runs_and_reopens_its_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for run in 1..=2 {
        let output = std::process::Command::new(example_bin("embed")).arg(&data).output().expect("the example runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "run {run}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("TaskSucceeded(rollout#1)"), "run {run}: {stdout}");
        assert!(stdout.contains("GateEvaluated(healthy)"), "run {run}: {stdout}");
        let last = stdout.lines().last().unwrap_or_default();
        assert!(last.starts_with("instance embedded-release-") && last.ends_with(": completed"), "run {run}: {stdout}");
    }
}

//! The instance commands as a user runs them: start, run, status, list,
//! history, halt, resume, cancel, retry; their refusals; the store lock.

use std::process::Stdio;

use crate::support::{phasegate, run, stderr, stdout};

const FLOW: &str = r#"
name = "flow"
[vars]
greeting = "hi"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "exec"
params = { argv = ["echo", "{\"built\": true}"] }
[[phases.tasks]]
id = "flaky"
agent = "exec"
depends_on = ["compile"]
params = { argv = ["sh", "-c", "test -e fixed"] }
[[phases]]
id = "ship"
after = ["build"]
[[phases.tasks]]
id = "deploy"
agent = "noop"
"#;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flow.toml"), FLOW).expect("write");
    dir
}

fn events(dir: &std::path::Path, id: &str) -> usize {
    let output = run(dir, &["--output", "json", "history", id]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).expect("json").len()
}

#[test]
fn start_run_fail_retry_and_complete() {
    let dir = setup();
    let path = dir.path();
    let started = run(path, &["--as", "alice", "start", "flow.toml", "--id", "f1", "--var", "greeting=hello"]);
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    assert_eq!(stdout(&started), "f1\n");

    // A release that failed is not a success: `run` exits 1 and names it.
    let ran = run(path, &["run", "--until-idle"]);
    assert_eq!(ran.status.code(), Some(1), "{}", stderr(&ran));
    assert!(stdout(&ran).contains("f1: failed"), "{}", stdout(&ran));
    assert!(stderr(&ran).contains("error: 1 ended f1 (failed)"), "{}", stderr(&ran));
    assert!(
        stderr(&ran).contains("f1  phase build failed: task flaky failed permanently") || stderr(&ran).contains("f1  task flaky failed"),
        "{}",
        stderr(&ran)
    );

    let status = run(path, &["status", "f1"]);
    let text = stdout(&status);
    assert!(text.contains("status    failed"), "{text}");
    assert!(text.contains("compile                  succeeded"), "{text}");
    assert!(text.contains("flaky                    failed"), "{text}");

    // Retrying a task that succeeded is refused and appends nothing.
    let before = events(path, "f1");
    let refused = run(path, &["retry", "f1", "compile"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("error: cannot retry task compile: task compile is succeeded in phase build"),
        "{}",
        stderr(&refused)
    );
    assert!(!stderr(&refused).contains("Redriven"), "refusals speak of commands, not events: {}", stderr(&refused));
    assert_eq!(events(path, "f1"), before);

    std::fs::write(path.join("fixed"), "").expect("fix");
    let retried = run(path, &["--as", "bob", "retry", "f1"]);
    assert_eq!(retried.status.code(), Some(0), "{}", stderr(&retried));
    let ran = run(path, &["run", "--until-idle"]);
    assert!(stdout(&ran).contains("f1: completed"), "{}", stdout(&ran));

    let history = stdout(&run(path, &["history", "f1"]));
    assert!(history.contains("started workflow flow (by alice)"), "{history}");
    assert!(history.contains("redriven by bob: flaky"), "{history}");
    assert_eq!(history.matches("task compile dispatched").count(), 1, "compile did not run again:\n{history}");

    let listed = run(path, &["--output", "json", "list", "--status", "completed"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], "f1");
    let status: serde_json::Value = serde_json::from_slice(&run(path, &["--output", "json", "status", "f1"]).stdout).expect("json");
    assert_eq!(status["effective_status"], "completed");
    assert_eq!(status["vars"]["greeting"], "hello");
}

#[test]
fn commands_that_do_not_fit_are_refused_without_appending() {
    let dir = setup();
    let path = dir.path();
    assert!(run(path, &["start", "flow.toml", "--id", "f2"]).status.success());
    let before = events(path, "f2");
    for (args, message) in [
        (&["resume", "f2"][..], "only a halted instance can be resumed"),
        (&["retry", "f2"][..], "only a failed instance, or one with a phase on hold, can be redriven"),
        (&["halt", "nope"][..], "no instance `nope` in this store"),
        (&["status", "nope"][..], "no instance `nope` in this store"),
        (&["history", "nope"][..], "no instance `nope` in this store"),
    ] {
        let output = run(path, args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(stderr(&output).contains(message), "{args:?}: {}", stderr(&output));
    }
    assert_eq!(events(path, "f2"), before);
    let halted = run(path, &["halt", "f2", "--reason", "freeze"]);
    assert!(stdout(&halted).starts_with("f2: halted"), "{}", stdout(&halted));
    let again = run(path, &["halt", "f2"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(run(path, &["resume", "f2"]).status.success());
    assert!(run(path, &["cancel", "f2"]).status.success());
    assert_eq!(events(path, "f2"), before + 3);

    let bad_var = run(path, &["start", "flow.toml", "--var", "colour=red"]);
    assert_eq!(bad_var.status.code(), Some(1));
    assert!(stderr(&bad_var).contains("workflow `flow` has no variable `colour` (it has: greeting)"), "{}", stderr(&bad_var));
    let malformed = run(path, &["start", "flow.toml", "--var", "greeting"]);
    assert_eq!(malformed.status.code(), Some(2));
    let duplicate = run(path, &["start", "flow.toml", "--id", "f2"]);
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(stderr(&duplicate).contains("an instance `f2` already exists"), "{}", stderr(&duplicate));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&run(path, &["--output", "json", "list"]).stdout).expect("json");
    assert_eq!(listed.len(), 1, "refused starts stored nothing");
}

#[test]
fn a_store_held_by_a_running_process_is_reported_clearly() {
    let dir = setup();
    let path = dir.path();
    assert!(run(path, &["start", "flow.toml", "--id", "f3"]).status.success());
    let mut server =
        phasegate(path).args(["run"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("run starts");
    // The runner prints progress once it holds the store and drives f3; only
    // then probe, so the probe itself never holds the lock while the runner opens.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(server.stderr.take().expect("stderr")));
    let first = lines.next().expect("the runner reports progress").expect("a line");
    assert!(first.contains("f3"), "{first}");
    let held = run(path, &["list"]);
    server.kill().expect("kill");
    server.wait().expect("reap");
    assert_eq!(held.status.code(), Some(2));
    assert!(stderr(&held).contains("is in use by another phasegate process"), "{}", stderr(&held));
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly_instead_of_panicking() {
    // `phasegate history f1 | head`: the reading end is closed before anything is written.
    let dir = setup();
    let path = dir.path();
    let started = run(path, &["--as", "alice", "start", "flow.toml", "--id", "f1"]);
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    for args in [&["history", "f1"][..], &["status", "f1"], &["list"], &["--output", "json", "history", "f1"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let output = crate::support::phasegate(path).args(args).stdout(writer).stderr(std::process::Stdio::piped()).output().expect("runs");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).is_empty(), "{args:?}: nothing on stderr, no panic: {}", stderr(&output));
    }
}

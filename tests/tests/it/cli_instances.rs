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

const SOAKED: &str = r#"
name = "soaked"
deadline = { after = "1d", outcome = "fail" }
[vars]
soak = { type = "duration", default = "1h" }
[[phases]]
id = "launch"
deadline = { after = "2h", outcome = "halt" }
[[phases.tasks]]
id = "deploy"
agent = "noop"
[[phases.tasks]]
id = "soak"
agent = "wait"
params = { duration = "{{ vars.soak }}" }
depends_on = ["deploy"]
"#;

fn json_status(dir: &std::path::Path, id: &str) -> serde_json::Value {
    let output = run(dir, &["--db", "db", "--output", "json", "status", id]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("json")
}

/// Issue 16 (durable waits): a soak is a timer in the stored state. The
/// server driving it is killed with SIGKILL an instant into an hour-long
/// soak; the store still holds when it ends, a new server resumes it with
/// the time left instead of starting it again, and `status` says how long
/// is left. A short soak run to its end shows the other half.
#[test]
fn a_soak_is_a_durable_timer_that_survives_kill_9_and_status_shows_the_time_left() {
    use crate::support::served::serve;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    std::fs::write(path.join("soaked.toml"), SOAKED).expect("write");

    // Bad input first: a wait longer than its phase's deadline, from the file or from --var.
    let longer = SOAKED.replace("default = \"1h\"", "default = \"3h\"");
    std::fs::write(path.join("longer.toml"), &longer).expect("write");
    let refused = run(path, &["validate", "longer.toml"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("task `soak` waits 3h, longer than phase `launch`'s deadline of 2h"), "{}", stderr(&refused));
    let refused = run(path, &["--db", "db", "start", "soaked.toml", "--id", "too-long", "--var", "soak=5h"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("task `soak` waits 5h, longer than phase `launch`'s deadline of 2h"), "{}", stderr(&refused));

    let server = serve(path);
    let started = run(path, &["--db", "db", "start", "soaked.toml", "--id", "s1"]);
    assert!(started.status.success(), "{}", stderr(&started));
    let waiting = |status: &serde_json::Value| status["phases"][0]["tasks"][1]["status"]["status"] == "waiting";
    crate::support::wait_until("the soak to begin", || waiting(&json_status(path, "s1")));
    let due = json_status(path, "s1")["phases"][0]["tasks"][1]["status"]["due"].as_u64().expect("due");
    let shown = stdout(&run(path, &["--db", "db", "status", "s1"]));
    assert!(shown.contains(" left, until ") && shown.contains("soak") && shown.contains("waiting"), "{shown}");
    assert!(shown.contains("deadline: 2h, outcome halt: ") && shown.contains("deadline  1day, outcome fail: "), "{shown}");
    drop(server); // SIGKILL

    // The process is gone; the end of the wait is in the store.
    let status = json_status(path, "s1");
    assert!(waiting(&status), "{status}");
    assert_eq!(status["phases"][0]["tasks"][1]["status"]["due"].as_u64(), Some(due));
    assert_eq!(status["deadlines"][1]["phase"], "launch", "{status}");
    assert_eq!(status["deadlines"][1]["outcome"], "halt");

    // A new server resumes the same wait: not started over, the same end.
    let server = serve(path);
    let history = stdout(&run(path, &["--db", "db", "history", "s1"]));
    assert_eq!(history.matches("task soak waits until").count(), 1, "{history}");
    let status = json_status(path, "s1");
    assert!(waiting(&status) && status["phases"][0]["tasks"][1]["status"]["due"].as_u64() == Some(due), "{status}");
    assert!(run(path, &["--db", "db", "cancel", "s1"]).status.success());
    drop(server);

    // A short soak runs to its end: its record says when it began and ended.
    let started = run(path, &["--db", "db", "start", "soaked.toml", "--id", "s2", "--var", "soak=1s"]);
    assert!(started.status.success(), "{}", stderr(&started));
    let ran = run(path, &["--db", "db", "run", "--until-idle"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let status = json_status(path, "s2");
    assert_eq!(status["effective_status"], "completed", "{status}");
    let output = &status["phases"][0]["tasks"][1]["status"]["output"];
    assert!(output["waited_ms"].as_u64().is_some_and(|ms| ms >= 1000), "{output}");
    let history = stdout(&run(path, &["--db", "db", "history", "s2"]));
    assert!(history.contains("task soak: its wait is over (attempt 1)"), "{history}");
}

/// Issue 16 (deadlines): a phase's deadline passes while its gate waits;
/// the declared outcome (halt) is applied once and `status` says so.
#[test]
fn a_phase_deadline_halts_the_release_once_and_status_says_so() {
    use crate::support::served::serve;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let flow = r#"
name = "timed"
[[phases]]
id = "review"
deadline = { after = "1s", outcome = "halt" }
[[phases.tasks]]
id = "prepare"
agent = "noop"
[[phases.gates]]
id = "go"
approval = { approvers = ["alice"] }
"#;
    std::fs::write(path.join("timed.toml"), flow).expect("write");
    let server = serve(path);
    let alice = server.user("alice", &[]);
    assert!(run(path, &["--db", "db", "start", "timed.toml", "--id", "t1"]).status.success());
    crate::support::wait_until("the deadline to halt t1", || json_status(path, "t1")["effective_status"] == "halted");
    let shown = stdout(&run(path, &["--db", "db", "status", "t1"]));
    assert!(shown.contains("deadline: 1s, outcome halt: passed, and its outcome was applied"), "{shown}");
    let history = stdout(&run(path, &["--db", "db", "history", "t1"]));
    assert!(history.contains("deadline passed (halt): phase review's deadline of 1s passed"), "{history}");
    assert!(history.contains("`phasegate resume t1` lets it go on"), "{history}");
    assert!(run(path, &["--db", "db", "resume", "t1"]).status.success());
    let approved = crate::support::phasegate(path)
        .env("PHASEGATE_TOKEN", &alice)
        .args(["--db", "db", "approve", "t1", "review/go", "--as", "alice"])
        .output()
        .expect("approve runs");
    assert!(approved.status.success(), "{}", stderr(&approved));
    crate::support::wait_until("t1 to complete", || json_status(path, "t1")["effective_status"] == "completed");
    let history = stdout(&run(path, &["--db", "db", "history", "t1"]));
    assert_eq!(history.matches("deadline passed").count(), 1, "it acts once: {history}");
}

/// Issue 18 item 4 from the CLI: `audit verify` passes a log as written and,
/// once a stored event is edited, exits 1 naming the first record that no
/// longer fits; a malformed `--head` is a usage error.
#[test]
fn audit_verify_names_the_first_record_that_does_not_match() {
    let dir = setup();
    let path = dir.path();
    std::fs::write(path.join("fixed"), "").expect("the flaky task passes");
    assert!(run(path, &["start", "flow.toml", "--id", "f1"]).status.success());
    let ran = run(path, &["run", "--until-idle"]);
    assert!(ran.status.success(), "{}", stderr(&ran));
    let ok = run(path, &["audit", "verify"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("ok      f1: "), "{}", stdout(&ok));
    let usage = run(path, &["audit", "verify", "f1", "--head", "nonsense"]);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
    assert!(stderr(&usage).contains("--head: `nonsense` is not SEQ:HASH"), "{}", stderr(&usage));
    {
        let db = sled::Config::new().path(path.join(".phasegate")).open().expect("sled");
        let mut key = b"e:f1\0".to_vec();
        key.extend_from_slice(&2u64.to_be_bytes());
        let mut record: serde_json::Value = serde_json::from_slice(&db.get(&key).expect("read").expect("event 2")).expect("json");
        record["at"] = serde_json::json!(record["at"].as_u64().expect("at") + 1);
        db.insert(key, serde_json::to_vec(&record).expect("json")).expect("write");
        db.flush().expect("flush");
    }
    let broken = run(path, &["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1), "{}", stderr(&broken));
    assert!(stdout(&broken).contains("BROKEN  f1: event 3 does not match the chain"), "{}", stdout(&broken));
}

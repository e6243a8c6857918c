//! A CLI you can watch a release in (issue 20): shell completions for every
//! shell, instance ids completed from the store, and `--help` grouped by
//! what a person does.

use crate::support::{phasegate, run, stdout};

const FLOW: &str = "name = \"f\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n";

#[test]
fn completions_are_generated_for_every_shell_and_complete_instance_ids_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = run(dir.path(), &["completions", shell]);
        assert!(output.status.success(), "{shell}");
        let code = stdout(&output);
        assert!(code.contains("COMPLETE") && code.contains("phasegate"), "{shell} registers the completer: {code}");
    }
    assert_eq!(run(dir.path(), &["completions", "tcsh"]).status.code(), Some(2), "an unknown shell is a usage error");

    // The bash completer, run as bash runs it, offers the store's instance ids.
    std::fs::write(dir.path().join("f.toml"), FLOW).expect("flow");
    for id in ["rel-1", "rel-2", "other"] {
        assert!(run(dir.path(), &["--db", "db", "start", "f.toml", "--id", id]).status.success());
    }
    let registration = stdout(&run(dir.path(), &["completions", "bash"]));
    std::fs::write(dir.path().join("complete.bash"), registration).expect("write");
    let script = r#"source complete.bash; COMP_WORDS=(phasegate status rel); COMP_CWORD=2; COMP_LINE="phasegate status rel"; COMP_POINT=${#COMP_LINE}; _clap_complete_phasegate phasegate rel status; printf '%s\n' "${COMPREPLY[@]}""#;
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .env("PHASEGATE_DB", dir.path().join("db"))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("bash runs");
    let offered = stdout(&output);
    let mut words: Vec<&str> = offered.split_whitespace().collect();
    words.sort_unstable();
    assert_eq!(words, ["rel-1", "rel-2"], "instance ids starting with `rel`: {offered}{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn help_groups_the_commands_by_what_a_person_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = stdout(&phasegate(dir.path()).arg("--help").output().expect("help"));
    let mut at = 0;
    for heading in ["Define:", "Run and watch:", "Decide:", "Operate:", "Report and audit:", "Set up:"] {
        let found = help[at..].find(heading).unwrap_or_else(|| panic!("{heading} in order: {help}"));
        at += found;
    }
    assert!(help.contains("  approve ") && help.contains("  completions "), "{help}");
}

const GATED: &str = r#"
name = "followed"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
[[phases.gates]]
id = "review"
approval = { approvers = ["rita"] }
"#;

/// A follower child process with its output in files, killed when dropped.
struct Follower {
    child: std::process::Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Follower {
    fn start(dir: &std::path::Path, name: &str, args: &[&str]) -> Self {
        let (out, err) = (dir.join(format!("{name}.out")), dir.join(format!("{name}.err")));
        let child = phasegate(dir)
            .args(["--db", "db"])
            .args(args)
            .stdout(std::fs::File::create(&out).expect("out"))
            .stderr(std::fs::File::create(&err).expect("err"))
            .spawn()
            .expect("follower starts");
        Self { child, out, err }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits (bounded) for the follower to end by itself; its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        let mut code = None;
        crate::support::wait_until("the follower to end", || match self.child.try_wait() {
            Ok(Some(status)) => {
                code = status.code();
                true
            }
            _ => false,
        });
        code
    }
}

fn approve(server: &crate::support::served::Server, token: &str) {
    let body = crate::support::served::json_body(serde_json::json!({"decision": "approve", "comment": "ok"}));
    let (status, answer) = crate::support::served::call(server, "POST", "/v1/instances/f1/decisions", Some(token), None, &body);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn history_follow_and_status_watch_follow_a_release_through_a_server_until_it_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flow.toml"), GATED).expect("flow");
    let server = crate::support::served::serve(dir.path());
    let rita = server.user("rita", &[]);
    assert!(run(dir.path(), &["--db", "db", "start", "flow.toml", "--id", "f1"]).status.success());
    crate::support::wait_until("f1 waits", || stdout(&run(dir.path(), &["--db", "db", "status", "f1"])).contains("awaiting_approval"));
    let mut history = Follower::start(dir.path(), "history", &["history", "f1", "--follow"]);
    let mut watch = Follower::start(dir.path(), "watch", &["status", "f1", "--watch"]);
    crate::support::wait_until("both followers to show f1", || {
        history.output().contains("gate build/review evaluated") && watch.output().contains("status awaiting_approval")
    });
    approve(&server, &rita);
    assert_eq!(history.exit_code(), Some(0), "a completed release: {}", history.errors());
    assert_eq!(watch.exit_code(), Some(0), "{}", watch.errors());
    let followed = history.output();
    assert!(followed.contains("approved by rita (token ") && followed.trim_end().ends_with("completed"), "{followed}");
    let watched = watch.output();
    assert!(watched.contains("approved by rita") && watched.contains("status completed"), "one line per change: {watched}");
    assert_eq!(followed.matches("approved by rita").count(), 1, "each event once: {followed}");
}

#[test]
fn a_follower_without_a_server_hands_the_store_back_and_follows_the_server_that_opens_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flow.toml"), GATED).expect("flow");
    assert!(run(dir.path(), &["--db", "db", "start", "flow.toml", "--id", "f1"]).status.success());
    assert!(run(dir.path(), &["--db", "db", "run", "--until-idle"]).status.success());
    let mut history = Follower::start(dir.path(), "history", &["history", "f1", "--follow"]);
    crate::support::wait_until("the follower to wait for a server", || history.errors().contains("no server drives"));
    // The store is free again: a server opens it, and the follower follows through it.
    let server = crate::support::served::serve(dir.path());
    let rita = server.user("rita", &[]);
    crate::support::wait_until("the follower to find the server", || history.errors().contains("following f1 through the server"));
    approve(&server, &rita);
    assert_eq!(history.exit_code(), Some(0), "{}", history.errors());
    assert!(history.output().contains("approved by rita"), "{}", history.output());

    // A release that is over: the follower prints it and exits with its outcome at once.
    drop(server);
    let failed =
        "name = \"fails\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"exec\"\nparams = { argv = [\"false\"] }\n";
    std::fs::write(dir.path().join("fails.toml"), failed).expect("flow");
    assert!(run(dir.path(), &["--db", "db", "start", "fails.toml", "--id", "f2"]).status.success());
    assert_eq!(run(dir.path(), &["--db", "db", "run", "--until-idle"]).status.code(), Some(1));
    let output = run(dir.path(), &["--db", "db", "history", "f2", "--follow"]);
    assert_eq!(output.status.code(), Some(1), "a failed release's follower exits 1");
    assert!(stdout(&output).contains("failed"), "{}", stdout(&output));
}

#[test]
fn serve_and_run_say_when_a_soak_starts_and_how_much_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let soak = |seconds: u32| {
        format!("name = \"soak\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"soak\"\nagent = \"wait\"\nparams = {{ duration = \"{seconds}s\" }}\n")
    };
    std::fs::write(dir.path().join("short.toml"), soak(1)).expect("flow");
    std::fs::write(dir.path().join("long.toml"), soak(12)).expect("flow");
    // `run` (not a terminal): the start and the end of the wait.
    assert!(run(dir.path(), &["--db", "db", "start", "short.toml", "--id", "s1"]).status.success());
    let ran = run(dir.path(), &["--db", "db", "run", "--until-idle"]);
    let log = String::from_utf8_lossy(&ran.stderr).into_owned();
    assert!(log.contains("task soak waits 1s") && log.contains("its wait of 1s is over"), "{log}");
    // `serve`: the start, then how much is left at its interval (10 s for a 12 s soak).
    let server = crate::support::served::serve(dir.path());
    assert!(run(dir.path(), &["--db", "db", "start", "long.toml", "--id", "s2"]).status.success());
    let log = dir.path().join("serve.log");
    crate::support::wait_until("serve to log the soak and what is left of it", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("s2  task soak waits 12s") && text.contains("s2  task soak waiting:") && text.contains("of 12s left")
    });
    drop(server);
}

#[test]
fn logs_shows_what_a_task_printed_per_attempt_redacted_and_follows_it_while_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let go = dir.path().join("go");
    // Prints, waits (bounded) for the test to say go, prints again; the first attempt fails.
    let script = format!(
        "import os, sys, time\nprint('attempt', os.environ['PHASEGATE_ATTEMPT'], 'using', os.environ['DEPLOY_TOKEN'], flush=True)\nprint('warming up', file=sys.stderr, flush=True)\nfor _ in range(600):\n    if os.path.exists({go:?}): break\n    time.sleep(0.05)\nprint('done', flush=True)\nsys.exit(1 if os.environ['PHASEGATE_ATTEMPT'] == '1' else 0)\n",
        go = go.display().to_string()
    );
    std::fs::write(dir.path().join("deploy.py"), script).expect("script");
    let flow = format!(
        "name = \"logged\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"deploy\"\nagent = \"exec\"\nretry = {{ max_attempts = 2, initial = \"10ms\" }}\nparams = {{ argv = [\"python3\", {script:?}], env = {{ DEPLOY_TOKEN = \"s3cr3t-token-value\" }} }}\n",
        script = dir.path().join("deploy.py").display().to_string()
    );
    std::fs::write(dir.path().join("flow.toml"), flow).expect("flow");
    let _server = crate::support::served::serve(dir.path());
    assert!(run(dir.path(), &["--db", "db", "start", "flow.toml", "--id", "f1"]).status.success());
    let mut follower = Follower::start(dir.path(), "logs", &["logs", "f1", "deploy", "--follow"]);
    crate::support::wait_until("the running attempt's first lines", || follower.output().contains("deploy#1 err | warming up"));
    assert!(!follower.output().contains("done"), "followed while it runs");
    std::fs::write(&go, "").expect("go");
    assert_eq!(follower.exit_code(), Some(0), "{}", follower.errors());
    let followed = follower.output();
    assert!(followed.contains("deploy#2 out | done"), "the retry's lines too: {followed}");
    assert!(!followed.contains("s3cr3t-token-value") && followed.contains("using [redacted]"), "secrets redacted: {followed}");
    // Per attempt, through the server; an attempt with no log is named.
    let first = stdout(&run(dir.path(), &["--db", "db", "logs", "f1", "deploy", "--attempt", "1"]));
    assert!(first.contains("deploy#1 out | attempt 1") && !first.contains("deploy#2"), "{first}");
    let missing = run(dir.path(), &["--db", "db", "logs", "f1", "deploy", "--attempt", "9"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not of attempt 9"), "{}", String::from_utf8_lossy(&missing.stderr));
}

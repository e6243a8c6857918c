//! Gate decisions from the command line: roles from phasegate.toml beside the
//! store, authorization refusals, request ids, approvals and advance.

use crate::support::{run, stderr, stdout};

const FLOW: &str = r#"
name = "release"
[[phases]]
id = "hardening"
owner = "role:qa"
[[phases.tasks]]
id = "e2e"
agent = "noop"
params = { output = { failed = 0 } }
[[phases.gates]]
id = "qa-signoff"
criteria = [{ must = "tasks.e2e.output.failed == 0", label = "E2E suite green" }]
[phases.gates.approval]
approvers = ["role:qa"]
comment_required = true
[[phases]]
id = "launch"
after = ["hardening"]
[[phases.gates]]
id = "go-no-go"
criteria = [{ must = "tasks.e2e.output.failed > 0", label = "Deliberately failing" }]
"#;

#[test]
fn decisions_from_the_cli_are_authorized_idempotent_and_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    std::fs::write(path.join("release.toml"), FLOW).expect("write");
    std::fs::write(path.join("phasegate.toml"), "[roles]\nqa = [\"quinn\"]\n").expect("write config");
    assert!(run(path, &["--as", "sam", "start", "release.toml", "--id", "r1"]).status.success());
    assert!(run(path, &["run", "--until-idle"]).status.success());

    let pending = run(path, &["approvals", "--for", "quinn"]);
    assert!(stdout(&pending).contains("r1 hardening/qa-signoff  level 0, 0/1 approvals from role:qa"), "{}", stdout(&pending));
    assert!(stdout(&run(path, &["approvals", "--for", "mallory"])).is_empty());

    let history = |path: &std::path::Path| {
        serde_json::from_slice::<Vec<serde_json::Value>>(&run(path, &["--output", "json", "history", "r1"]).stdout).expect("json").len()
    };
    let before = history(path);
    let forbidden = run(path, &["approve", "r1", "--as", "mallory", "--comment", "hi"]);
    assert_eq!(forbidden.status.code(), Some(1));
    assert!(
        stderr(&forbidden).contains("mallory may not decide gate hardening/qa-signoff at level 0; allowed: role:qa"),
        "{}",
        stderr(&forbidden)
    );
    let no_comment = run(path, &["approve", "r1", "--as", "quinn"]);
    assert_eq!(no_comment.status.code(), Some(1));
    assert!(stderr(&no_comment).contains("requires a comment"), "{}", stderr(&no_comment));
    let anonymous = run(path, &["approve", "r1", "--comment", "x"]);
    assert_eq!(anonymous.status.code(), Some(2), "{}", stderr(&anonymous));
    assert_eq!(history(path), before, "refusals appended nothing");

    let approved = run(path, &["approve", "r1", "qa-signoff", "--as", "quinn", "--comment", "green", "--request-id", "q-1"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert!(stdout(&approved).contains("r1: gate hardening/qa-signoff approved by quinn; gate passed"), "{}", stdout(&approved));
    let after = history(path);
    let repeated = run(path, &["approve", "r1", "qa-signoff", "--as", "quinn", "--comment", "green", "--request-id", "q-1"]);
    assert!(stdout(&repeated).contains("(repeated request: nothing changed)"), "{}", stdout(&repeated));
    assert_eq!(history(path), after);

    // The next phase's must criterion fails: advance cannot move it and says why.
    let advanced = run(path, &["advance", "r1"]);
    let blocked = run(path, &["advance", "r1"]);
    assert_eq!(blocked.status.code(), Some(1), "{}\n{}", stdout(&advanced), stdout(&blocked));
    assert!(stdout(&blocked).contains("must criterion c1 (Deliberately failing) failed"), "{}", stdout(&blocked));
    let status = stdout(&run(path, &["status", "r1"]));
    assert!(status.contains("approved by quinn at"), "{status}");
    assert!(
        status.contains("FAIL         must   Deliberately failing: `tasks.e2e.output.failed > 0` [tasks.e2e.output.failed = 0]"),
        "{status}"
    );
}

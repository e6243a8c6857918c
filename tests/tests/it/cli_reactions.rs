//! Rollback, signals and trigger halts from the command line: what a user
//! types, what they see, and that refused commands change nothing.

use crate::support::{run, stderr, stdout};

const FLOW: &str = r#"
name = "release"
[signals.incident]
description = "an incident; data has severity P0, P1 or P2"

[[phases]]
id = "stage"
[[phases.tasks]]
id = "provision"
agent = "exec"
params = { argv = ["echo", "{\"env\": \"staging\"}"] }
rollback = { id = "deprovision", agent = "exec", params = { argv = ["echo", "deprovisioned"] } }

[[phases]]
id = "launch"
after = ["stage"]
owner = "role:sre"
[[phases.tasks]]
id = "deploy"
agent = "exec"
params = { argv = ["echo", "{\"deployed\": true}"] }
rollback = { id = "undeploy", agent = "exec", params = { argv = ["echo", "undeployed"] } }
[[phases.gates]]
id = "go-live"
approval = { approvers = ["alice"] }
[[phases.triggers]]
id = "p1"
on = "signal:incident"
when = "signals.incident.severity == 'P1'"
action = "halt_for_approval"
approval = { approvers = ["sam"], timeout = "15m", on_timeout = "approve" }
then = "rollback"
"#;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("release.toml"), FLOW).expect("write");
    dir
}

fn history(dir: &std::path::Path, id: &str) -> Vec<serde_json::Value> {
    let output = run(dir, &["--output", "json", "history", id]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("json")
}

fn status(dir: &std::path::Path, id: &str) -> String {
    let output = run(dir, &["--output", "json", "status", id]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    value["effective_status"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_p1_incident_halts_and_the_approved_rollback_runs_from_the_cli() {
    let dir = setup();
    assert!(run(dir.path(), &["start", "release.toml", "--id", "r1"]).status.success());
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    assert_eq!(status(dir.path(), "r1"), "awaiting_approval", "the go-live gate waits");

    // Bad input: refused with a clear message, nothing appended.
    let before = history(dir.path(), "r1").len();
    let bad = run(dir.path(), &["signal", "r1", "incident", "--data", "{severity: P1}"]);
    assert!(!bad.status.success() && stderr(&bad).contains("--data is not JSON"), "{}", stderr(&bad));
    let bad = run(dir.path(), &["rollback", "r1", "--to", "nowhere"]);
    assert!(!bad.status.success() && stderr(&bad).contains("no phase `nowhere`"), "{}", stderr(&bad));
    assert_eq!(history(dir.path(), "r1").len(), before, "refused commands append nothing");

    let signalled = run(dir.path(), &["signal", "r1", "incident", "--data", r#"{"severity": "P1", "id": "INC-42"}"#]);
    assert!(signalled.status.success(), "{}", stderr(&signalled));
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    let approvals = stdout(&run(dir.path(), &["approvals"]));
    assert!(approvals.contains("p1") && approvals.contains("go-live"), "both decisions wait: {approvals}");
    let shown = stdout(&run(dir.path(), &["status", "r1"]));
    assert!(shown.contains("waiting   trigger launch/p1: signal incident #1"), "{shown}");

    // `approve` with no gate named is ambiguous? No: the trigger's halt is what the instance waits on.
    let forbidden = run(dir.path(), &["--as", "alice", "approve", "r1", "p1"]);
    assert!(!forbidden.status.success() && stderr(&forbidden).contains("may not decide trigger launch/p1"), "{}", stderr(&forbidden));
    let approved = run(dir.path(), &["--as", "sam", "approve", "r1", "p1", "--comment", "customer impact"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert_eq!(status(dir.path(), "r1"), "rolling_back");
    assert_eq!(run(dir.path(), &["run", "--until-idle"]).status.code(), Some(1), "a rolled-back release is not a success");
    assert_eq!(status(dir.path(), "r1"), "rolled_back");

    let undone: Vec<String> = history(dir.path(), "r1")
        .iter()
        .filter(|r| r["event"]["type"] == "CompensationSucceeded")
        .filter_map(|r| r["event"]["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(undone, ["undeploy", "deprovision"], "reverse completion order");
    let text = stdout(&run(dir.path(), &["history", "r1"]));
    assert!(text.contains("trigger launch/p1 approved by sam (asserted (local, unauthenticated)): customer impact"), "{text}");

    // Finished: further signals and rollbacks are refused and append nothing.
    let before = history(dir.path(), "r1").len();
    let late = run(dir.path(), &["signal", "r1", "incident", "--data", r#"{"severity": "P0"}"#]);
    assert!(!late.status.success() && stderr(&late).contains("is rolled_back"), "{}", stderr(&late));
    let again = run(dir.path(), &["rollback", "r1"]);
    assert!(!again.status.success() && stderr(&again).contains("is rolled_back"), "{}", stderr(&again));
    assert_eq!(history(dir.path(), "r1").len(), before);
}

#[test]
fn an_operator_rollback_to_a_phase_compensates_from_it_and_runs_it_again() {
    let dir = setup();
    assert!(run(dir.path(), &["start", "release.toml", "--id", "r2"]).status.success());
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    let rolled = run(dir.path(), &["rollback", "r2", "--to", "launch", "--reason", "wrong artifact"]);
    assert!(rolled.status.success(), "{}", stderr(&rolled));
    assert!(stdout(&rolled).contains("rolling_back"), "{}", stdout(&rolled));
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    assert_eq!(status(dir.path(), "r2"), "awaiting_approval", "launch ran again up to its gate");
    let records = history(dir.path(), "r2");
    let undone: Vec<&str> =
        records.iter().filter(|r| r["event"]["type"] == "CompensationSucceeded").filter_map(|r| r["event"]["id"].as_str()).collect();
    assert_eq!(undone, ["undeploy"], "stage is upstream of the target and is kept");
    let shown = stdout(&run(dir.path(), &["status", "r2"]));
    assert!(shown.contains("entered: rollback by") && shown.contains("wrong artifact"), "{shown}");
    assert!(shown.contains("(attempt 2)"), "{shown}");
}

#[test]
fn a_rollback_with_nothing_to_compensate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("plain.toml"),
        "name = \"plain\"\n[[phases]]\nid = \"only\"\n[[phases.gates]]\nid = \"ok\"\napproval = { approvers = [\"alice\"] }\n",
    )
    .expect("write");
    assert!(run(dir.path(), &["start", "plain.toml", "--id", "p"]).status.success());
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    let before = history(dir.path(), "p").len();
    let refused = run(dir.path(), &["rollback", "p"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("nothing to compensate"), "{}", stderr(&refused));
    assert_eq!(history(dir.path(), "p").len(), before);
}

/// The release of [`FLOW`] with reactions that outlive one phase: an
/// incident trigger and an uptime watch live from launch until the end.
fn spanned(uptime: &str) -> String {
    let flow = FLOW.split("[[phases.triggers]]").next().unwrap_or_default();
    format!(
        r#"{flow}
[[phases]]
id = "post-launch"
after = ["launch"]
[[phases.gates]]
id = "stable"
approval = {{ approvers = ["olga"] }}

[[triggers]]
id = "p0"
from = "launch"
on = "signal:incident"
when = "signals.incident.severity == 'P0'"
action = "rollback"
{uptime}"#
    )
}

const UPTIME_WATCH: &str = r#"
[[watches]]
id = "uptime"
from = "launch"
agent = "exec"
params = { argv = ["echo", "{\"value\": 97.5}"] }
interval = "200ms"
timeout = "30s"
condition = "value < 99.9"
consecutive_failures = 2
for = "1h"
[[triggers]]
id = "uptime-breach"
on = "uptime"
action = "rollback"
"#;

#[test]
fn regression_a_p0_while_the_release_waits_at_a_later_gate_rolls_it_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("release.toml"), spanned("")).expect("write");
    let validated = run(dir.path(), &["validate", "release.toml"]);
    assert!(validated.status.success(), "{}", stderr(&validated));
    assert!(run(dir.path(), &["start", "release.toml", "--id", "r"]).status.success());
    assert!(run(dir.path(), &["--as", "alice", "approve", "r", "go-live"]).status.code() != Some(0), "nothing waits yet");
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    let approved = run(dir.path(), &["--as", "alice", "approve", "r", "go-live"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    let shown = stdout(&run(dir.path(), &["status", "r"]));
    assert!(shown.contains("phase launch  passed") && shown.contains("gate stable  awaiting_decision"), "{shown}");

    let signalled = run(dir.path(), &["signal", "r", "incident", "--data", r#"{"severity": "P0"}"#]);
    assert!(signalled.status.success(), "{}", stderr(&signalled));
    assert_eq!(run(dir.path(), &["run", "--until-idle"]).status.code(), Some(1), "a rolled-back release is not a success");
    assert_eq!(status(dir.path(), "r"), "rolled_back");
    let fired: Vec<String> = history(dir.path(), "r")
        .iter()
        .filter(|r| r["event"]["type"] == "TriggerFired")
        .filter_map(|r| r["event"]["trigger"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(fired, ["p0"], "the workflow-level trigger acted after its phase passed");
}

#[test]
fn a_workflow_level_watch_lives_from_its_from_phase_and_status_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("release.toml"), spanned(UPTIME_WATCH)).expect("write");
    assert!(run(dir.path(), &["start", "release.toml", "--id", "w"]).status.success());
    let shown = stdout(&run(dir.path(), &["status", "w"]));
    assert!(shown.contains("watch uptime") && shown.contains("workflow-level, from phase launch until the end: not live now"), "{shown}");
    let json: serde_json::Value = serde_json::from_slice(&run(dir.path(), &["--output", "json", "status", "w"]).stdout).expect("json");
    assert_eq!(json["watches"][0]["watch"], "uptime");
    assert_eq!(json["watches"][0]["live"], false);

    // Stage runs, then launch waits at go-live with the watch live; two
    // breaching samples roll the release back.
    assert_eq!(run(dir.path(), &["run", "--until-idle"]).status.code(), Some(1), "a rolled-back release is not a success");
    assert_eq!(status(dir.path(), "w"), "rolled_back");
    let records = history(dir.path(), "w");
    let samples = records.iter().filter(|r| r["event"]["type"] == "WatchSampled").count();
    assert_eq!(samples, 2, "consecutive_failures = 2 fires on the second breach");
    assert!(records.iter().any(|r| r["event"]["type"] == "TriggerFired" && r["event"]["trigger"] == "uptime-breach"));
    let shown = stdout(&run(dir.path(), &["status", "w"]));
    assert!(shown.contains("the instance is rolled_back"), "{shown}");
}

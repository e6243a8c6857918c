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
    assert!(stdout(&pending).contains("r1 hardening/qa-signoff  level 0, approvals: role:qa 0 of 1"), "{}", stdout(&pending));
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

/// The way back from a failed gate, through the CLI: the release fails on a
/// must criterion; a stranger may not hold it; its owner holds it for
/// remediation; once fixed, `retry --phase` runs the phase again and the gate
/// passes, with the first evaluation and the hold in the report.
#[test]
fn a_failed_gate_is_held_by_its_owner_and_retry_phase_runs_it_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let result = path.join("result.json");
    let flow = format!(
        r#"
name = "perf"
[[phases]]
id = "perf"
owner = "role:perf"
[[phases.tasks]]
id = "load"
agent = "exec"
params = {{ argv = ["cat", "{}"] }}
[[phases.gates]]
id = "latency"
criteria = [{{ must = "tasks.load.output.p95_ms < 200", label = "p95 under 200 ms" }}]
"#,
        result.display()
    );
    std::fs::write(path.join("perf.toml"), flow).expect("write");
    std::fs::write(path.join("phasegate.toml"), "[roles]\nperf = [\"olga\"]\n").expect("config");
    std::fs::write(&result, r#"{"p95_ms": 350}"#).expect("result");
    assert!(run(path, &["start", "perf.toml", "--id", "p1"]).status.success());
    let failed = run(path, &["run", "--until-idle"]);
    assert_eq!(failed.status.code(), Some(1), "a failed release fails the run: {}", stderr(&failed));
    assert!(stdout(&run(path, &["status", "p1"])).contains("status    failed"));

    let stranger = run(path, &["--as", "mallory", "hold", "p1", "perf/latency", "--comment", "mine now"]);
    assert_eq!(stranger.status.code(), Some(1), "{}", stderr(&stranger));
    assert!(stderr(&stranger).contains("mallory may not decide gate perf/latency"), "{}", stderr(&stranger));
    let held = run(path, &["--as", "olga", "hold", "p1", "perf/latency", "--comment", "tuning the cache"]);
    assert!(held.status.success(), "{}", stderr(&held));
    assert!(stdout(&held).contains("gate perf/latency held by olga"), "{}", stdout(&held));
    assert!(stdout(&run(path, &["status", "p1"])).contains("status    on_hold"));

    let both = run(path, &["retry", "p1", "load", "--phase", "perf"]);
    assert_eq!(both.status.code(), Some(2), "a task or a phase, not both: {}", stderr(&both));
    std::fs::write(&result, r#"{"p95_ms": 150}"#).expect("the fix");
    let again = run(path, &["--as", "olga", "retry", "p1", "--phase", "perf"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(run(path, &["run", "--until-idle"]).status.success());
    assert!(stdout(&run(path, &["status", "p1"])).contains("status    completed"));
    let report = run(path, &["--output", "json", "report", "p1", "--kind", "gate", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json");
    let evaluations = report["evaluations"].as_array().expect("evaluations");
    assert_eq!(evaluations.len(), 2, "both evaluations are in the history: {report}");
    assert_eq!(evaluations[0]["outcome"], "superseded by a later evaluation", "{report}");
    assert_eq!(evaluations[0]["decisions"][0]["decision"], "hold", "{report}");
    assert_eq!(evaluations[1]["outcome"], "passed", "{report}");
    let bad = run(path, &["report", "p1", "--kind", "ops", "--since", "last tuesday"]);
    assert!(!bad.status.success() && stderr(&bad).contains("--since: `last tuesday` is not a time"), "{}", stderr(&bad));
    let empty = run(path, &["report", "p1", "--kind", "ops", "--since", "2026-02", "--until", "2026-01"]);
    assert!(!empty.status.success() && stderr(&empty).contains("the period is empty"), "{}", stderr(&empty));
    let ops = run(path, &["report", "p1", "--kind", "ops", "--format", "json", "--since", "2000-01-01"]);
    let ops: serde_json::Value = serde_json::from_slice(&ops.stdout).expect("json");
    assert_eq!(ops["period"]["from"], "2000-01-01T00:00:00.000Z", "{ops}");
    assert!(!ops["measurements"].as_array().expect("measurements").is_empty(), "the run is in the period: {ops}");
}

/// A gate that fails on its evidence loops back with its code, as a failed
/// task does, until `max_loops`; then the release fails, and `retry --phase`
/// can still take it from there.
#[test]
fn a_failed_gate_loops_back_with_its_code_until_max_loops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let flow = r#"
name = "loop"
[[phases]]
id = "staging"
[[phases.tasks]]
id = "build"
agent = "noop"
[[phases]]
id = "launch"
after = ["staging"]
[[phases.tasks]]
id = "smoke"
agent = "noop"
params = { output = { errors = 3 } }
[[phases.gates]]
id = "smoke-ok"
criteria = [{ must = "tasks.smoke.output.errors == 0", label = "Smoke tests clean" }]
[[phases.triggers]]
id = "back-to-staging"
on = "gate_failed:smoke-ok"
action = "goto"
phase = "staging"
code = "LAUNCH-002"
reason = "Smoke tests failed: reproduce in staging."
max_loops = 1
"#;
    std::fs::write(path.join("loop.toml"), flow).expect("write");
    assert!(run(path, &["start", "loop.toml", "--id", "l1"]).status.success());
    let failed = run(path, &["run", "--until-idle"]);
    assert_eq!(failed.status.code(), Some(1), "after max_loops the release fails: {}", stderr(&failed));
    let history = stdout(&run(path, &["history", "l1"]));
    assert_eq!(history.matches("trigger launch/back-to-staging fired: gate smoke-ok failed").count(), 2, "it fired twice: {history}");
    assert!(history.contains("phase staging started (attempt 2)") && !history.contains("phase staging started (attempt 3)"), "{history}");
    let status = stdout(&run(path, &["status", "l1"]));
    assert!(status.contains("status    failed") && status.contains("LAUNCH-002"), "{status}");
    // The failed release is redriven from its failed gate's phase.
    let again = run(path, &["retry", "l1", "--phase", "launch"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&run(path, &["history", "l1"])).contains("phase launch runs again"));
}

const BY_ROLE: &str = r#"
name = "by-role"
[[phases]]
id = "post-launch"
[[phases.tasks]]
id = "soak"
agent = "noop"
[[phases.gates]]
id = "qg-phase8"
[phases.gates.approval]
required_from = { "role:command" = 1, "role:business" = 1 }
[[phases.gates.approval.escalation]]
approvers = ["role:board"]
join = "must"
"#;

#[test]
fn a_gate_needs_an_approval_from_each_role_and_escalation_adds_the_board() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    std::fs::write(path.join("release.toml"), BY_ROLE).expect("write");

    // A role nobody holds is refused at validate (with a configuration) and at start.
    std::fs::write(path.join("phasegate.toml"), "[roles]\ncommand = [\"cara\", \"cole\"]\n").expect("write config");
    let refused = run(path, &["validate", "release.toml"]);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("requires approvals from role:business (required_from), but the roles configuration gives it no members")
    );
    let refused = run(path, &["start", "release.toml", "--id", "r"]);
    assert!(!refused.status.success() && stderr(&refused).contains("role:business"), "{}", stderr(&refused));
    assert!(run(path, &["status", "r"]).status.code() != Some(0), "nothing was started");

    std::fs::write(path.join("phasegate.toml"), "[roles]\ncommand = [\"cara\", \"cole\"]\nbusiness = [\"bea\"]\nboard = [\"bo\"]\n")
        .expect("write config");
    assert!(run(path, &["validate", "release.toml"]).status.success());
    assert!(run(path, &["--as", "sam", "start", "release.toml", "--id", "r"]).status.success());
    assert!(run(path, &["run", "--until-idle"]).status.success());
    let pending = stdout(&run(path, &["approvals"]));
    // Each role with the people it maps to, so the reader knows whom to ask.
    assert!(pending.contains("approvals: role:business 0 of 1 (held by bea) and role:command 0 of 1 (held by cara, cole)"), "{pending}");

    // Two members of one role do not pass it.
    for who in ["cara", "cole"] {
        let approved = run(path, &["--as", who, "approve", "r", "qg-phase8"]);
        assert!(approved.status.success(), "{}", stderr(&approved));
    }
    let shown = stdout(&run(path, &["status", "r"]));
    assert!(shown.contains("waits for role:business 0 of 1 and role:command 1 of 1 (cara, cole)"), "{shown}");
    let again = run(path, &["--as", "cara", "approve", "r", "qg-phase8"]);
    assert!(!again.status.success() && stderr(&again).contains("counts once"), "{}", stderr(&again));

    // Escalating adds the board; what was approved still counts.
    let escalated = run(path, &["--as", "cole", "escalate", "r", "qg-phase8", "--comment", "needs the board"]);
    assert!(escalated.status.success(), "{}", stderr(&escalated));
    let pending = stdout(&run(path, &["approvals", "--for", "bo"]));
    assert!(
        pending.contains(
            "level 1, approvals: role:business 0 of 1 (held by bea) and role:command 1 of 1 (cara, cole) and role:board 0 of 1 (held by bo)"
        ),
        "{pending}"
    );
    assert!(run(path, &["--as", "bo", "approve", "r", "qg-phase8"]).status.success());
    let report = stdout(&run(path, &["report", "r", "--kind", "gate"]));
    assert!(
        report
            .contains("awaiting_decision at level 1: role:business 0 of 1 and role:command 1 of 1 (cara, cole) and role:board 1 of 1 (bo)"),
        "{report}"
    );
    let json: serde_json::Value = serde_json::from_slice(&run(path, &["--output", "json", "status", "r"]).stdout).expect("json");
    assert_eq!(json["effective_status"], "awaiting_approval", "the business stakeholder is still needed");
    assert!(run(path, &["--as", "bea", "approve", "r", "qg-phase8"]).status.success());
    let json: serde_json::Value = serde_json::from_slice(&run(path, &["--output", "json", "status", "r"]).stdout).expect("json");
    assert_eq!(json["effective_status"], "running", "every role approved");
    assert!(run(path, &["run", "--until-idle"]).status.success());
}

const WITH_INPUTS: &str = r#"
name = "with-inputs"
[[phases]]
id = "go-no-go"
[[phases.tasks]]
id = "rehearse"
agent = "noop"
[[phases.gates]]
id = "go-live"
[phases.gates.approval]
approvers = ["olga"]
[phases.gates.approval.inputs]
window = { type = "string", description = "the launch window" }
variant = { options = ["canary", "full"], default = "canary" }
regions = { type = "list" }
[[phases]]
id = "launch"
after = ["go-no-go"]
[[phases.tasks]]
id = "canary"
agent = "exec"
when = "decisions['go-live'].inputs.variant == 'canary'"
params = { argv = ["echo", "{\"regions\": {{ decisions.go-live.inputs.regions | json }}, \"window\": \"{{ decisions.go-live.inputs.window }}\"}"] }
[[phases.tasks]]
id = "full"
agent = "noop"
when = "decisions['go-live'].inputs.variant == 'full'"
"#;

#[test]
fn an_approval_carries_typed_inputs_that_later_tasks_read_and_branch_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    std::fs::write(path.join("release.toml"), WITH_INPUTS).expect("write");
    assert!(run(path, &["start", "release.toml", "--id", "r"]).status.success());
    assert!(run(path, &["run", "--until-idle"]).status.success());
    let pending = stdout(&run(path, &["approvals"]));
    assert!(pending.contains("inputs: regions (list, required); variant (one of \"canary\", \"full\", default \"canary\")"), "{pending}");
    let shown = stdout(&run(path, &["status", "r"]));
    assert!(shown.contains("input window (string, required): the launch window; give it with --input window=VALUE"), "{shown}");

    // Bad inputs are refused with the field named, and nothing is recorded.
    let records = |path: &std::path::Path| {
        serde_json::from_slice::<Vec<serde_json::Value>>(&run(path, &["--output", "json", "history", "r"]).stdout).expect("json").len()
    };
    let before = records(path);
    let refusals = [
        (vec!["--input", "regions=[\"eu\"]"], "needs input window (string, required)"),
        (vec!["--input", "window=tue", "--input", "regions=eu"], "input `regions`: expected a JSON list"),
        (vec!["--input", "window=tue", "--input", "regions=[]", "--input", "variant=blue"], "not one of its options: \"canary\", \"full\""),
        (
            vec!["--input", "window=tue", "--input", "regions=[]", "--input", "size=3"],
            "declares no input `size` (it has: regions, variant, window)",
        ),
        (vec!["--input", "window"], "--input window: write it as name=value"),
    ];
    for (inputs, expected) in refusals {
        let mut args = vec!["--as", "olga", "approve", "r", "go-live"];
        args.extend(inputs);
        let refused = run(path, &args);
        assert!(!refused.status.success() && stderr(&refused).contains(expected), "{args:?}: {}", stderr(&refused));
    }
    let refused = run(path, &["--as", "olga", "reject", "r", "go-live", "--input", "window=tue"]);
    assert!(!refused.status.success() && stderr(&refused).contains("inputs go with an approval"), "{}", stderr(&refused));
    assert_eq!(records(path), before, "refused decisions append nothing");

    let approved = run(
        path,
        &["--as", "olga", "approve", "r", "go-live", "--input", "window=2026-12-03T09:00Z", "--input", r#"regions=["eu-west", "us-east"]"#],
    );
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert!(run(path, &["run", "--until-idle"]).status.success());
    let state: serde_json::Value = serde_json::from_slice(&run(path, &["--output", "json", "status", "r"]).stdout).expect("json");
    assert_eq!(state["effective_status"], "completed");
    let launch = &state["phases"][1]["tasks"];
    assert_eq!(launch[0]["status"]["status"], "succeeded", "{launch}");
    assert_eq!(launch[0]["status"]["output"], serde_json::json!({"regions": ["eu-west", "us-east"], "window": "2026-12-03T09:00Z"}));
    assert_eq!(launch[1]["status"]["status"], "skipped", "the default variant is canary: the full rollout is skipped");
    let decision = &state["phases"][0]["gates"][0]["decisions"][0][1];
    assert_eq!(decision["inputs"]["variant"], "canary", "the default is recorded with the decision: {decision}");
    let report = stdout(&run(path, &["report", "r", "--kind", "gate"]));
    assert!(report.contains("with inputs regions=[\"eu-west\",\"us-east\"], variant=\"canary\", window=\"2026-12-03T09:00Z\""), "{report}");
}

//! The control API served by `phasegate serve`: authentication, the
//! operations the CLI needs, authorization of decisions exactly as from the
//! CLI, JSON errors for bad requests while the server keeps serving, and a
//! graceful stop that leaves everything resumable.

use std::time::{Duration, Instant};

use crate::support::served::{call, json_body, serve, Server};
use crate::support::{phasegate, wait_until};
use serde_json::{json, Value};

const FLOW: &str = r#"
name = "served"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
[[phases.gates]]
id = "review"
approval = { approvers = ["role:reviewer"] }
[[phases]]
id = "ship"
after = ["build"]
[[phases.tasks]]
id = "deploy"
agent = "sleep"
params = { duration = "4s" }
"#;

#[test]
fn the_control_api_authenticates_authorizes_and_answers_in_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("phasegate.toml"),
        "[roles]\nreviewer = [\"rita\"]\n[permissions]\nhalt = [\"ops\"]\nresume = [\"ops\"]\n",
    )
    .expect("config");
    let server = serve(dir.path());
    let admin = server.token.clone();
    let admin = Some(admin.as_str());

    // The token file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("db/control.token")).expect("token").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(call(&server, "GET", "/healthz", None, None, b"").0, 200);
    let (rita, mallory, ops) = (server.user("rita", &[]), server.user("mallory", &[]), server.user("ops", &[]));
    let (rita, mallory, ops) = (Some(rita.as_str()), Some(mallory.as_str()), Some(ops.as_str()));

    let start = json_body(json!({"definition": FLOW, "id": "s1"}));
    let (status, body) = call(&server, "POST", "/v1/instances", mallory, None, &start);
    assert_eq!((status, body["kind"].as_str()), (403, Some("forbidden")), "a user who is not an owner may not start: {body}");
    let (status, body) = call(&server, "POST", "/v1/instances", admin, None, &start);
    assert_eq!((status, &body["id"]), (201, &json!("s1")), "{body}");

    let history_len = |server: &Server| call(server, "GET", "/v1/instances/s1/history", admin, None, b"").1.as_array().map_or(0, Vec::len);
    // It settles at its gate, then nothing more is written.
    wait_until("s1 waits at its gate", || {
        call(&server, "GET", "/v1/approvals", admin, None, b"").1.as_array().is_some_and(|a| a.len() == 1)
    });
    let before = history_len(&server);

    // No token, a wrong token: 401, nothing changes.
    let halt = json_body(json!({"reason": "no"}));
    assert_eq!(call(&server, "POST", "/v1/instances/s1/halt", None, None, &halt).0, 401);
    let (status, body) = call(&server, "POST", "/v1/instances/s1/halt", Some("pgt_wrong"), None, &halt);
    assert_eq!((status, body["kind"].as_str()), (401, Some("unauthorized")));
    assert_eq!(call(&server, "POST", "/v1/instances/s1/decisions", None, None, b"{}").0, 401);

    // A principal the gate does not allow, a request naming someone else, the
    // admin credential deciding, an operator without the permission: 403.
    let approve = json_body(json!({"decision": "approve", "comment": "looks good"}));
    let (status, body) = call(&server, "POST", "/v1/instances/s1/decisions", mallory, None, &approve);
    assert_eq!((status, body["kind"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = call(&server, "POST", "/v1/instances/s1/decisions", mallory, Some("rita"), &approve);
    assert_eq!(status, 403, "mallory's token cannot act as rita: {body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("cannot act as rita")), "{body}");
    let (status, body) = call(&server, "POST", "/v1/instances/s1/decisions", admin, Some("rita"), &approve);
    assert_eq!(status, 403, "the admin token cannot name a decider: {body}");
    let (status, body) = call(&server, "POST", "/v1/instances/s1/decisions", admin, None, &approve);
    assert!(
        status == 403 && body["error"].as_str().is_some_and(|e| e.contains("cannot decide")),
        "the admin token operates, never decides: {body}"
    );
    let (status, body) = call(&server, "POST", "/v1/instances/s1/halt", rita, None, &halt);
    assert!(status == 403 && body["error"].as_str().is_some_and(|e| e.contains("rita may not halt")), "{body}");
    let (status, body) = call(&server, "POST", "/v1/users", rita, None, &json_body(json!({"name": "rita2"})));
    assert_eq!(status, 403, "only the admin issues tokens: {body}");
    assert_eq!(history_len(&server), before, "refused requests append nothing");

    // A revoked token is refused from then on.
    let (status, revoked) = call(&server, "POST", "/v1/users/mallory/revoke", admin, None, b"");
    assert_eq!((status, &revoked["name"]), (200, &json!("mallory")), "{revoked}");
    let (status, body) = call(&server, "GET", "/v1/approvals", mallory, None, b"");
    assert!(status == 401 && body["error"].as_str().is_some_and(|e| e.contains("revoked")), "{body}");
    let (status, me) = call(&server, "GET", "/v1/whoami", rita, None, b"");
    assert_eq!((status, &me["principal"], &me["roles"]), (200, &json!("rita"), &json!(["reviewer"])), "{me}");

    // Every refusal is in the log, and no credential is.
    let log = std::fs::read_to_string(dir.path().join("serve.log")).expect("log");
    assert!(log.matches("refused a request").count() >= 8, "{log}");
    for token in [admin, rita, mallory, Some("pgt_wrong")].into_iter().flatten() {
        assert!(!log.contains(token), "a credential reached the log");
    }

    // Malformed JSON, unknown routes and fields, oversized bodies: clear 4xx JSON, and the server keeps serving.
    let (status, body) = call(&server, "POST", "/v1/instances/s1/halt", ops, None, b"{not json");
    assert_eq!((status, body["kind"].as_str()), (400, Some("bad_json")), "{body}");
    let (status, body) = call(&server, "POST", "/v1/instances/s1/halt", ops, None, b"{\"reasn\": \"typo\"}");
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    let (status, body) = call(&server, "GET", "/v2/nothing", admin, None, b"");
    assert_eq!((status, body["kind"].as_str()), (404, Some("not_found")));
    let (status, body) = call(&server, "POST", "/v1/instances/s1/explode", ops, None, b"{}");
    assert_eq!((status, body["kind"].as_str()), (404, Some("not_found")), "{body}");
    let (status, _) = call(&server, "POST", "/v1/instances/s1/halt", ops, None, &vec![b'a'; 2 * 1024 * 1024]);
    assert_eq!(status, 413);
    let (status, body) = call(&server, "GET", "/v1/instances/nobody", admin, None, b"");
    assert_eq!((status, body["kind"].as_str()), (404, Some("not_found")));
    assert_eq!(history_len(&server), before);

    // The operations the CLI needs.
    let (status, pending) = call(&server, "GET", "/v1/approvals", admin, None, b"");
    assert_eq!((status, &pending[0]["gate"]), (200, &json!("review")), "{pending}");
    let (status, body) = call(&server, "POST", "/v1/instances/s1/decisions", rita, None, &approve);
    assert_eq!((status, &body["gate_status"]), (200, &json!("passed")), "{body}");
    // The server drives the instance on.
    wait_until("the server to run s1 past its gate", || {
        call(&server, "GET", "/v1/instances/s1", admin, None, b"").1["phases"][1]["status"]["status"] == "running"
    });
    let (status, body) = call(&server, "POST", "/v1/instances/s1/halt", ops, None, &json_body(json!({"reason": "maintenance"})));
    assert_eq!((status, &body["status"]), (200, &json!("halted")), "{body}");
    let (status, body) = call(&server, "POST", "/v1/instances/s1/halt", ops, None, &halt);
    assert_eq!((status, body["kind"].as_str()), (409, Some("rejected")), "already halted: {body}");
    let (status, body) = call(&server, "POST", "/v1/instances/s1/resume", ops, None, b"");
    assert_eq!((status, &body["status"]), (200, &json!("running")), "{body}");
    let (status, report) = call(&server, "GET", "/v1/instances/s1/report?kind=gate", admin, None, b"");
    let decided = &report["evaluations"][0]["decisions"][0];
    assert_eq!((status, &decided["by"]), (200, &json!("rita")), "{report}");
    assert!(decided["authenticated"].as_str().is_some_and(|a| a.starts_with("token ")), "how rita was authenticated: {report}");
    let (status, metrics) = call(&server, "GET", "/metrics", admin, None, b"");
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("phasegate_instances{status=\"running\"} 1")
            && metrics.contains("phasegate_events_total{type=\"DecisionRecorded\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("phasegate_tasks_total{agent=\"noop\",outcome=\"succeeded\"} 1"), "per agent: {metrics}");
    assert!(metrics.contains("phasegate_tasks_total{agent=\"sleep\",outcome=\"dispatched\"} 1"), "per agent: {metrics}");
    assert!(
        metrics.contains("phasegate_store_flushes_total") && metrics.contains("phasegate_store_flush_seconds_total"),
        "flush latency: {metrics}"
    );
    assert!(metrics.contains("phasegate_watch_firings_total 0") && metrics.contains("phasegate_rollbacks_completed_total 0"), "{metrics}");

    // A graceful stop (SIGINT) removes the address file and leaves the instance resumable.
    let _ = std::process::Command::new("kill").args(["-INT", &server.child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while dir.path().join("db/control.addr").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.path().join("db/control.addr").exists(), "the address file is removed on a graceful stop");
    drop(server);
    // A restart resumes it: the deploy in flight at the stop runs again with its key, and the instance completes.
    let ran = phasegate(dir.path()).args(["--db", "db", "run", "--until-idle"]).output().expect("run");
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let status = phasegate(dir.path()).args(["--db", "db", "--output", "json", "status", "s1"]).output().expect("status");
    let shown: Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(shown["effective_status"], "completed", "{shown}");
    let history = phasegate(dir.path()).args(["--db", "db", "--output", "json", "history", "s1"]).output().expect("history");
    let records: Vec<Value> = serde_json::from_slice(&history.stdout).expect("json");
    let succeeded = records.iter().filter(|r| r["event"]["type"] == "TaskSucceeded" && r["event"]["task"] == "deploy").count();
    assert_eq!(succeeded, 1, "the deploy's success is recorded once");
}

#[test]
fn cli_commands_go_through_a_running_server_and_ignore_a_stale_address_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("phasegate.toml"), "[roles]\nreviewer = [\"rita\"]\n").expect("config");
    std::fs::write(dir.path().join("flow.toml"), FLOW).expect("flow");
    let pg_as = |token: Option<&str>, args: &[&str]| {
        let mut command = phasegate(dir.path());
        if let Some(token) = token {
            command.env("PHASEGATE_TOKEN", token);
        }
        command.args(["--db", "db"]).args(args).output().expect("phasegate runs")
    };
    let pg = |args: &[&str]| pg_as(None, args);
    let ok_as = |token: Option<&str>, args: &[&str]| {
        let output = pg_as(token, args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let ok = |args: &[&str]| ok_as(None, args);
    let refused = |token: Option<&str>, args: &[&str], why: &str| {
        let output = pg_as(token, args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success() && stderr.contains(why), "{args:?} is refused with {why:?}: {stderr}");
    };
    let server = serve(dir.path());
    // The admin token (the data directory's) issues people's tokens through the server.
    let rita = ok(&["users", "add", "rita"]).trim().to_owned();
    let mallory = ok(&["users", "add", "mallory"]).trim().to_owned();
    assert!(ok(&["users", "list"]).contains("rita"), "the users are listed");
    // The server holds the store; without it these commands would fail with "in use".
    assert_eq!(ok(&["start", "flow.toml", "--id", "c1"]).trim(), "c1");
    wait_until("c1 waits at its gate", || ok(&["approvals"]).contains("c1 build/review"));
    refused(Some(&mallory), &["approve", "c1", "--comment", "x"], "mallory may not decide");
    refused(Some(&mallory), &["--as", "rita", "approve", "c1", "--comment", "x"], "cannot act as rita");
    refused(None, &["approve", "c1", "--comment", "x"], "cannot decide");
    refused(Some(&rita), &["users", "add", "eve"], "needs the admin credential");
    refused(Some(&rita), &["halt", "c1", "--reason", "mine now"], "rita may not halt");
    refused(Some("pgt_0000000000000000"), &["status", "c1"], "not one this server issued");
    assert!(!ok(&["history", "c1"]).contains("halted"), "refused commands recorded nothing");
    assert!(ok_as(Some(&rita), &["whoami"]).starts_with("rita (token "), "whoami names the credential's principal");
    assert!(ok_as(Some(&rita), &["--as", "rita", "approve", "c1", "--comment", "fine"]).contains("approved by rita"), "--as may match");
    wait_until("c1 runs on past the gate", || ok(&["status", "c1"]).contains("status    running"));
    assert!(ok(&["halt", "c1", "--reason", "window closed"]).contains("c1: halted"));
    assert!(ok(&["status", "c1"]).contains("status    halted"));
    assert!(ok(&["resume", "c1"]).contains("c1: running"));
    let run = pg(&["run", "--until-idle"]);
    assert!(!run.status.success() && String::from_utf8_lossy(&run.stderr).contains("owns this store"), "run defers to the server");
    let history = ok(&["history", "c1"]);
    assert!(history.contains("approved by rita (token ") && history.contains("halted by admin"), "{history}");
    // A revoked token is refused.
    ok(&["users", "revoke", "rita"]);
    refused(Some(&rita), &["status", "c1"], "revoked");

    // A server that died leaves its address file: the CLI notices and opens the store itself.
    let mut server = server;
    let _ = server.child.kill();
    let _ = server.child.wait();
    assert!(dir.path().join("db/control.addr").exists(), "a killed server leaves its address file behind");
    assert!(ok(&["status", "c1"]).contains("instance  c1"), "the stale address file is ignored");
}

#[test]
fn decision_inputs_travel_as_json_through_the_api_and_from_the_cli() {
    let flow = r#"
name = "inputs"
[[phases]]
id = "go"
[[phases.tasks]]
id = "rehearse"
agent = "noop"
[[phases.gates]]
id = "go-live"
[phases.gates.approval]
approvers = ["olga"]
inputs = { regions = { type = "list" }, canary_percent = { type = "integer", default = 5 } }
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(dir.path());
    let token = server.token.clone();
    let token = Some(token.as_str());
    let olga = server.user("olga", &[]);
    for id in ["api", "cli"] {
        let start = json_body(json!({"definition": flow, "id": id}));
        assert_eq!(call(&server, "POST", "/v1/instances", token, None, &start).0, 201);
    }
    wait_until("both wait at their gate", || {
        call(&server, "GET", "/v1/approvals", token, None, b"").1.as_array().is_some_and(|a| a.len() == 2)
    });
    let decision = |id: &str| call(&server, "GET", &format!("/v1/instances/{id}"), token, None, b"").1;

    // A JSON list for a list input; a wrong type is refused with the input named and nothing recorded.
    let wrong = json_body(json!({"decision": "approve", "gate": "go-live", "inputs": {"regions": "eu"}}));
    let (status, body) = call(&server, "POST", "/v1/instances/api/decisions", Some(&olga), None, &wrong);
    assert_eq!((status, body["kind"].as_str()), (422, Some("invalid")), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("input `regions`: expected a JSON list")), "{body}");
    let approve = json_body(json!({"decision": "approve", "gate": "go-live", "inputs": {"regions": ["eu", "us"], "canary_percent": 10}}));
    let (status, body) = call(&server, "POST", "/v1/instances/api/decisions", Some(&olga), None, &approve);
    assert_eq!(status, 200, "{body}");
    let state = decision("api");
    let recorded = &state["phases"][0]["gates"][0]["decisions"][0][1]["inputs"];
    assert_eq!(recorded, &json!({"regions": ["eu", "us"], "canary_percent": 10}), "{state}");

    // The CLI, through the server, sends text that the input's type parses.
    let output = phasegate(dir.path())
        .env("PHASEGATE_TOKEN", &olga)
        .args(["--db", "db", "approve", "cli", "go-live", "--input", "regions=[\"ap\"]"])
        .output()
        .expect("phasegate runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let state = decision("cli");
    let recorded = &state["phases"][0]["gates"][0]["decisions"][0][1]["inputs"];
    assert_eq!(recorded, &json!({"regions": ["ap"], "canary_percent": 5}), "the default is filled in: {state}");
}

//! Who decided is proven (issue 18): decisions against the store with no
//! server are recorded as asserted, and a strict store refuses them; a
//! trusted proxy's header is believed from its address only; the CLI's
//! credentials file is private and `login` keeps it so; workflow owners may
//! operate their instances and nobody else may.

use serde_json::{json, Value};

use crate::support::served::{call, call_from, json_body, serve, Server};
use crate::support::{phasegate, run, stderr, stdout, wait_until};

const FLOW: &str = r#"
name = "owned"
owners = ["role:release-managers"]
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
[[phases.gates]]
id = "review"
approval = { approvers = ["role:reviewer"] }
"#;

/// The decisions recorded in an instance's history, as JSON.
fn decisions(dir: &std::path::Path, id: &str) -> Vec<Value> {
    let output = run(dir, &["--db", "db", "--output", "json", "history", id]);
    let records: Vec<Value> = serde_json::from_slice(&output.stdout).expect("history JSON");
    records.into_iter().filter(|r| r["event"]["type"] == "DecisionRecorded").map(|r| r["event"]["decision"].clone()).collect()
}

#[test]
fn local_decisions_are_recorded_as_asserted_and_a_strict_store_refuses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    std::fs::write(path.join("flow.toml"), FLOW).expect("flow");
    std::fs::write(path.join("phasegate.toml"), "[roles]\nreviewer = [\"rita\"]\n").expect("config");
    for id in ["a1", "a2"] {
        assert!(run(path, &["--db", "db", "--as", "sam", "start", "flow.toml", "--id", id]).status.success());
    }
    assert!(run(path, &["--db", "db", "run", "--until-idle"]).status.success());

    // No server: the name given is recorded, and recorded as only asserted.
    let approved = run(path, &["--db", "db", "--as", "rita", "approve", "a1", "--comment", "ok"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert_eq!(decisions(path, "a1")[0]["auth"], json!({"method": "local"}));
    let history = stdout(&run(path, &["--db", "db", "history", "a1"]));
    assert!(history.contains("approved by rita (asserted (local, unauthenticated))"), "{history}");

    // A store whose policy requires authenticated decisions refuses them, and records nothing.
    let strict = run(path, &["--db", "db", "store", "policy", "--require-authenticated-decisions", "true"]);
    assert!(stdout(&strict).contains("require_authenticated_decisions = true"), "{}", stderr(&strict));
    let refused = run(path, &["--db", "db", "--as", "rita", "approve", "a2", "--comment", "ok"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("refuses unauthenticated decisions"), "{}", stderr(&refused));
    assert!(decisions(path, "a2").is_empty(), "nothing was recorded");

    // Through the server, with rita's own token, the decision is taken and says how rita was proven.
    let server = serve(path);
    let rita = server.user("rita", &[]);
    let approve = json_body(json!({"decision": "approve", "comment": "checked"}));
    let (status, body) = call(&server, "POST", "/v1/instances/a2/decisions", Some(&rita), None, &approve);
    assert_eq!(status, 200, "{body}");
    drop(server);
    let recorded = &decisions(path, "a2")[0];
    assert_eq!((&recorded["principal"], &recorded["auth"]["method"]), (&json!("rita"), &json!("token")), "{recorded}");
    let me = run(path, &["--db", "db", "--output", "json", "users", "list"]);
    let users: Vec<Value> = serde_json::from_slice(&me.stdout).expect("users JSON");
    assert_eq!(recorded["auth"]["token"], users[0]["token_id"], "the decision names the token it was made with");
    assert!(!String::from_utf8_lossy(&me.stdout).contains(&rita), "listings never show a token");
}

fn proxied(dir: &std::path::Path) -> Server {
    std::fs::write(dir.join("flow.toml"), FLOW).expect("flow");
    std::fs::write(
        dir.join("phasegate.toml"),
        "[roles]\nreviewer = [\"rita\"]\n[auth]\nproxy_header = \"X-Forwarded-User\"\ntrusted_proxies = [\"127.0.0.2\"]\n",
    )
    .expect("config");
    serve(dir)
}

#[test]
fn a_trusted_proxy_names_the_user_and_the_same_header_from_anywhere_else_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = proxied(dir.path());
    let admin = server.token.clone();
    let start = json_body(json!({"definition": FLOW, "id": "p1"}));
    assert_eq!(call(&server, "POST", "/v1/instances", Some(&admin), None, &start).0, 201);
    wait_until("p1 waits at its gate", || {
        call(&server, "GET", "/v1/approvals", Some(&admin), None, b"").1.as_array().is_some_and(|a| a.len() == 1)
    });
    let approve = json_body(json!({"decision": "approve", "comment": "via SSO"}));
    let loopback = "127.0.0.1".parse().expect("ip");
    let proxy = "127.0.0.2".parse().expect("ip");

    // The header from an address that is not the proxy: 401, even beside a good token.
    let mallory = server.user("mallory", &[]);
    let forged = call_from(&server, loopback, "POST", "/v1/instances/p1/decisions", &[("X-Forwarded-User", "rita")], &approve);
    assert_eq!(forged.0, 401, "{}", forged.1);
    let bearer = format!("Bearer {mallory}");
    let forged = call_from(
        &server,
        loopback,
        "POST",
        "/v1/instances/p1/decisions",
        &[("X-Forwarded-User", "rita"), ("Authorization", &bearer)],
        &approve,
    );
    assert_eq!(forged.0, 401, "a token does not make a forged header believed: {}", forged.1);
    assert!(forged.1["error"].as_str().is_some_and(|e| e.contains("only from the configured proxy")), "{}", forged.1);
    // The proxy cannot name the admin.
    let admin_named = call_from(&server, proxy, "GET", "/v1/whoami", &[("X-Forwarded-User", "admin")], b"");
    assert_eq!(admin_named.0, 401, "{}", admin_named.1);
    let history = call(&server, "GET", "/v1/instances/p1/history", Some(&admin), None, b"").1;
    assert!(!history.to_string().contains("DecisionRecorded"), "nothing was recorded");

    // From the proxy, the header names who decides, and the record says so.
    let (status, body) = call_from(&server, proxy, "POST", "/v1/instances/p1/decisions", &[("X-Forwarded-User", "rita")], &approve);
    assert_eq!(status, 200, "{body}");
    let state = call(&server, "GET", "/v1/instances/p1", Some(&admin), None, b"").1;
    let recorded = &state["phases"][0]["gates"][0]["decisions"][0][1];
    assert_eq!(recorded["auth"], json!({"method": "proxy", "header": "X-Forwarded-User", "proxy": "127.0.0.2"}), "{state}");
    let log = std::fs::read_to_string(dir.path().join("serve.log")).expect("log");
    assert!(log.contains("X-Forwarded-User from 127.0.0.1") && !log.contains(&mallory), "{log}");
}

#[test]
fn workflow_owners_operate_their_instances_and_others_get_403_with_nothing_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    std::fs::write(path.join("flow.toml"), FLOW).expect("flow");
    std::fs::write(path.join("phasegate.toml"), "[roles]\nreviewer = [\"rita\"]\n").expect("config");
    let server = serve(path);
    // Roles granted with the token count like phasegate.toml's.
    let owner = server.user("olive", &["release-managers"]);
    let rita = server.user("rita", &[]);
    let start = json_body(json!({"definition": FLOW, "id": "o1"}));
    let (status, body) = call(&server, "POST", "/v1/instances", Some(&rita), None, &start);
    assert!(status == 403 && body["error"].as_str().is_some_and(|e| e.contains("the workflow's owners")), "{body}");
    assert_eq!(call(&server, "POST", "/v1/instances", Some(&owner), None, &start).0, 201);
    wait_until("o1 waits at its gate", || {
        call(&server, "GET", "/v1/approvals", Some(&rita), None, b"").1.as_array().is_some_and(|a| a.len() == 1)
    });
    let len = || call(&server, "GET", "/v1/instances/o1/history", Some(&rita), None, b"").1.as_array().map_or(0, Vec::len);
    let before = len();
    for operation in ["halt", "cancel", "rollback", "retry", "advance"] {
        let (status, body) = call(&server, "POST", &format!("/v1/instances/o1/{operation}"), Some(&rita), None, b"{}");
        assert_eq!(status, 403, "{operation} by rita: {body}");
    }
    let signal = json_body(json!({"name": "anything"}));
    assert_eq!(call(&server, "POST", "/v1/instances/o1/signal", Some(&rita), None, &signal).0, 403);
    assert_eq!(len(), before, "refused operations record nothing");
    let (status, body) = call(&server, "POST", "/v1/instances/o1/halt", Some(&owner), None, &json_body(json!({"reason": "owner's call"})));
    assert_eq!((status, &body["status"]), (200, &json!("halted")), "{body}");
    let history = call(&server, "GET", "/v1/instances/o1/history", Some(&owner), None, b"").1;
    assert!(history.to_string().contains("\"by\":\"olive\""), "the owner is recorded: {history}");
    // The started_by is the credential's principal, not a name the request gave.
    let state = call(&server, "GET", "/v1/instances/o1", Some(&owner), None, b"").1;
    assert_eq!(state["started_by"], "olive", "{state}");
}

#[test]
fn the_credentials_file_must_be_private_and_login_keeps_it_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let server = serve(path);
    let rita = server.user("rita", &[]);
    let credentials = path.join("credentials");
    let with_file = || {
        let mut command = phasegate(path);
        command.env("PHASEGATE_CREDENTIALS", &credentials).args(["--db", "db"]);
        command
    };

    // `login` reads the token from standard input and writes the file with mode 0600.
    let mut login =
        with_file().arg("login").stdin(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("login");
    std::io::Write::write_all(login.stdin.as_mut().expect("stdin"), format!("{rita}\n").as_bytes()).expect("write");
    let output = login.wait_with_output().expect("login ends");
    assert!(output.status.success() && stderr(&output).contains("logged in as rita"), "{}", stderr(&output));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&credentials).expect("written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let whoami = with_file().arg("whoami").output().expect("whoami");
        assert!(stdout(&whoami).starts_with("rita (token "), "{}", stderr(&whoami));

        // Readable by others, it is refused with what to do; nothing else is tried.
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = with_file().arg("whoami").output().expect("whoami");
        assert_eq!(refused.status.code(), Some(2));
        assert!(stderr(&refused).contains("chmod 600"), "{}", stderr(&refused));
    }

    // A token the server does not know is not kept.
    std::fs::remove_file(&credentials).expect("remove");
    let mut login =
        with_file().arg("login").stdin(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("login");
    std::io::Write::write_all(login.stdin.as_mut().expect("stdin"), b"pgt_00000000000000000000000000\n").expect("write");
    let output = login.wait_with_output().expect("login ends");
    assert!(!output.status.success() && !credentials.exists(), "{}", stderr(&output));
}

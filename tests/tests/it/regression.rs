//! Regression tests, each named after the fault it pins (the hardening
//! issue: inputs that stopped the engine, faults that emptied a store,
//! acknowledgements that were not true). Each failed on the build before
//! its fix. They drive the real binary, as a user or an attacker would.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::served::{call, call_at, raw, serve};
use crate::support::{run, stderr, stdout, wait_until};
use serde_json::{json, Value};

const GATED: &str = r#"
name = "gated"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
[[phases.gates]]
id = "review"
approval = { approvers = ["alice", "bob"] }
"#;

fn scratch(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

fn json_out(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let output = run(dir, &all);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&output)))
}

#[test]
fn regression_timeout_9999999w_is_refused_at_validate_and_at_var() {
    let huge = GATED.replace("approvers = [\"alice\", \"bob\"] }", "approvers = [\"alice\"], timeout = \"9999999w\" }");
    let watched = r#"
name = "watched"
[vars]
every = { type = "duration", default = "5s" }
[[phases]]
id = "launch"
[[phases.tasks]]
id = "soak"
agent = "noop"
[[phases.watches]]
id = "errors"
agent = "noop"
interval = "{{ vars.every }}"
condition = "value > 1"
"#;
    let dir = scratch(&[("huge.toml", &huge), ("watched.toml", watched)]);
    let refused = run(dir.path(), &["validate", "huge.toml"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("approval.timeout") && stderr(&refused).contains("at most 100 years"), "{}", stderr(&refused));

    for (value, words) in [("9999999w", "at most 100 years"), ("0s", "shorter than the minimum of 50ms")] {
        let var = format!("every={value}");
        let refused = run(dir.path(), &["start", "watched.toml", "--id", "w1", "--var", &var]);
        assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
        assert!(stderr(&refused).contains(words), "{value}: {}", stderr(&refused));
        assert!(stderr(&refused).contains("phases[0].watches[0].interval"), "the error names the field: {}", stderr(&refused));
    }
    assert!(run(dir.path(), &["status", "w1"]).status.code() != Some(0), "nothing was started");
}

#[test]
fn regression_read_commands_never_create_a_store() {
    let dir = scratch(&[]);
    for args in [
        &["list"][..],
        &["status"],
        &["status", "x"],
        &["history", "x"],
        &["approvals"],
        &["report", "x", "--kind", "readiness"],
        &["approve", "x", "--as", "alice"],
        &["backup", "copy"],
    ] {
        let mut all = vec!["--db", "typo/path"];
        all.extend_from_slice(args);
        let output = run(dir.path(), &all);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("no store at typo/path"), "{args:?}: {}", stderr(&output));
        assert!(!dir.path().join("typo").exists(), "{args:?} created a directory");
    }
}

#[test]
fn regression_a_store_that_lost_its_data_is_never_opened_as_new() {
    let dir = scratch(&[("gated.toml", GATED)]);
    assert!(run(dir.path(), &["start", "gated.toml", "--id", "g1"]).status.success());
    assert!(dir.path().join(".phasegate/phasegate-store.json").is_file(), "the store records that it exists");

    // sled's snapshot files gone: the store opens with its data, or is refused; never empty.
    for entry in std::fs::read_dir(dir.path().join(".phasegate")).expect("store dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            std::fs::remove_file(entry.path()).expect("remove snapshot");
        }
    }
    let listed = run(dir.path(), &["list"]);
    assert!(!stderr(&listed).contains("sled"), "sled's own log lines never reach the user: {}", stderr(&listed));
    match listed.status.code() {
        Some(0) => assert!(stdout(&listed).contains("g1"), "{}", stdout(&listed)),
        code => {
            assert_eq!(code, Some(2));
            assert!(stderr(&listed).contains("has lost its data"), "{}", stderr(&listed));
        }
    }

    // sled's log itself gone: refused by every command, and nothing re-created.
    std::fs::remove_file(dir.path().join(".phasegate/db")).expect("remove sled's log");
    for args in [&["list"][..], &["start", "gated.toml", "--id", "g2"], &["run", "--until-idle"]] {
        let output = run(dir.path(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("has lost its data") && stderr(&output).contains("phasegate restore"), "{}", stderr(&output));
        assert!(!dir.path().join(".phasegate/db").exists(), "{args:?} re-initialised the store");
    }
}

#[test]
fn regression_a_backup_of_a_live_store_restores_every_acknowledged_instance() {
    let dir = scratch(&[("gated.toml", GATED)]);
    let server = serve(dir.path());
    let token = server.token.clone();
    let definition = json!({"definition": GATED}).to_string();
    // Instances are started under load while the backup is taken; the
    // loader counts what the server acknowledged, so the test waits on that.
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let loader = {
        let address = server.address.clone();
        let token = token.clone();
        let definition = definition.clone();
        let counted = std::sync::Arc::clone(&counted);
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            let started = Instant::now();
            for i in 0..400 {
                let body = json!({"definition": serde_json::from_str::<Value>(&definition).expect("json")["definition"], "id": format!("load-{i}")});
                let (status, answer) = call_at(&address, "POST", "/v1/instances", Some(&token), None, body.to_string().as_bytes());
                if status == 201 {
                    acknowledged.push((Instant::now(), answer["id"].as_str().unwrap_or_default().to_owned()));
                    counted.store(acknowledged.len(), std::sync::atomic::Ordering::SeqCst);
                }
                if started.elapsed() > Duration::from_secs(20) {
                    break;
                }
            }
            acknowledged
        })
    };
    wait_until("20 instances to be acknowledged", || counted.load(std::sync::atomic::Ordering::SeqCst) >= 20);
    let backup_began = Instant::now();
    let backed_up = run(dir.path(), &["--db", "db", "backup", "copy"]);
    assert!(backed_up.status.success(), "{}", stderr(&backed_up));
    assert!(stdout(&backed_up).contains("backed up"), "{}", stdout(&backed_up));
    let acknowledged = loader.join().expect("loader");
    let before: Vec<&String> = acknowledged.iter().filter(|(at, _)| *at < backup_began).map(|(_, id)| id).collect();
    assert!(before.len() >= 20, "load ran while the backup was taken");

    // A backup never goes over anything.
    let again = run(dir.path(), &["--db", "db", "backup", "copy"]);
    assert_ne!(again.status.code(), Some(0), "a backup over a non-empty directory is refused");

    let restored = run(dir.path(), &["--db", "restored", "restore", "copy"]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    let listed = json_out(dir.path(), &["--db", "restored", "list"]);
    let ids: Vec<&str> = listed.as_array().expect("list").iter().filter_map(|row| row["id"].as_str()).collect();
    for id in &before {
        assert!(ids.contains(&id.as_str()), "acknowledged instance {id} is missing from the restored store");
    }
    let history = json_out(dir.path(), &["--db", "restored", "history", before[0]]);
    assert!(history.as_array().is_some_and(|h| !h.is_empty()));
    let over = run(dir.path(), &["--db", "restored", "restore", "copy"]);
    assert_ne!(over.status.code(), Some(0), "a restore over an existing store is refused");
    assert!(stderr(&over).contains("not empty"), "{}", stderr(&over));
}

#[test]
fn regression_nested_macros_over_a_6000_item_output_become_an_error_verdict() {
    let flow = r#"
name = "costly"
[[phases]]
id = "check"
[[phases.tasks]]
id = "list"
agent = "exec"
params = { argv = ["python3", "-c", "import json; print(json.dumps({'items': list(range(6000))}))"] }
[[phases.gates]]
id = "g"
criteria = [
  { must = "tasks.list.output.items.all(a, tasks.list.output.items.exists(b, b == a))", label = "nested" },
  { should = "tasks.list.output.items.all(a, a >= 0)", label = "single" },
]
approval = { approvers = ["alice"] }
"#;
    let dir = scratch(&[("costly.toml", flow)]);
    assert!(run(dir.path(), &["start", "costly.toml", "--id", "c1"]).status.success());
    let ran = run(dir.path(), &["run", "--until-idle"]);
    assert_ne!(ran.status.code(), Some(2), "{}", stderr(&ran));
    let status = json_out(dir.path(), &["status", "c1"]);
    let criteria = status["phases"][0]["gates"][0]["evaluation"]["criteria"].as_array().expect("evaluated").clone();
    let nested = criteria.iter().find(|c| c["label"] == "nested").expect("nested");
    assert_eq!(nested["verdict"], "fail", "{nested:#}");
    assert!(nested["detail"].as_str().unwrap_or_default().contains("more than the limit of 250000"), "{nested:#}");
    let single = criteria.iter().find(|c| c["label"] == "single").expect("single");
    assert_eq!(single["verdict"], "pass", "one macro over 6,000 items is within the budget: {single:#}");
}

#[test]
fn regression_every_gate_notification_arrives_once_with_run_until_idle() {
    let flow = r#"
name = "noisy"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
[[phases.gates]]
id = "review"
[phases.gates.approval]
approvers = ["alice"]
notify = { agent = "exec", params = { argv = ["sh", "-c", "mkdir -p notices && cat > notices/$$.json"] } }
"#;
    let dir = scratch(&[("noisy.toml", flow)]);
    let count = 40;
    for i in 0..count {
        let id = format!("n{i}");
        assert!(run(dir.path(), &["start", "noisy.toml", "--id", &id]).status.success());
    }
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    let read = || -> Vec<Value> {
        let files = std::fs::read_dir(dir.path().join("notices")).expect("notifications were sent");
        files.flatten().map(|f| serde_json::from_slice(&std::fs::read(f.path()).expect("read")).expect("json")).collect()
    };
    let notices = read();
    let mut keys: Vec<&str> = notices.iter().map(|n| n["key"].as_str().expect("key")).collect();
    assert_eq!(keys.len(), count, "every notification arrived before run --until-idle returned");
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), count, "each once, under its own key");
    assert!(keys.iter().all(|k| !k.contains(' ')), "{keys:?}");
    // Delivered notifications leave nothing behind: a second run sends none.
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    assert_eq!(read().len(), count);
}

const TWO_GATES: &str = r#"
name = "two"
[signals.incident]
description = "an incident"
[[phases]]
id = "a"
[[phases.tasks]]
id = "ta"
agent = "noop"
[[phases.gates]]
id = "g1"
approval = { approvers = ["alice"] }
[[phases]]
id = "b"
[[phases.tasks]]
id = "tb"
agent = "noop"
[[phases.gates]]
id = "g2"
approval = { approvers = ["alice"] }
[[phases.triggers]]
id = "p1"
on = "signal:incident"
action = "halt_for_approval"
approval = { approvers = ["sam"] }
"#;

#[test]
fn regression_a_request_id_means_one_decision() {
    let dir = scratch(&[("two.toml", TWO_GATES)]);
    assert!(run(dir.path(), &["start", "two.toml", "--id", "t1"]).status.success());
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    let approve = |gate: &str, request: &str| run(dir.path(), &["--as", "alice", "approve", "t1", gate, "--request-id", request]);
    assert!(approve("a/g1", "r1").status.success());
    let reused = approve("b/g2", "r1");
    assert_eq!(reused.status.code(), Some(1), "{}", stderr(&reused));
    assert!(stderr(&reused).contains("request id r1 was already used by alice to approve a/g1"), "{}", stderr(&reused));
    let status = json_out(dir.path(), &["status", "t1"]);
    assert_eq!(status["phases"][1]["gates"][0]["status"]["status"], "awaiting_decision", "nothing was applied: {status:#}");
    let repeated = json_out(dir.path(), &["--as", "alice", "approve", "t1", "a/g1", "--request-id", "r1"]);
    assert_eq!(repeated["replayed"], true, "{repeated:#}");

    // A trigger's halt: the repeat gets the original outcome after the halt moved on.
    assert!(run(dir.path(), &["signal", "t1", "incident", "--data", "{}"]).status.success());
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    let first = json_out(dir.path(), &["--as", "sam", "approve", "t1", "b/p1", "--request-id", "halt-1"]);
    assert_eq!(first["replayed"], false);
    let again = json_out(dir.path(), &["--as", "sam", "approve", "t1", "b/p1", "--request-id", "halt-1"]);
    assert_eq!((again["replayed"].clone(), again["gate"].clone(), again["at"].clone()), (json!(true), json!("p1"), first["at"].clone()));
}

#[test]
fn regression_a_deleted_data_directory_fails_the_server_closed() {
    let dir = scratch(&[("gated.toml", GATED)]);
    let mut server = serve(dir.path());
    let token = server.token.clone();
    let body = json!({"definition": GATED, "id": "before"}).to_string();
    assert_eq!(call(&server, "POST", "/v1/instances", Some(&token), None, body.as_bytes()).0, 201);
    // Once it waits at its gate nothing more is written, so the requests
    // below are what finds the deleted directory.
    wait_until("the instance to wait for a decision", || {
        call(&server, "GET", "/v1/approvals", Some(&token), None, b"").1.as_array().is_some_and(|a| a.len() == 1)
    });
    std::fs::remove_dir_all(dir.path().join("db")).expect("delete the data directory");
    // Whichever comes first finds the deleted directory (this request, or a
    // write of the server's own): while it still answers, it answers 503.
    let alive = std::net::TcpStream::connect(&server.address).is_ok();
    if alive {
        let (status, health) = call(&server, "GET", "/healthz", None, None, b"");
        if status != 0 {
            assert_eq!((status, health["status"].as_str()), (503, Some("unhealthy")), "{health}");
            assert!(health["reason"].as_str().is_some_and(|r| r.contains("deleted")), "{health}");
        }
    }
    if std::net::TcpStream::connect(&server.address).is_ok() {
        let body = json!({"definition": GATED, "id": "after"}).to_string();
        let (status, answer) = call(&server, "POST", "/v1/instances", Some(&token), None, body.as_bytes());
        // 503, or no answer at all from a server already closing: never an acknowledgement.
        assert!(status == 503 || status == 0, "nothing is acknowledged into a deleted directory: {status} {answer}");
    }
    wait_until("the server to exit", || matches!(server.child.try_wait(), Ok(Some(_))));
    let exit = server.child.try_wait().expect("waits").expect("exited");
    assert!(!exit.success(), "a failed server exits non-zero so a supervisor restarts it");
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(log.contains("deleted while this process had it open"), "{log}");
}

#[test]
fn regression_ids_names_and_json_keys_are_checked() {
    let symbols = GATED.replace("name = \"gated\"", "name = \"!!gnp exe\"");
    let duplicate = r#"{"name": "dup", "name": "again", "phases": []}"#;
    let bidi = GATED.replace("id = \"review\"", "id = \"review\"\ntitle = \"ok\u{202E}evil\"");
    let dir = scratch(&[("gated.toml", GATED), ("symbols.toml", &symbols), ("dup.json", duplicate), ("bidi.toml", &bidi)]);
    for id in [".", "..", "-x"] {
        let flag = format!("--id={id}");
        let refused = run(dir.path(), &["start", "gated.toml", &flag]);
        assert_eq!(refused.status.code(), Some(1), "{id}: {}", stderr(&refused));
        assert!(stderr(&refused).contains("not a valid instance id"), "{}", stderr(&refused));
    }
    let started = run(dir.path(), &["start", "symbols.toml"]);
    assert!(started.status.success(), "{}", stderr(&started));
    assert!(stdout(&started).starts_with(|c: char| c.is_ascii_alphanumeric()), "{}", stdout(&started));
    let dup = run(dir.path(), &["validate", "dup.json"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(stderr(&dup).contains("duplicate key `name`"), "{}", stderr(&dup));
    let bidi = run(dir.path(), &["validate", "bidi.toml"]);
    assert_eq!(bidi.status.code(), Some(1));
    assert!(stderr(&bidi).contains("U+202E") && stderr(&bidi).contains("title"), "{}", stderr(&bidi));
}

#[test]
fn regression_the_token_is_treated_as_a_secret() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch(&[("gated.toml", GATED)]);
    assert!(run(dir.path(), &["--db", "db", "start", "gated.toml", "--id", "g1"]).status.success());
    let token = dir.path().join("db/control.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef0123").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let readable = run(dir.path(), &["--db", "db", "serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(readable.status.code(), Some(2));
    assert!(stderr(&readable).contains("readable by others"), "{}", stderr(&readable));
    std::fs::write(&token, "short").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let short = run(dir.path(), &["--db", "db", "serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(short.status.code(), Some(2));
    assert!(stderr(&short).contains("fewer than the 32"), "{}", stderr(&short));
    std::fs::remove_file(&token).expect("remove");

    // An address file naming a port another process listens on gets no token.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    std::fs::write(dir.path().join("db/control.addr"), format!("http://127.0.0.1:{port}\n1\n")).expect("addr");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef0123").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let listed = run(dir.path(), &["--db", "db", "list"]);
    assert!(listed.status.success(), "the CLI used the store itself: {}", stderr(&listed));
    assert!(matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "the CLI connected to a stranger");
    std::fs::remove_file(dir.path().join("db/control.addr")).expect("remove");

    // The bearer scheme is case-insensitive (RFC 7235).
    let server = serve(dir.path());
    let head = format!("GET /v1/instances HTTP/1.1\r\nHost: x\r\nConnection: close\r\nauthorization: bearer {}\r\n\r\n", server.token);
    assert_eq!(raw(&server, &head, b"").0, 200);
}

#[test]
fn regression_the_cli_tells_the_truth_in_exit_codes_and_words() {
    let deep = format!("{}1{} > 0", "(".repeat(60), ")".repeat(60));
    let bad = format!(
        "{}criteria = [{{ must = \"{deep}\", label = \"deep\" }}, {{ must = \"1 + 1\", label = \"sum\" }}, {{ must = \"'a'.matches('(')\", label = \"re\" }}]\n",
        GATED
    );
    let dir = scratch(&[("gated.toml", GATED), ("two.toml", TWO_GATES), ("bad.toml", &bad)]);
    let validated = run(dir.path(), &["validate", "bad.toml"]);
    assert_eq!(validated.status.code(), Some(1));
    let text = stderr(&validated);
    assert!(text.contains("nests deeper than the limit of 48 levels") && !text.contains("OtherError"), "{text}");
    assert!(text.contains("never true or false") && text.contains("always fails"), "{text}");

    let bogus = run(dir.path(), &["list", "--status", "bogus"]);
    assert_eq!(bogus.status.code(), Some(2), "{}", stderr(&bogus));

    assert!(run(dir.path(), &["start", "gated.toml", "--id", "c1"]).status.success());
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    assert_eq!(json_out(dir.path(), &["approvals"]).as_array().map(Vec::len), Some(1));
    assert!(run(dir.path(), &["cancel", "c1"]).status.success());
    assert_eq!(json_out(dir.path(), &["approvals"]).as_array().map(Vec::len), Some(0), "a cancelled instance waits for no one");

    let unknown = run(dir.path(), &["--as", "alice", "approve", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(!stderr(&unknown).contains('\u{1b}') && !stderr(&unknown).contains("WARN"), "{:?}", stderr(&unknown));
    let as_json = run(dir.path(), &["--output", "json", "--as", "alice", "approve", "nope"]);
    assert_eq!(as_json.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&as_json.stdout).expect("a JSON error on stdout");
    assert_eq!(error["kind"], "not_found", "{error}");

    assert!(run(dir.path(), &["start", "two.toml", "--id", "t1"]).status.success());
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    let typo = run(dir.path(), &["--as", "sam", "approve", "t1", "b/p11"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        stderr(&typo).contains("did you mean `b/p1`?") && stderr(&typo).contains("triggers that halt for a decision: b/p1"),
        "{}",
        stderr(&typo)
    );

    // A conflicting decision says who decided and when, locally and through a server.
    assert!(run(dir.path(), &["start", "gated.toml", "--id", "c2"]).status.success());
    assert!(run(dir.path(), &["run", "--until-idle"]).status.success());
    assert!(run(dir.path(), &["--as", "alice", "approve", "c2"]).status.success());
    let local = run(dir.path(), &["--as", "bob", "reject", "c2"]);
    assert_eq!(local.status.code(), Some(1));
    assert!(stderr(&local).contains("already approved by alice at"), "{}", stderr(&local));
    let db = dir.path().join("served");
    std::fs::create_dir_all(&db).expect("dir");
    std::fs::write(db.join("gated.toml"), GATED).expect("write");
    assert!(run(&db, &["--db", "db", "start", "gated.toml", "--id", "c3"]).status.success());
    assert!(run(&db, &["--db", "db", "start", "gated.toml", "--id", "c4"]).status.success());
    let server = serve(&db);
    let (alice, bob) = (server.user("alice", &[]), server.user("bob", &[]));
    let as_user = |token: &str, args: &[&str]| {
        crate::support::phasegate(&db).env("PHASEGATE_TOKEN", token).args(["--db", "db"]).args(args).output().expect("runs")
    };
    wait_until("c3 and c4 to wait", || json_out(&db, &["--db", "db", "approvals"]).as_array().is_some_and(|a| a.len() == 2));
    assert!(as_user(&alice, &["approve", "c3"]).status.success());
    let remote = as_user(&bob, &["reject", "c3"]);
    assert_eq!(remote.status.code(), Some(1));
    assert!(stderr(&remote).contains("already approved by alice at"), "{}", stderr(&remote));
    // A request id reused for another decision: 409 over HTTP, exit 1 from the CLI.
    let first = json!({"decision": "approve", "gate": "build/review", "request_id": "r9"}).to_string();
    let (status, _) = call(&server, "POST", "/v1/instances/c4/decisions", Some(&alice), None, first.as_bytes());
    assert_eq!(status, 200);
    let (status, again) = call(&server, "POST", "/v1/instances/c4/decisions", Some(&alice), None, first.as_bytes());
    assert_eq!((status, &again["replayed"]), (200, &json!(true)), "the identical request answers with the original outcome");
    let reused = json!({"decision": "reject", "gate": "build/review", "request_id": "r9"}).to_string();
    let (status, answer) = call(&server, "POST", "/v1/instances/c4/decisions", Some(&alice), None, reused.as_bytes());
    assert_eq!((status, answer["kind"].as_str()), (409, Some("conflict")), "{answer}");
    drop(server);
}

/// Runs `phasegate --db db start FILE --id ID` in `dir` under strace and
/// returns the traced calls before the one that prints the id (the
/// acknowledgement), and the whole trace for messages.
fn trace_start(strace: &str, dir: &Path, file: &str, id: &str) -> (Vec<String>, String) {
    let out = format!("{id}.trace");
    let traced = std::process::Command::new(strace)
        .current_dir(dir)
        .args(["-f", "-y", "-qq", "-s", "64", "-e", "trace=write,pwrite64,writev,fdatasync,fsync,sync_file_range", "-o", &out])
        .arg(crate::support::phasegate_bin())
        .args(["--db", "db", "start", file, "--id", id])
        .env_remove("RUST_LOG")
        .output()
        .expect("strace runs");
    assert!(traced.status.success(), "{}", stderr(&traced));
    let trace = std::fs::read_to_string(dir.join(&out)).expect("trace");
    // strace prints the id's newline as the two characters `\n`.
    let printed = format!("{id}\\n");
    let lines: Vec<String> = trace.lines().map(str::to_owned).collect();
    let ack = lines.iter().position(|l| l.contains("write(1") && l.contains(&printed)).expect("the id is printed");
    (lines[..ack].to_vec(), trace)
}

/// Every acknowledgement follows a real `fdatasync` of sled's log, traced
/// from the system calls of `phasegate start` (sled's own flush ends in
/// `sync_file_range`, which leaves the disk's write cache unflushed).
#[test]
fn regression_an_acknowledged_start_follows_an_fdatasync_of_the_log() {
    let strace = ["/usr/bin/strace", "/bin/strace"].into_iter().find(|p| Path::new(p).is_file());
    let strace = strace.unwrap_or_else(|| panic!("no strace: run scripts/test, which installs it"));
    let dir = scratch(&[("gated.toml", GATED)]);
    assert!(run(dir.path(), &["--db", "db", "start", "gated.toml", "--id", "first"]).status.success());
    let (before_ack, trace) = trace_start(strace, dir.path(), "gated.toml", "traced");
    let log_write = before_ack.iter().rposition(|l| (l.contains("write(") || l.contains("pwrite64(")) && l.contains("/db/db>"));
    let log_sync = before_ack.iter().rposition(|l| l.contains("fdatasync(") && l.contains("/db/db>"));
    let (Some(write), Some(sync)) = (log_write, log_sync) else {
        panic!("no write and fdatasync of sled's log before the acknowledgement:\n{trace}");
    };
    assert!(write < sync, "the last write of the log before the acknowledgement is synced:\n{}", before_ack[write..].join("\n"));

    // A value sled stores as a separate blob file (here a 300 KB definition)
    // is synced, with its directory, before the acknowledgement too.
    let big = GATED.replace("name = \"gated\"", &format!("name = \"big\"\ndescription = \"{}\"", "x".repeat(300_000)));
    std::fs::write(dir.path().join("big.toml"), big).expect("write");
    let (before_ack, trace) = trace_start(strace, dir.path(), "big.toml", "big");
    assert!(before_ack.iter().any(|l| l.contains("fdatasync(") && l.contains("/db/blobs/")), "no blob file synced:\n{trace}");
    assert!(before_ack.iter().any(|l| l.contains("fsync(") && l.ends_with("/db/blobs>) = 0")), "the blobs directory is synced:\n{trace}");
}

#[test]
fn regression_run_exits_non_zero_when_its_writes_fail() {
    let flow = r#"
name = "slow"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "exec"
params = { argv = ["sh", "-c", "touch started; sleep 1; echo '{}'"] }
"#;
    let dir = scratch(&[("slow.toml", flow)]);
    assert!(run(dir.path(), &["--db", "db", "start", "slow.toml", "--id", "s1"]).status.success());
    let mut child = crate::support::phasegate(dir.path())
        .args(["--db", "db", "run", "--until-idle"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("run.log")).expect("log"))
        .spawn()
        .expect("run starts");
    wait_until("the task to start", || dir.path().join("started").exists());
    std::fs::remove_dir_all(dir.path().join("db")).expect("delete the data directory");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("waits") {
            break exit;
        }
        assert!(Instant::now() < deadline, "run did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();
    assert_eq!(exit.code(), Some(1), "{log}");
    assert!(log.contains("deleted while this process had it open"), "{log}");
}

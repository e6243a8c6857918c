//! The PostgreSQL store through the CLI: `store migrate`, a release run
//! and decided on PostgreSQL, `store copy` into sled and back, and a node
//! killed with -9 whose release another process finishes from the database.
//!
//! The server is the private PostgreSQL that scripts/test starts
//! (PHASEGATE_TEST_POSTGRES); each test makes its own database.

use std::path::Path;

use serde_json::Value;

use crate::support::served::{call, serve_with};
use crate::support::{phasegate, run, stderr, stdout, wait_until};

/// A new, empty database on the test server; its URL.
pub(crate) fn fresh_database() -> String {
    let admin = std::env::var("PHASEGATE_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("PHASEGATE_TEST_POSTGRES is not set: run ./scripts/test, which starts a private PostgreSQL (scripts/postgres) and sets it")
    });
    let name = format!("it_{}", std::process::id()) + &format!("_{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("connect to the test PostgreSQL");
        let task = tokio::spawn(connection);
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await.expect("drop a database left by an earlier run");
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create a database");
        drop(client);
        let _ = task.await;
    });
    let (server, _) = admin.rsplit_once('/').expect("the admin URL names a database");
    format!("{server}/{name}")
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

const GATED: &str = r#"
name = "shipped"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "exec"
params = { argv = ["echo", "{\"built\": true}"] }
[[phases.gates]]
id = "review"
approval = { approvers = ["rita"] }
[[phases]]
id = "deploy"
after = ["build"]
[[phases.tasks]]
id = "roll-out"
agent = "noop"
"#;

/// `phasegate --store URL --db DB ARGS` in `dir`.
fn on(dir: &Path, url: &str, db: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--store", url, "--db", db];
    full.extend_from_slice(args);
    run(dir, &full)
}

fn ok(output: &std::process::Output, what: &str) -> String {
    assert!(output.status.success(), "{what}: {}{}", stdout(output), stderr(output));
    stdout(output)
}

#[test]
fn a_release_runs_on_postgres_and_copies_into_sled_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database();
    std::fs::write(dir.path().join("flow.toml"), GATED).expect("write");
    let created = ok(&on(dir.path(), &url, "node", &["store", "migrate"]), "migrate");
    assert!(created.contains("created the phasegate schema"), "{created}");
    let again = ok(&on(dir.path(), &url, "node", &["store", "migrate"]), "migrate again");
    assert!(again.contains("nothing to do"), "{again}");
    ok(&on(dir.path(), &url, "node", &["start", "flow.toml", "--id", "r1"]), "start");
    ok(&on(dir.path(), &url, "node", &["run", "--until-idle"]), "run");
    let waiting = ok(&on(dir.path(), &url, "node", &["--output", "json", "approvals"]), "approvals");
    assert!(waiting.contains("review"), "{waiting}");
    ok(&on(dir.path(), &url, "node", &["--as", "rita", "approve", "r1", "build/review", "--comment", "looks right"]), "approve");
    ok(&on(dir.path(), &url, "node", &["run", "--until-idle"]), "run again");
    let status: Value =
        serde_json::from_str(&ok(&on(dir.path(), &url, "node", &["--output", "json", "status", "r1"]), "status")).expect("json");
    assert_eq!(status["status"]["status"], "completed", "{status:#}");
    ok(&on(dir.path(), &url, "node", &["audit", "verify", "r1"]), "the chain verifies on PostgreSQL");
    // Nothing of the store went into the data directory: only node files.
    assert!(!dir.path().join("node/db").exists(), "no sled files beside a PostgreSQL store");

    // Into sled, and the copy is the same release.
    let copied = ok(&run(dir.path(), &["store", "copy", "--from", &url, "--to", "copy"]), "copy out");
    assert!(copied.contains("copied 1 instance"), "{copied}");
    let status: Value =
        serde_json::from_str(&ok(&run(dir.path(), &["--db", "copy", "--output", "json", "status", "r1"]), "status of the copy"))
            .expect("json");
    assert_eq!(status["status"]["status"], "completed");
    ok(&run(dir.path(), &["--db", "copy", "audit", "verify", "r1"]), "the chain verifies in the copy");
    // Back into a new database; never over a store.
    let back = fresh_database();
    ok(&run(dir.path(), &["store", "copy", "--from", "copy", "--to", &back]), "copy back");
    let refused = run(dir.path(), &["store", "copy", "--from", "copy", "--to", &back]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("already holds a phasegate store"), "{}", stderr(&refused));
    ok(&on(dir.path(), &back, "node", &["audit", "verify", "r1"]), "the chain verifies after the round trip");
}

#[test]
fn bad_store_urls_and_missing_schemas_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_url = run(dir.path(), &["--store", "somewhere", "list"]);
    assert_eq!(not_url.status.code(), Some(2));
    assert!(stderr(&not_url).contains("give a PostgreSQL URL"), "{}", stderr(&not_url));
    let migrate_sled = run(dir.path(), &["store", "migrate"]);
    assert_eq!(migrate_sled.status.code(), Some(2));
    assert!(stderr(&migrate_sled).contains("--store postgres://"), "{}", stderr(&migrate_sled));
    // A database with no phasegate schema is not a store for commands that read.
    let url = fresh_database();
    let empty = run(dir.path(), &["--store", &url, "status", "r1"]);
    assert_eq!(empty.status.code(), Some(2), "{}", stderr(&empty));
    assert!(stderr(&empty).contains("no store at postgres://"), "{}", stderr(&empty));
    // A password never shows in an error.
    let wrong = run(dir.path(), &["--store", "postgres://me:hunter2@127.0.0.1:1/x?connect_timeout=2", "list"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(!stderr(&wrong).contains("hunter2"), "{}", stderr(&wrong));
}

#[test]
fn a_node_killed_mid_task_is_finished_by_the_next_node_from_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database();
    std::fs::write(dir.path().join("phasegate.toml"), "[store]\nlease = \"2s\"\n").expect("config");
    std::fs::write(
        dir.path().join("flow.toml"),
        "name = \"slow\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"first\"\nagent = \"noop\"\n[[phases.tasks]]\nid = \"slow\"\nagent = \"wait\"\ndepends_on = [\"first\"]\nparams = { duration = \"3s\" }\n",
    )
    .expect("write");
    let node = |name: &str| {
        let mut command = phasegate(dir.path());
        command.args(["--store", &url, "--db", name, "--config", "phasegate.toml"]);
        serve_with(command, &dir.path().join(name), &dir.path().join(format!("{name}.log")))
    };
    let mut first = node("a");
    let (status, started) = call(
        &first,
        "POST",
        "/v1/instances",
        Some(&first.token),
        None,
        &crate::support::served::json_body(
            serde_json::json!({"definition": std::fs::read_to_string(dir.path().join("flow.toml")).expect("read"), "id": "k1"}),
        ),
    );
    assert!(status == 201 || status == 200, "{status} {started}");
    wait_until("the slow task to be dispatched", || {
        let (_, history) = call(&first, "GET", "/v1/instances/k1/history", Some(&first.token), None, b"");
        history.to_string().contains("slow")
    });
    // kill -9: its leases stay until they expire.
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    let second = node("b");
    wait_until("the second node to finish the release", || {
        let (_, instance) = call(&second, "GET", "/v1/instances/k1", Some(&second.token), None, b"");
        instance["status"]["status"] == "completed"
    });
    // Killed too; the next process waits out its leases, then finds one
    // unbroken chain: nothing lost, nothing appended twice.
    drop(second);
    let verify = on(dir.path(), &url, "c", &["--config", "phasegate.toml", "audit", "verify", "k1"]);
    assert!(verify.status.success(), "{}{}", stdout(&verify), stderr(&verify));
    let history = on(dir.path(), &url, "c", &["--config", "phasegate.toml", "--output", "json", "history", "k1"]);
    let history: Value = serde_json::from_str(&ok(&history, "history")).expect("json");
    let events = history.as_array().expect("events");
    let succeeded = events.iter().filter(|e| e["event"]["type"] == "TaskSucceeded" && e["event"]["task"] == "first").count();
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
    assert_eq!(succeeded, 1, "the completed task ran once: {history:#}");
}

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

/// Writes `phasegate.toml` with a 2 s lease, so takeovers in these tests are quick.
fn write_lease_config(dir: &Path) {
    std::fs::write(dir.join("phasegate.toml"), "[store]\nlease = \"2s\"\n").expect("config");
}

/// A `phasegate serve` node on the store at `url`, its files in `dir/name`.
fn cluster_node(dir: &Path, url: &str, name: &str) -> crate::support::served::Server {
    let mut command = phasegate(dir);
    command.args(["--store", url, "--db", name, "--config", "phasegate.toml"]);
    serve_with(command, &dir.join(name), &dir.join(format!("{name}.log")))
}

/// How many of `events` (a history's JSON) are of `kind`, for `task` if named.
fn count(events: &[Value], kind: &str, task: Option<&str>) -> usize {
    events.iter().filter(|e| e["event"]["type"] == kind && task.is_none_or(|t| e["event"]["task"] == t)).count()
}

/// Fails unless `events` are numbered 1, 2, 3, ... without a gap.
fn assert_contiguous(id: &str, events: &[Value]) {
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{id}: no sequence gaps");
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
    write_lease_config(dir.path());
    std::fs::write(
        dir.path().join("flow.toml"),
        "name = \"slow\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"first\"\nagent = \"noop\"\n[[phases.tasks]]\nid = \"slow\"\nagent = \"wait\"\ndepends_on = [\"first\"]\nparams = { duration = \"3s\" }\n",
    )
    .expect("write");
    let node = |name: &str| cluster_node(dir.path(), &url, name);
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
    assert_contiguous("k1", events);
    assert_eq!(count(events, "TaskSucceeded", Some("first")), 1, "the completed task ran once: {history:#}");
}

const CHAOS: &str = r#"
name = "chaos"
[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "exec"
params = { argv = ["echo", "{\"built\": true}"] }
[[phases.gates]]
id = "review"
[phases.gates.approval]
approvers = ["rita"]
timeout = "3s"
on_timeout = "escalate"
[[phases.gates.approval.escalation]]
approvers = ["rita"]
[[phases]]
id = "deploy"
after = ["build"]
[[phases.tasks]]
id = "soak"
agent = "wait"
params = { duration = "1s" }
[[phases.tasks]]
id = "roll-out"
agent = "exec"
depends_on = ["soak"]
params = { argv = ["echo", "{\"deployed\": true}"] }
"#;

/// A small deterministic generator (the seed is printed), so a failing
/// run can be replayed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Every event row of the store: (instance, seq, node, fence).
fn event_rows(url: &str) -> Vec<(String, u64, Option<String>, Option<i64>)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
        let task = tokio::spawn(connection);
        let rows = client
            .query("SELECT k, node, fence FROM phasegate_kv WHERE substring(k from 1 for 2) = 'e:'::bytea ORDER BY k", &[])
            .await
            .expect("events");
        drop(client);
        let _ = task.await;
        rows.iter()
            .map(|row| {
                let key: Vec<u8> = row.get(0);
                let end = key.iter().skip(2).position(|&b| b == 0).map_or(key.len(), |p| p + 2);
                let instance = String::from_utf8_lossy(&key[2..end]).into_owned();
                let seq = key.get(end + 1..).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes);
                (instance, seq, row.get(1), row.get(2))
            })
            .collect()
    })
}

#[test]
fn chaos_three_nodes_on_one_postgres_lose_nothing_while_nodes_are_killed_again_and_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database();
    ok(&run(dir.path(), &["--store", &url, "store", "migrate"]), "migrate");
    write_lease_config(dir.path());
    std::fs::write(dir.path().join("chaos.toml"), CHAOS).expect("write");
    let start_node = |name: &str| cluster_node(dir.path(), &url, name);
    let names = ["a", "b", "c"];
    let mut nodes: Vec<crate::support::served::Server> = vec![start_node("a")];
    // Users live in the store: a token issued through one node works on every node.
    let rita = nodes[0].user("rita", &[]);
    nodes.push(start_node("b"));
    nodes.push(start_node("c"));
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64) | 1;
    eprintln!("chaos seed {seed}");
    let mut dice = Dice(seed);

    // Instances started through random nodes; each reaches its owner.
    let instances = 200;
    let definition = std::fs::read_to_string(dir.path().join("chaos.toml")).expect("read");
    for i in 0..instances {
        let node = &nodes[dice.below(3)];
        let body = crate::support::served::json_body(serde_json::json!({"definition": definition, "id": format!("c{i}")}));
        let (status, answer) = call(node, "POST", "/v1/instances", Some(&node.token), None, &body);
        assert_eq!(status, 201, "start c{i} through {}: {answer}", node.address);
    }

    // Kill -9 a random node, again and again, while approvals go to random
    // nodes; even instances are approved at once, odd ones only after their
    // approval deadline passed (so each deadline must fire exactly once).
    let mut kills = 0;
    let mut acknowledged: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(420);
    let mut next_kill = std::time::Instant::now();
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the releases did not finish: {kills} kills, {} decisions acknowledged",
            acknowledged.len()
        );
        if kills < 50 && std::time::Instant::now() >= next_kill {
            let victim = dice.below(3);
            nodes[victim].child.kill().expect("kill -9");
            let _ = nodes[victim].child.wait();
            let restarted = start_node(names[victim]);
            nodes[victim] = restarted;
            kills += 1;
            next_kill = std::time::Instant::now() + std::time::Duration::from_millis(400 + dice.below(800) as u64);
        }
        let node = &nodes[dice.below(3)];
        let (status, waiting) = call(node, "GET", "/v1/approvals", Some(&node.token), None, b"");
        if status != 200 {
            continue;
        }
        for pending in waiting.as_array().cloned().unwrap_or_default() {
            let id = pending["instance"].as_str().unwrap_or_default().to_owned();
            if acknowledged.contains(&id) {
                continue;
            }
            let number: usize = id.trim_start_matches('c').parse().unwrap_or(0);
            if number % 2 == 1 {
                let (_, history) = call(node, "GET", &format!("/v1/instances/{id}/history"), Some(&node.token), None, b"");
                if !history.to_string().contains("GateTimedOut") {
                    continue;
                }
            }
            let to = &nodes[dice.below(3)];
            let body = crate::support::served::json_body(serde_json::json!({
                "decision": "approve", "gate": "build/review", "comment": "chaos", "request_id": format!("approve-{id}")
            }));
            let (status, _) = call(to, "POST", &format!("/v1/instances/{id}/decisions"), Some(&rita), None, &body);
            if status == 200 || status == 201 {
                acknowledged.insert(id);
            }
        }
        if kills >= 50 {
            let (status, done) = call(node, "GET", "/v1/instances?status=completed", Some(&node.token), None, b"");
            if status == 200 && done.as_array().map_or(0, Vec::len) == instances {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(kills >= 50, "{kills} kills");

    // Every instance completed; every acknowledged decision is in its log
    // exactly once; no completed task ran twice; each deadline fired once.
    let node = &nodes[0];
    for i in 0..instances {
        let id = format!("c{i}");
        let (status, history) = call(node, "GET", &format!("/v1/instances/{id}/history"), Some(&node.token), None, b"");
        assert_eq!(status, 200, "{id}: {history}");
        let events = history.as_array().expect("events");
        assert_eq!(count(events, "InstanceCompleted", None), 1, "{id} completed: {history:#}");
        assert_eq!(count(events, "DecisionRecorded", None), 1, "{id}: the decision recorded once");
        for task in ["compile", "roll-out"] {
            assert_eq!(count(events, "TaskSucceeded", Some(task)), 1, "{id}: {task} succeeded once");
        }
        let deadlines = count(events, "GateTimedOut", None);
        assert!(deadlines <= 1, "{id}: the deadline fired {deadlines} times");
        if i % 2 == 1 {
            assert_eq!(deadlines, 1, "{id}: its deadline fired");
        }
        assert_contiguous(&id, events);
    }
    for id in &acknowledged {
        assert!(id.starts_with('c'), "{id}");
    }
    // No two nodes ever appended for one instance under the same lease, and
    // each instance's fences only grow along its log.
    let mut by_lease: std::collections::BTreeMap<(String, i64), std::collections::BTreeSet<String>> = Default::default();
    let mut last_fence: std::collections::BTreeMap<String, i64> = Default::default();
    for (instance, seq, node, fence) in event_rows(&url) {
        let (node, fence) = (node.expect("each event names its node"), fence.expect("and its fence"));
        by_lease.entry((instance.clone(), fence)).or_default().insert(node);
        let last = last_fence.entry(instance.clone()).or_insert(fence);
        assert!(fence >= *last, "{instance} event {seq}: fence {fence} after {last}");
        *last = fence;
    }
    for ((instance, fence), writers) in &by_lease {
        assert_eq!(writers.len(), 1, "{instance}: fence {fence} was written by {writers:?}");
    }
    // Each node says what it holds; between them they hold every shard,
    // and shards were taken over from the killed nodes.
    let mut held = 0;
    let mut takeovers = 0;
    for node in &nodes {
        let (_, health) = call(node, "GET", "/healthz", None, None, b"");
        held += health["cluster"]["shards"].as_u64().unwrap_or(0);
        let (status, metrics) = call(node, "GET", "/metrics", Some(&node.token), None, b"");
        assert_eq!(status, 200);
        let text = metrics.as_str().unwrap_or_default().to_owned();
        assert!(text.contains("phasegate_cluster_lease_renewals_total"), "{text}");
        takeovers += text
            .lines()
            .find(|l| l.starts_with("phasegate_cluster_takeovers_total"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
    }
    assert!(held <= 64, "{held} shards held: two nodes never hold one shard");
    eprintln!(
        "chaos: {kills} kills, {} decisions acknowledged, {takeovers} takeovers counted by the nodes alive at the end",
        acknowledged.len()
    );
}

/// A PostgreSQL server of this test's own (restarting the shared one would
/// disturb the tests running beside it), stopped when dropped.
struct OwnPostgres {
    dir: std::path::PathBuf,
    admin: String,
}

impl OwnPostgres {
    fn start(dir: &Path) -> Self {
        let script = crate::support::workspace_root().join("scripts/postgres");
        let dir = dir.join("pg");
        let out = std::process::Command::new(&script).arg("start").arg(&dir).output().expect("scripts/postgres runs");
        assert!(out.status.success(), "scripts/postgres start: {}", String::from_utf8_lossy(&out.stderr));
        OwnPostgres { dir, admin: String::from_utf8_lossy(&out.stdout).trim().to_owned() }
    }

    fn restart(&self) {
        let script = crate::support::workspace_root().join("scripts/postgres");
        let out = std::process::Command::new(&script).arg("restart").arg(&self.dir).output().expect("scripts/postgres runs");
        assert!(out.status.success(), "scripts/postgres restart: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let script = crate::support::workspace_root().join("scripts/postgres");
        let _ = std::process::Command::new(&script).arg("stop").arg(&self.dir).output();
    }
}

#[test]
fn postgres_restarted_mid_run_loses_nothing_and_the_node_reconnects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = OwnPostgres::start(dir.path());
    let (server, _) = pg.admin.rsplit_once('/').expect("a database part");
    let url = format!("{server}/postgres");
    ok(&run(dir.path(), &["--store", &url, "store", "migrate"]), "migrate");
    write_lease_config(dir.path());
    let flow = "name = \"steady\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"first\"\nagent = \"exec\"\nparams = { argv = [\"echo\", \"{}\"] }\n[[phases.tasks]]\nid = \"soak\"\nagent = \"wait\"\ndepends_on = [\"first\"]\nparams = { duration = \"2s\" }\n[[phases.tasks]]\nid = \"last\"\nagent = \"exec\"\ndepends_on = [\"soak\"]\nparams = { argv = [\"echo\", \"{}\"] }\n";
    let node = cluster_node(dir.path(), &url, "node");
    for i in 0..20 {
        let body = crate::support::served::json_body(serde_json::json!({"definition": flow, "id": format!("s{i}")}));
        let (status, answer) = call(&node, "POST", "/v1/instances", Some(&node.token), None, &body);
        assert_eq!(status, 201, "{answer}");
    }
    // While the soaks run: PostgreSQL stops and starts again.
    pg.restart();
    wait_until("every release to finish after the restart", || {
        let (status, done) = call(&node, "GET", "/v1/instances?status=completed", Some(&node.token), None, b"");
        status == 200 && done.as_array().map_or(0, Vec::len) == 20
    });
    let (status, health) = call(&node, "GET", "/healthz", None, None, b"");
    assert_eq!(status, 200, "the node stayed healthy: {health}");
    for i in 0..20 {
        let (_, history) = call(&node, "GET", &format!("/v1/instances/s{i}/history"), Some(&node.token), None, b"");
        let events = history.as_array().expect("events");
        assert_contiguous(&format!("s{i}"), events);
        for task in ["first", "last"] {
            assert_eq!(count(events, "TaskSucceeded", Some(task)), 1, "s{i}: {task} succeeded once");
        }
    }
    let log = std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default();
    // The node saw its connections go (and made new ones, or retried).
    assert!(
        ["retrying", "could not be recycled", "Connection error"].iter().any(|sign| log.contains(sign)),
        "the node saw PostgreSQL go away: {log}"
    );
}

#[test]
fn a_deadline_that_falls_due_while_no_node_is_up_fires_once_when_one_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database();
    ok(&run(dir.path(), &["--store", &url, "store", "migrate"]), "migrate");
    write_lease_config(dir.path());
    let node = |name: &str| cluster_node(dir.path(), &url, name);
    let mut first = node("a");
    let rita = first.user("rita", &[]);
    let body = crate::support::served::json_body(serde_json::json!({"definition": CHAOS, "id": "d1"}));
    assert_eq!(call(&first, "POST", "/v1/instances", Some(&first.token), None, &body).0, 201);
    wait_until("d1 to wait at its gate", || {
        call(&first, "GET", "/v1/approvals", Some(&first.token), None, b"").1.as_array().is_some_and(|a| a.len() == 1)
    });
    let reached = std::time::Instant::now();
    // No node is up when the 3 s deadline falls due.
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    wait_until("the deadline to pass with no node up", || reached.elapsed() > std::time::Duration::from_secs(4));
    let second = node("b");
    let timed_out = |server: &crate::support::served::Server| {
        let (_, history) = call(server, "GET", "/v1/instances/d1/history", Some(&server.token), None, b"");
        history.as_array().map_or(0, |events| count(events, "GateTimedOut", None))
    };
    wait_until("the node that came back to fire the deadline", || timed_out(&second) == 1);
    // A second node joining (shards move) fires nothing again.
    let third = node("c");
    wait_until("the shards to split", || {
        call(&third, "GET", "/healthz", None, None, b"").1["cluster"]["shards"].as_u64().is_some_and(|s| s > 0)
    });
    // Followers on every node (owner or not) hear of the decision while
    // they wait: a node that does not drive d1 reads the store again.
    let (_, before) = call(&second, "GET", "/v1/instances/d1/history", Some(&second.token), None, b"");
    let seen = before.as_array().map_or(0, Vec::len);
    let followers: Vec<_> = [&second, &third]
        .iter()
        .map(|server| {
            let (address, token) = (server.address.clone(), server.token.clone());
            std::thread::spawn(move || {
                let path = format!("/v1/instances/d1/history?after={seen}&wait_ms=20000");
                let started = std::time::Instant::now();
                let (status, events) = crate::support::served::call_at(&address, "GET", &path, Some(&token), None, b"");
                (status, events, started.elapsed())
            })
        })
        .collect();
    let approve =
        crate::support::served::json_body(serde_json::json!({"decision": "approve", "gate": "build/review", "request_id": "late"}));
    let (status, answer) = call(&third, "POST", "/v1/instances/d1/decisions", Some(&rita), None, &approve);
    assert_eq!(status, 200, "{answer}");
    for follower in followers {
        let (status, events, waited) = follower.join().expect("the follower");
        assert_eq!(status, 200, "{events}");
        assert!(events.to_string().contains("DecisionRecorded"), "every node's follower saw the decision: {events}");
        assert!(waited < std::time::Duration::from_secs(20), "it answered when the decision was made, not at the end of its wait");
    }
    wait_until("d1 to complete", || {
        call(&second, "GET", "/v1/instances/d1", Some(&second.token), None, b"").1["status"]["status"] == "completed"
    });
    assert_eq!(timed_out(&second), 1, "the deadline fired exactly once");
}

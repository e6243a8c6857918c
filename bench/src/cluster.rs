//! PostgreSQL: the shapes on one, two and three nodes sharing one database,
//! and how long the survivors take to take over a node killed with -9.
//!
//! Throughput runs the nodes as engines in this process, each with its own
//! store, pool and leases on the database, so they contend for it as
//! separate processes would; a command for an instance another node owns
//! is handed to that node's engine (the in-process form of the server's
//! node-to-node call). Takeover runs real `phasegate serve` processes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phasegate_engine::machine::EffectiveStatus;
use phasegate_engine::model::{Format, Source};
use phasegate_engine::runtime::cluster::{Forward, Forwarded};
use phasegate_engine::runtime::Error;
use phasegate_engine::{Engine, StartOptions};
use phasegate_store::{OpenMode, PostgresOptions, PostgresStore, Store};

/// The lease the benchmark's nodes hold (the default).
pub const LEASE: Duration = Duration::from_secs(10);

/// A PostgreSQL server for the benchmark: `PHASEGATE_BENCH_POSTGRES` (an
/// admin URL), or a private one started by scripts/postgres and stopped
/// when dropped.
pub struct Postgres {
    admin: String,
    own: Option<tempfile::TempDir>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres")
}

impl Postgres {
    /// The server, or why there is none.
    pub fn start() -> Result<Self, String> {
        if let Ok(admin) = std::env::var("PHASEGATE_BENCH_POSTGRES") {
            return Ok(Postgres { admin, own: None });
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new(script()).arg("start").arg(dir.path().join("pg")).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Postgres { admin: String::from_utf8_lossy(&out.stdout).trim().to_owned(), own: Some(dir) })
    }

    /// A new database with the schema; its URL.
    pub fn fresh_database(&self, name: &str) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let admin = self.admin.clone();
        let name = format!("{name}_{}", std::process::id());
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("connect");
            let task = tokio::spawn(connection);
            client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await.expect("drop");
            client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create");
            drop(client);
            let _ = task.await;
        });
        let (server, _) = self.admin.rsplit_once('/').expect("the admin URL names a database");
        let url = format!("{server}/{name}");
        phasegate_store::PostgresBackend::migrate(&url).expect("migrate");
        url
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(dir) = &self.own {
            let _ = std::process::Command::new(script()).arg("stop").arg(dir.path().join("pg")).output();
        }
    }
}

/// Hands a command to the engine of the node that owns its instance.
struct InProcess(std::sync::Mutex<Vec<(String, Arc<Engine>)>>);

#[async_trait::async_trait]
impl Forward for InProcess {
    async fn forward(&self, owner: &phasegate_store::NodeAddress, command: &Forwarded) -> Result<serde_json::Value, Error> {
        let engine = self.0.lock().ok().and_then(|nodes| nodes.iter().find(|(node, _)| *node == owner.node).map(|(_, e)| Arc::clone(e)));
        match engine {
            Some(engine) => engine.execute_forwarded(command.clone()).await,
            None => Err(Error::Remote { kind: "not_owner", message: format!("no node {}", owner.node) }),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// From the first start to every instance completed.
    pub elapsed: Duration,
}

/// Runs `instances` instances of `definition` on `nodes` nodes sharing the
/// database at `url` (started round-robin through the nodes), to completion.
pub async fn run(url: &str, definition: &str, instances: usize, nodes: usize) -> Run {
    let forwarder = Arc::new(InProcess(std::sync::Mutex::new(Vec::new())));
    let mut engines: Vec<Arc<Engine>> = Vec::new();
    for _ in 0..nodes {
        let (url, options) = (url.to_owned(), PostgresOptions { shared: true, lease: LEASE, ..PostgresOptions::default() });
        let store = tokio::task::spawn_blocking(move || PostgresStore::open_url(&url, OpenMode::Existing, options))
            .await
            .expect("opens")
            .expect("the store");
        let store: Arc<dyn Store> = Arc::new(store);
        let engine = Arc::new(Engine::builder().store(Arc::clone(&store)).max_concurrent_tasks(1024).build().await.expect("engine"));
        let node = store.cluster().expect("a cluster node").node;
        store.advertise(&node);
        engine.set_forwarder(Arc::clone(&forwarder) as Arc<dyn Forward>);
        if let Ok(mut all) = forwarder.0.lock() {
            all.push((node, Arc::clone(&engine)));
        }
        engines.push(engine);
    }
    // Every node holds its share before the clock starts.
    let deadline = Instant::now() + LEASE * 3;
    loop {
        let held: Vec<usize> = engines.iter().map(|e| e.cluster().map_or(0, |c| c.shards)).collect();
        // Settled: each holds at least what is left when the others hold
        // their fair share (ceil(64 / nodes)), as the nodes' own rule gives.
        let least = 64 - (nodes - 1) * 64usize.div_ceil(nodes);
        if held.iter().sum::<usize>() == 64 && held.iter().all(|&h| h >= least) {
            break;
        }
        assert!(Instant::now() < deadline, "the shards never split: {held:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let workflow = engines[0].load_definition(&Source::from_text(definition, Format::Toml)).expect("valid");
    let started = Instant::now();
    let mut handles = Vec::with_capacity(instances);
    for i in 0..instances {
        let (engine, workflow) = (Arc::clone(&engines[i % nodes]), workflow.clone());
        handles.push(tokio::spawn(async move {
            engine.start(workflow, StartOptions { id: Some(format!("i{i}")), ..StartOptions::default() }).await.expect("starts")
        }));
    }
    for handle in handles {
        handle.await.expect("started");
    }
    loop {
        let done = engines[0].list(Some(EffectiveStatus::Completed)).map_or(0, |rows| rows.len());
        if done == instances {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    // Shut down, and the last reference to each store closes it: its
    // leases go back at once.
    for engine in engines {
        engine.shutdown().await;
    }
    if let Ok(mut all) = forwarder.0.lock() {
        all.clear();
    }
    Run { elapsed }
}

/// The `phasegate` binary, built (release) for the takeover measurement.
fn phasegate_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "phasegate-engine", "--bin", "phasegate"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cannot build the phasegate binary");
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("release/phasegate")
}

/// A `phasegate serve` node process (killed when dropped) and its address.
struct Node {
    child: std::process::Child,
    address: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(binary: &Path, url: &str, dir: &Path, name: &str, lease: Duration) -> Node {
    let db = dir.join(name);
    let config = dir.join("phasegate.toml");
    std::fs::write(&config, format!("[store]\nlease = \"{}s\"\n", lease.as_secs())).expect("config");
    let child = std::process::Command::new(binary)
        .args(["--store", url, "--db"])
        .arg(&db)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    // Killed when dropped, whatever happens next.
    let mut node = Node { child, address: String::new() };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(db.join("control.addr")) {
            if let Some(url) = text.lines().next() {
                node.address = url.trim_start_matches("http://").to_owned();
                return node;
            }
        }
        assert!(Instant::now() < deadline, "node {name} never served");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The shards a node says it holds (`/healthz`), none if it does not answer.
fn shards(address: &str) -> usize {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else { return 0 };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return 0;
    }
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v["cluster"]["shards"].as_u64()).unwrap_or(0) as usize
}

/// Three `serve` nodes on the database at `url`; kills one with -9 and
/// returns how long until the other two hold every shard, with the lease.
pub fn takeover(url: &str, lease: Duration) -> Duration {
    let binary = phasegate_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = ["a", "b", "c"].iter().map(|name| serve(&binary, url, dir.path(), name, lease)).collect();
    let deadline = Instant::now() + lease * 6;
    while nodes.iter().map(|n| shards(&n.address)).filter(|&s| s > 0).count() < 3 {
        assert!(Instant::now() < deadline, "the shards never split among three nodes");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut victim = nodes.remove(0);
    victim.child.kill().expect("kill -9");
    let killed = Instant::now();
    let _ = victim.child.wait();
    loop {
        if nodes.iter().map(|n| shards(&n.address)).sum::<usize>() == 64 {
            return killed.elapsed();
        }
        assert!(killed.elapsed() < lease * 6, "the survivors never took over");
        std::thread::sleep(Duration::from_millis(10));
    }
}

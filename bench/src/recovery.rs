//! Recovery over a large store: instances waiting for approval and
//! instances with a task in flight, reopened by a fresh process.
//!
//! [`populate`] fills a store through the engine itself (so it holds what a
//! real deployment would: events, snapshots, summaries, indexes, outbox
//! entries), then stops with the running instances' tasks still in flight.
//! [`measure`] is what the fresh process does: open the store, recover, and
//! time the first dispatch, `approvals` and `status` over everything.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phasegate_agents::{Agent, Error, Registry, TaskContext, TaskOutput, TaskRequest};
use phasegate_engine::model::{Format, Source};
use phasegate_engine::{Engine, StartOptions};
use serde_json::{json, Value};

/// One task, then a gate that waits for alice's approval.
pub const WAITING: &str = "name = \"wait\"\n[[phases]]\nid = \"review\"\n[[phases.tasks]]\nid = \"build\"\nagent = \"noop\"\n\
[[phases.gates]]\nid = \"sign-off\"\n[phases.gates.approval]\napprovers = [\"alice\"]\n";

/// One task on the `block` agent, which never finishes.
pub const RUNNING: &str = "name = \"busy\"\n[[phases]]\nid = \"work\"\n[[phases.tasks]]\nid = \"long\"\nagent = \"block\"\n";

/// An agent whose attempts never finish: they stay in flight. Counts calls
/// and remembers when the first one came.
#[derive(Debug, Clone, Default)]
pub struct Block {
    calls: Arc<AtomicUsize>,
    first_at: Arc<AtomicU64>,
}

impl Block {
    /// Attempts dispatched to it so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// When the first attempt came, in nanoseconds since the epoch (0: none yet).
    pub fn first_at(&self) -> u64 {
        self.first_at.load(Ordering::SeqCst)
    }

    /// Waits until `calls` attempts have come, or `limit` passed.
    pub async fn wait_for(&self, calls: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.calls() < calls {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

#[async_trait::async_trait]
impl Agent for Block {
    fn name(&self) -> &str {
        "block"
    }

    async fn run(&self, _request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error> {
        let now = u64::try_from(crate::unix_nanos()).unwrap_or(u64::MAX);
        let _ = self.first_at.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        context.cancel.cancelled().await;
        Err(Error::Retryable("cancelled".to_owned()))
    }
}

fn engine_builder(block: &Block, running: usize) -> phasegate_engine::Builder {
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(block.clone()));
    Engine::builder().agents(registry).max_concurrent_tasks(running + 64)
}

/// Fills the store at `path` with `waiting` instances waiting for approval
/// and `running` instances whose one task is in flight, then stops the
/// engine without finishing them. Returns how long it took.
pub async fn populate(path: &Path, waiting: usize, running: usize) -> Duration {
    let started = Instant::now();
    let block = Block::default();
    let engine = engine_builder(&block, running).store_path(path).build().await.expect("engine");
    let wait = engine.load_definition(&Source::from_text(WAITING, Format::Toml)).expect("valid");
    let busy = engine.load_definition(&Source::from_text(RUNNING, Format::Toml)).expect("valid");
    const CHUNK: usize = 5_000;
    for chunk in (0..waiting).collect::<Vec<_>>().chunks(CHUNK) {
        let starts: Vec<_> = chunk
            .iter()
            .map(|i| engine.start(wait.clone(), StartOptions { id: Some(format!("w{i}")), ..StartOptions::default() }))
            .collect();
        for start in starts {
            start.await.expect("starts");
        }
        engine.run_until_idle().await;
    }
    let starts: Vec<_> =
        (0..running).map(|i| engine.start(busy.clone(), StartOptions { id: Some(format!("r{i}")), ..StartOptions::default() })).collect();
    for start in starts {
        start.await.expect("starts");
    }
    assert!(block.wait_for(running, Duration::from_secs(300)).await, "every running instance dispatched its task");
    engine.shutdown().await;
    started.elapsed()
}

/// What a fresh process measures on a populated store; returns JSON with
/// wall-clock instants (nanoseconds since the epoch) so the parent can
/// measure from the moment it started the process.
pub async fn measure(path: &Path, waiting: usize, running: usize) -> Value {
    let resident_at_start = crate::resident_bytes();
    let block = Block::default();
    let engine = engine_builder(&block, running).store_path(path).build().await.expect("engine");
    let ready_at = crate::unix_nanos();
    let resident_at_ready = crate::resident_bytes();
    let all_dispatched = block.wait_for(running, Duration::from_secs(300)).await;
    let all_dispatched_at = crate::unix_nanos();
    assert!(all_dispatched, "recovery dispatched every attempt in flight again ({} of {running})", block.calls());

    // The queries people run, five times each (the first pays for a cold cache).
    let mut approvals = Vec::new();
    let mut listed = Vec::new();
    let mut one = Vec::new();
    let mut found = (0, 0, false);
    for round in 0..5 {
        let started = Instant::now();
        let pending = engine.approvals(None).expect("approvals");
        approvals.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let all = engine.list(None).expect("list");
        listed.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let (instance, _) = engine.instance(&format!("w{}", round * 7919 % waiting.max(1))).expect("instance");
        one.push(started.elapsed().as_secs_f64());
        found = (pending.len(), all.len(), instance.effective_status() == phasegate_engine::machine::EffectiveStatus::AwaitingApproval);
    }
    assert_eq!(found.0, waiting, "approvals lists every waiting instance");
    assert_eq!(found.1, waiting + running, "status lists every instance");
    assert!(found.2, "a waiting instance loads as awaiting approval");
    let engine = Arc::new(engine);
    let (inbox_s, list_s) = console(&engine, waiting).await;
    let resident_after_queries = crate::resident_bytes();
    json!({
        "ready_at": ready_at.to_string(),
        "first_dispatch_at": block.first_at().to_string(),
        "all_dispatched_at": all_dispatched_at.to_string(),
        "resident_at_start": resident_at_start,
        "resident_at_ready": resident_at_ready,
        "resident_after_queries": resident_after_queries,
        "approvals_s": approvals,
        "status_all_s": listed,
        "status_one_s": one,
        "console_inbox_s": inbox_s,
        "console_instances_s": list_s,
    })
}

/// The web console's inbox (alice's first page of the decisions waiting for
/// her) and instance list (the first page), each fetched five times over
/// HTTP from a server on loopback, as a signed-in browser fetches them.
async fn console(engine: &Arc<Engine>, waiting: usize) -> (Vec<f64>, Vec<f64>) {
    let issued = engine.add_user("alice", &[], "bench").expect("a user");
    let app = phasegate_engine::server::router(Arc::clone(engine), "b".repeat(64), Default::default()).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    tokio::task::spawn_blocking(move || {
        let session = http::sign_in(address, &issued.token);
        let mut inbox = Vec::new();
        let mut list = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let page = http::get(address, "/console/", &session);
            inbox.push(started.elapsed().as_secs_f64());
            assert!(waiting == 0 || page.contains("action=\"/console/decide\""), "the inbox shows alice's decisions");
            let started = Instant::now();
            let page = http::get(address, "/console/instances", &session);
            list.push(started.elapsed().as_secs_f64());
            assert!(page.contains("/console/instances/"), "the list shows instances");
        }
        (inbox, list)
    })
    .await
    .expect("the console requests")
}

/// Just enough HTTP/1.1 for the console's pages (one request per connection).
mod http {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    fn exchange(address: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
    }

    fn cookie(answer: &str, name: &str) -> String {
        answer
            .lines()
            .find_map(|line| line.strip_prefix(&format!("set-cookie: {name}=")))
            .and_then(|value| value.split(';').next())
            .map(|value| format!("{name}={value}"))
            .expect("a cookie")
    }

    /// A session cookie for `token`, signed in through the sign-in form.
    pub(super) fn sign_in(address: SocketAddr, token: &str) -> String {
        let form = exchange(address, "GET /console/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let login = cookie(&form, "phasegate_login");
        let csrf = form.split("name=\"csrf\" value=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a form token");
        let body = format!("token={token}&csrf={csrf}");
        let answer = exchange(
            address,
            &format!(
                "POST /console/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {login}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        cookie(&answer, "phasegate_session")
    }

    /// The page at `path`, as the signed-in session sees it.
    pub(super) fn get(address: SocketAddr, path: &str, session: &str) -> String {
        let answer = exchange(address, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {session}\r\n\r\n"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {}", answer.lines().next().unwrap_or_default());
        answer
    }
}

/// Copies a store directory (sled's files) so every run starts from the same bytes.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

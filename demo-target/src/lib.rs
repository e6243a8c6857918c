//! `phasegate-demo-target`: a small web service on loopback that the shipped
//! release lifecycle checks, deploys and rolls back, so a new user can watch
//! a gate pass and a rollback fire on real numbers.
//!
//! It serves a page and a tiny JSON API (what the E2E, accessibility,
//! security and performance scripts exercise), `/healthz`, and `/metrics` in
//! Prometheus text format. It also generates its own steady traffic, so its
//! error ratio and availability are meaningful without a load generator.
//! Switches under `/admin/` inject errors or downtime and carry out the
//! lifecycle's deploy and rollback steps (DNS switch, migrations, cache).
//! The admin routes are unauthenticated, so it listens on loopback only.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;

/// Exit status: it ran and stopped cleanly.
const EXIT_OK: u8 = 0;
/// Exit status: usage or I/O error.
const EXIT_USAGE: u8 = 2;

/// The demo service the shipped release lifecycle checks, deploys and rolls
/// back (loopback only).
#[derive(Debug, Parser)]
#[command(name = "phasegate-demo-target", bin_name = "phasegate-demo-target", version, about, long_about = None)]
pub struct DemoTargetArgs {
    /// Address to listen on; loopback only (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Write the URL it serves on to this file once listening (for scripts).
    #[arg(long, value_name = "FILE")]
    pub url_file: Option<PathBuf>,
    /// Simulated requests per second of background traffic.
    #[arg(long, default_value_t = 50)]
    pub traffic: u32,
    /// Append every notification POSTed to `/notify` to this file, one JSON
    /// line each (the demo's inbox: what a Slack channel or pager would get).
    #[arg(long, value_name = "FILE")]
    pub inbox: Option<PathBuf>,
}

/// How far back the ratios in `/metrics` look.
const WINDOW: Duration = Duration::from_secs(10);

/// How far back `/sli` can look: a little over the seeds' longest window
/// (7 days of staging uptime), a second per entry.
const HISTORY_SECONDS: usize = 8 * 24 * 3600;

/// One second of service: traffic ticks seen and how many were up, and the
/// requests served and failed.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    ticks: u8,
    up_ticks: u8,
    requests: u32,
    errors: u32,
}

struct Demo {
    version: String,
    previous: Option<String>,
    dns: String,
    migrations: Vec<String>,
    cache_entries: u64,
    error_rate: f64,
    down_until: Option<Instant>,
    requests: u64,
    errors: u64,
    /// (when, requests, errors, up) per traffic tick, for the windowed ratios.
    ticks: VecDeque<(Instant, u64, u64, bool)>,
    carry: f64,
    items: Vec<Value>,
    events: Vec<Value>,
    /// When it started: `/sli` counts seconds from here.
    started: Instant,
    /// Per second since `started` (the last [`HISTORY_SECONDS`] of them):
    /// what `/sli` measures a window over.
    history: VecDeque<(u64, Second)>,
    /// The release candidate the pipeline deployed to staging.
    staging_version: Option<String>,
    /// A gradual rollout in progress: (version, share of traffic).
    canary: Option<(String, f64)>,
    /// An injected flaw: `/search` reflects its query unescaped (for the
    /// security scan's negative test).
    reflect: bool,
    /// Injected launch faults, each used up as it happens: deploys the
    /// pipeline refuses (LAUNCH-001), deploys that report success but leave
    /// traffic on the old version (LAUNCH-003), page loads that fail
    /// (a failed smoke test, LAUNCH-002).
    deploy_failures: u32,
    stale_deploys: u32,
    page_failures: u32,
    /// Notifications received at `/notify`, first delivery of each key only.
    notifications: Vec<Value>,
    /// Deliveries of a key already received (a sender retrying after a crash).
    duplicate_notifications: u64,
    /// Where notifications are appended, one JSON line each.
    inbox: Option<PathBuf>,
}

impl Demo {
    fn down(&self) -> bool {
        self.down_until.is_some_and(|until| Instant::now() < until)
    }

    fn window(&self) -> (f64, f64) {
        let (mut requests, mut errors, mut up, mut ticks) = (0u64, 0u64, 0u64, 0u64);
        for (_, r, e, is_up) in &self.ticks {
            requests += r;
            errors += e;
            ticks += 1;
            up += u64::from(*is_up);
        }
        let error_ratio = if requests == 0 { 0.0 } else { errors as f64 / requests as f64 };
        let availability = if ticks == 0 { 1.0 } else { up as f64 / ticks as f64 };
        (error_ratio, availability)
    }

    /// Counts traffic into the current second's entry of the history.
    fn count(&mut self, requests: u64, errors: u64, tick_up: Option<bool>) {
        let second = self.started.elapsed().as_secs();
        if self.history.back().is_none_or(|(s, _)| *s != second) {
            self.history.push_back((second, Second::default()));
            while self.history.len() > HISTORY_SECONDS {
                self.history.pop_front();
            }
        }
        if let Some((_, entry)) = self.history.back_mut() {
            entry.requests = entry.requests.saturating_add(u32::try_from(requests).unwrap_or(u32::MAX));
            entry.errors = entry.errors.saturating_add(u32::try_from(errors).unwrap_or(u32::MAX));
            if let Some(up) = tick_up {
                entry.ticks = entry.ticks.saturating_add(1);
                entry.up_ticks = entry.up_ticks.saturating_add(u8::from(up));
            }
        }
    }

    /// Availability and error ratio over the last `window` seconds, and how
    /// much of that window was observed (less while it has run for less).
    fn sli(&self, window: f64) -> Value {
        let now = self.started.elapsed().as_secs_f64();
        let from = now - window;
        let (mut ticks, mut up, mut requests, mut errors) = (0u64, 0u64, 0u64, 0u64);
        for (second, entry) in self.history.iter().rev() {
            if (*second as f64) + 1.0 <= from {
                break;
            }
            ticks += u64::from(entry.ticks);
            up += u64::from(entry.up_ticks);
            requests += u64::from(entry.requests);
            errors += u64::from(entry.errors);
        }
        // A traffic tick is 100 ms of service.
        let observed = (ticks as f64 / 10.0).min(window);
        json!({
            "window_seconds": window,
            "observed_seconds": observed,
            "availability": (ticks > 0).then(|| up as f64 / ticks as f64),
            "error_ratio": (requests > 0).then(|| errors as f64 / requests as f64),
            "requests": requests,
        })
    }

    fn record(&mut self, what: &str, detail: Value) {
        self.events.push(json!({"what": what, "detail": detail, "at_ms": now_ms()}));
    }
}

type Shared = Arc<Mutex<Demo>>;

fn lock(demo: &Shared) -> std::sync::MutexGuard<'_, Demo> {
    demo.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Milliseconds since the Unix epoch, for the event log it keeps.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs the demo target with the process's arguments and returns its exit status.
pub fn main() -> ExitCode {
    let args = match DemoTargetArgs::try_parse() {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    ExitCode::from(run(&args))
}

/// Serves until interrupted; returns the exit status.
pub fn run(args: &DemoTargetArgs) -> u8 {
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "error: --listen {}: the demo target has unauthenticated admin switches, so it listens on loopback only (127.0.0.1 or ::1)",
            args.listen
        );
        return EXIT_USAGE;
    }
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() else {
        eprintln!("error: cannot start the async runtime");
        return EXIT_USAGE;
    };
    runtime.block_on(serve(args))
}

async fn serve(args: &DemoTargetArgs) -> u8 {
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}; choose another with --listen 127.0.0.1:PORT", args.listen);
            return EXIT_USAGE;
        }
    };
    let address = listener.local_addr().map_or_else(|_| args.listen.to_string(), |a| a.to_string());
    let url = format!("http://{address}");
    if let Some(path) = &args.url_file {
        if let Err(error) = std::fs::write(path, format!("{url}\n")) {
            eprintln!("error: cannot write {}: {error}", path.display());
            return EXIT_USAGE;
        }
    }
    let demo: Shared = Arc::new(Mutex::new(Demo {
        version: "1.0.0".to_owned(),
        previous: None,
        dns: "blue".to_owned(),
        migrations: vec!["0001_initial".to_owned()],
        cache_entries: 128,
        error_rate: 0.0,
        down_until: None,
        requests: 0,
        errors: 0,
        ticks: VecDeque::new(),
        carry: 0.0,
        items: vec![json!({"id": 1, "name": "first item"})],
        events: Vec::new(),
        started: Instant::now(),
        history: VecDeque::new(),
        staging_version: None,
        canary: None,
        reflect: false,
        deploy_failures: 0,
        stale_deploys: 0,
        page_failures: 0,
        notifications: Vec::new(),
        duplicate_notifications: 0,
        inbox: args.inbox.clone(),
    }));
    tokio::spawn(traffic(Arc::clone(&demo), args.traffic));
    let app = Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/api/items", get(list_items).post(create_item))
        .route("/search", get(search))
        .route("/sli", get(sli))
        .route("/staging/version", get(staging_version))
        .route("/admin/staging/deploy", post(staging_deploy))
        .route("/admin/rollout", post(rollout))
        .route("/admin/state", get(state))
        .route("/admin/inject", post(inject))
        .route("/admin/deploy", post(deploy))
        .route("/admin/dns", post(dns))
        .route("/admin/migrations/apply", post(migrate))
        .route("/admin/migrations/rollback", post(unmigrate))
        .route("/admin/cache/purge", post(purge))
        .route("/notify", post(notify))
        .route("/admin/notifications", get(notifications))
        .with_state(demo);
    eprintln!(
        "demo target serving {url} (metrics at {url}/metrics; inject errors with: curl -X POST '{url}/admin/inject?error_rate=0.25')"
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        Ok(()) => EXIT_OK,
        Err(error) => {
            eprintln!("error: the demo target stopped: {error}");
            EXIT_USAGE
        }
    }
}

/// Steady background traffic: every 100 ms, a tenth of the per-second rate,
/// failing at the injected error rate (all of it while down).
async fn traffic(demo: Shared, per_second: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let mut demo = lock(&demo);
        let requests = u64::from(per_second.max(1)).div_ceil(10);
        let down = demo.down();
        let errors = if down {
            requests
        } else {
            let expected = requests as f64 * demo.error_rate + demo.carry;
            let whole = expected.floor();
            demo.carry = expected - whole;
            whole as u64
        };
        demo.requests += requests;
        demo.errors += errors;
        demo.count(requests, errors, Some(!down));
        let now = Instant::now();
        demo.ticks.push_back((now, requests, errors, !down));
        while demo.ticks.front().is_some_and(|(at, ..)| now.duration_since(*at) > WINDOW) {
            demo.ticks.pop_front();
        }
    }
}

/// A request the demo serves itself: counted, and failed at the injected
/// rate (the failure response is returned).
fn served(demo: &Shared) -> Option<Response> {
    let mut demo = lock(demo);
    demo.requests += 1;
    let fail = demo.down() || (demo.error_rate > 0.0 && rand_unit(demo.requests) < demo.error_rate);
    demo.count(1, u64::from(fail), None);
    if fail {
        demo.errors += 1;
        let status = if demo.down() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR };
        return Some((status, Json(json!({"error": "injected failure"}))).into_response());
    }
    None
}

/// A deterministic spread in [0, 1) per request number.
fn rand_unit(n: u64) -> f64 {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn secure_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
}

async fn page(State(demo): State<Shared>) -> Response {
    if let Some(failure) = served(&demo) {
        return failure;
    }
    {
        let mut demo = lock(&demo);
        if demo.page_failures > 0 {
            demo.page_failures -= 1;
            return (StatusCode::INTERNAL_SERVER_ERROR, Html("<!doctype html><title>Error</title><p>template error</p>\n")).into_response();
        }
    }
    let version = lock(&demo).version.clone();
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Demo shop {version}</title></head>\n<body>\n\
         <main>\n<h1>Demo shop</h1>\n<img src=\"/logo.png\" alt=\"Demo shop logo\">\n\
         <form action=\"/api/items\" method=\"post\"><label for=\"name\">Item name</label><input id=\"name\" name=\"name\"><button type=\"submit\">Add</button></form>\n\
         </main>\n</body>\n</html>\n"
    );
    (secure_headers(), Html(body)).into_response()
}

async fn healthz(State(demo): State<Shared>) -> Response {
    let demo = lock(&demo);
    if demo.down() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "down"}))).into_response()
    } else {
        (secure_headers(), Json(json!({"status": "ok", "version": demo.version}))).into_response()
    }
}

async fn version(State(demo): State<Shared>) -> Response {
    let demo = lock(&demo);
    let canary = demo.canary.as_ref().map(|(version, weight)| json!({"version": version, "weight": weight}));
    (secure_headers(), Json(json!({"version": demo.version, "previous": demo.previous, "dns": demo.dns, "canary": canary}))).into_response()
}

#[derive(Deserialize)]
struct Window {
    window_seconds: f64,
}

/// Service level indicators over a window: availability (share of traffic
/// ticks up) and error ratio, with how much of the window it has observed.
async fn sli(State(demo): State<Shared>, Query(window): Query<Window>) -> Response {
    if !(window.window_seconds.is_finite() && window.window_seconds > 0.0) {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "window_seconds is a positive number of seconds"}))).into_response();
    }
    Json(lock(&demo).sli(window.window_seconds)).into_response()
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

/// A search page that shows the query back, escaped (or, with the injected
/// flaw, as it came: a reflected XSS for the security scan to find).
async fn search(State(demo): State<Shared>, Query(search): Query<Search>) -> Response {
    if let Some(failure) = served(&demo) {
        return failure;
    }
    let shown = if lock(&demo).reflect { search.q.clone() } else { escape_html(&search.q) };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Search</title></head>\n<body><main><h1>Results for {shown}</h1></main></body>\n</html>\n"
    );
    (secure_headers(), Html(body)).into_response()
}

fn escape_html(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

async fn staging_version(State(demo): State<Shared>) -> Json<Value> {
    Json(json!({"version": lock(&demo).staging_version}))
}

/// The pipeline deploys a release candidate to staging.
async fn staging_deploy(State(demo): State<Shared>, Query(deploy): Query<Deploy>) -> Json<Value> {
    let mut demo = lock(&demo);
    demo.staging_version = Some(deploy.version.clone());
    demo.record("staging-deploy", json!({"version": deploy.version}));
    Json(json!({"version": demo.staging_version}))
}

#[derive(Deserialize)]
struct Rollout {
    version: String,
    weight: f64,
}

/// A gradual rollout: `weight` of the traffic to `version` (0 ends it).
async fn rollout(State(demo): State<Shared>, Query(rollout): Query<Rollout>) -> Response {
    if !(0.0..=1.0).contains(&rollout.weight) {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "weight is a share between 0 and 1"}))).into_response();
    }
    let mut demo = lock(&demo);
    demo.canary = (rollout.weight > 0.0).then(|| (rollout.version.clone(), rollout.weight));
    demo.record("rollout", json!({"version": rollout.version, "weight": rollout.weight}));
    let canary = demo.canary.as_ref().map(|(version, weight)| json!({"version": version, "weight": weight}));
    Json(json!({"canary": canary})).into_response()
}

async fn list_items(State(demo): State<Shared>) -> Response {
    if let Some(failure) = served(&demo) {
        return failure;
    }
    let items = lock(&demo).items.clone();
    (secure_headers(), Json(json!({"items": items}))).into_response()
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

async fn create_item(State(demo): State<Shared>, body: Option<Json<NewItem>>) -> Response {
    if let Some(failure) = served(&demo) {
        return failure;
    }
    let Some(Json(item)) = body else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "send JSON like {\"name\": \"...\"}"}))).into_response();
    };
    let mut demo = lock(&demo);
    let id = demo.items.len() + 1;
    let created = json!({"id": id, "name": item.name});
    demo.items.push(created.clone());
    (StatusCode::CREATED, secure_headers(), Json(created)).into_response()
}

async fn metrics(State(demo): State<Shared>) -> Response {
    let demo = lock(&demo);
    let (error_ratio, availability) = demo.window();
    let up = u8::from(!demo.down());
    let body = format!(
        "# HELP demo_http_requests_total Requests served.\n# TYPE demo_http_requests_total counter\ndemo_http_requests_total {}\n\
         # HELP demo_http_errors_total Requests that failed.\n# TYPE demo_http_errors_total counter\ndemo_http_errors_total {}\n\
         # HELP demo_up Whether the service is up.\n# TYPE demo_up gauge\ndemo_up {up}\n\
         # HELP demo_error_ratio Failed share of requests over the last {w} s.\n# TYPE demo_error_ratio gauge\ndemo_error_ratio {error_ratio}\n\
         # HELP demo_availability_ratio Share of the last {w} s the service was up.\n# TYPE demo_availability_ratio gauge\ndemo_availability_ratio {availability}\n\
         # HELP demo_cache_entries Entries in the asset cache.\n# TYPE demo_cache_entries gauge\ndemo_cache_entries {}\n\
         # HELP demo_infra_cost_per_hour Simulated infrastructure cost, USD per hour.\n# TYPE demo_infra_cost_per_hour gauge\ndemo_infra_cost_per_hour 4.2\n\
         # HELP demo_info The version served.\n# TYPE demo_info gauge\ndemo_info{{version=\"{}\",dns=\"{}\"}} 1\n\
         # HELP demo_latency_p95_seconds 95th percentile request latency.\n# TYPE demo_latency_p95_seconds gauge\ndemo_latency_p95_seconds {p95}\n\
         # HELP demo_db_query_p95_seconds 95th percentile database query time.\n# TYPE demo_db_query_p95_seconds gauge\ndemo_db_query_p95_seconds 0.012\n\
         # HELP demo_cpu_utilization CPU in use.\n# TYPE demo_cpu_utilization gauge\ndemo_cpu_utilization 0.23\n\
         # HELP demo_memory_bytes Resident memory.\n# TYPE demo_memory_bytes gauge\ndemo_memory_bytes 52428800\n\
         # HELP demo_disk_free_ratio Free disk share.\n# TYPE demo_disk_free_ratio gauge\ndemo_disk_free_ratio 0.71\n\
         # HELP demo_network_bytes_total Bytes sent.\n# TYPE demo_network_bytes_total counter\ndemo_network_bytes_total {net}\n\
         # HELP demo_auth_failures_total Failed logins.\n# TYPE demo_auth_failures_total counter\ndemo_auth_failures_total 0\n\
         # HELP demo_log_lines_total Log lines shipped to aggregation.\n# TYPE demo_log_lines_total counter\ndemo_log_lines_total {}\n\
         # HELP demo_signups_total Accounts created.\n# TYPE demo_signups_total counter\ndemo_signups_total {}\n",
        demo.requests,
        demo.errors,
        demo.cache_entries,
        demo.version,
        demo.dns,
        demo.requests,
        demo.requests / 40,
        w = WINDOW.as_secs(),
        // Slower while failing: errors time out upstream.
        p95 = 0.045 + 0.4 * error_ratio,
        net = demo.requests * 2048,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn state(State(demo): State<Shared>) -> Json<Value> {
    let demo = lock(&demo);
    let (error_ratio, availability) = demo.window();
    Json(json!({
        "version": demo.version, "previous": demo.previous, "dns": demo.dns, "migrations": demo.migrations,
        "cache_entries": demo.cache_entries, "error_rate": demo.error_rate, "down": demo.down(),
        "error_ratio": error_ratio, "availability": availability, "events": demo.events,
        "staging_version": demo.staging_version,
    }))
}

/// A webhook receiver: keeps each notification once per `Idempotency-Key`
/// (a sender that retries after a crash delivers the same key again) and
/// appends it to the inbox file.
async fn notify(State(demo): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut demo = lock(&demo);
    let seen = key
        .as_ref()
        .is_some_and(|key| demo.notifications.iter().any(|n| n.get("idempotency_key").and_then(Value::as_str) == Some(key.as_str())));
    if seen {
        demo.duplicate_notifications += 1;
        return (StatusCode::OK, Json(json!({"received": false, "duplicate": true}))).into_response();
    }
    let entry = json!({"received_ms": now_ms(), "idempotency_key": key, "notification": body});
    if let Some(path) = demo.inbox.clone() {
        use std::io::Write;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| writeln!(file, "{entry}").and_then(|()| file.sync_data()));
        if let Err(error) = written {
            // Not kept, so the sender retries it.
            return (StatusCode::SERVICE_UNAVAILABLE, format!("cannot append to the inbox {}: {error}", path.display())).into_response();
        }
    }
    demo.notifications.push(entry);
    (StatusCode::OK, Json(json!({"received": true}))).into_response()
}

/// The notifications received, oldest first, and how many were duplicates.
async fn notifications(State(demo): State<Shared>) -> Json<Value> {
    let demo = lock(&demo);
    Json(json!({"notifications": demo.notifications, "duplicates": demo.duplicate_notifications}))
}

#[derive(Deserialize)]
struct Inject {
    error_rate: Option<f64>,
    down_seconds: Option<u64>,
    /// `true` makes `/search` reflect its query unescaped.
    reflect: Option<bool>,
    /// The next N deploys are refused.
    deploy_failures: Option<u32>,
    /// The next N deploys answer success but change nothing.
    stale_deploys: Option<u32>,
    /// The next N loads of the home page fail.
    page_failures: Option<u32>,
}

async fn inject(State(demo): State<Shared>, Query(inject): Query<Inject>) -> Response {
    let mut demo = lock(&demo);
    if let Some(rate) = inject.error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "error_rate is a share between 0 and 1"}))).into_response();
        }
        demo.error_rate = rate;
    }
    if let Some(seconds) = inject.down_seconds {
        demo.down_until = (seconds > 0).then(|| Instant::now() + Duration::from_secs(seconds));
    }
    if let Some(reflect) = inject.reflect {
        demo.reflect = reflect;
    }
    demo.deploy_failures = inject.deploy_failures.unwrap_or(demo.deploy_failures);
    demo.stale_deploys = inject.stale_deploys.unwrap_or(demo.stale_deploys);
    demo.page_failures = inject.page_failures.unwrap_or(demo.page_failures);
    let detail = json!({
        "error_rate": demo.error_rate, "down": demo.down(), "reflect": demo.reflect,
        "deploy_failures": demo.deploy_failures, "stale_deploys": demo.stale_deploys, "page_failures": demo.page_failures,
    });
    demo.record("inject", detail.clone());
    Json(detail).into_response()
}

#[derive(Deserialize)]
struct Deploy {
    version: String,
}

async fn deploy(State(demo): State<Shared>, Query(deploy): Query<Deploy>) -> Response {
    let mut demo = lock(&demo);
    if demo.deploy_failures > 0 {
        demo.deploy_failures -= 1;
        demo.record("deploy-refused", json!({"version": deploy.version}));
        return (StatusCode::CONFLICT, Json(json!({"error": "deploy refused: the image failed its pipeline checks"}))).into_response();
    }
    if demo.stale_deploys > 0 {
        demo.stale_deploys -= 1;
        demo.record("deploy-stale", json!({"version": deploy.version}));
        return Json(json!({"version": deploy.version, "previous": demo.version, "dns": demo.dns})).into_response();
    }
    let previous = std::mem::replace(&mut demo.version, deploy.version.clone());
    demo.previous = Some(previous.clone());
    demo.dns = if demo.dns == "blue" { "green".to_owned() } else { "blue".to_owned() };
    demo.cache_entries += 64;
    demo.record("deploy", json!({"version": deploy.version, "previous": previous}));
    Json(json!({"version": demo.version, "previous": demo.previous, "dns": demo.dns})).into_response()
}

#[derive(Deserialize)]
struct Dns {
    target: String,
}

/// `target=previous` points traffic back at the previous release (and its
/// version); anything else names the colour.
async fn dns(State(demo): State<Shared>, Query(dns): Query<Dns>) -> Json<Value> {
    let mut demo = lock(&demo);
    if dns.target == "previous" {
        demo.dns = if demo.dns == "blue" { "green".to_owned() } else { "blue".to_owned() };
        if let Some(previous) = demo.previous.take() {
            demo.version = previous;
        }
        // The previous release does not have the injected fault.
        demo.error_rate = 0.0;
        demo.down_until = None;
    } else {
        demo.dns = dns.target.clone();
    }
    let detail = json!({"dns": demo.dns, "version": demo.version});
    demo.record("dns", detail.clone());
    Json(detail)
}

#[derive(Deserialize)]
struct Migration {
    id: String,
}

async fn migrate(State(demo): State<Shared>, Query(migration): Query<Migration>) -> Json<Value> {
    let mut demo = lock(&demo);
    if !demo.migrations.contains(&migration.id) {
        demo.migrations.push(migration.id.clone());
    }
    demo.record("migrate", json!({"id": migration.id}));
    Json(json!({"migrations": demo.migrations}))
}

async fn unmigrate(State(demo): State<Shared>) -> Json<Value> {
    let mut demo = lock(&demo);
    let reverted = if demo.migrations.len() > 1 { demo.migrations.pop() } else { None };
    demo.record("rollback-migration", json!({"reverted": reverted}));
    Json(json!({"reverted": reverted, "migrations": demo.migrations}))
}

async fn purge(State(demo): State<Shared>) -> Json<Value> {
    let mut demo = lock(&demo);
    let purged = std::mem::take(&mut demo.cache_entries);
    demo.record("cache-purge", json!({"purged": purged}));
    Json(json!({"purged": purged}))
}

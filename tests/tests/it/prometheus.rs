//! End to end against a real Prometheus: the seeds' "error rate above 10 %
//! for 2 minutes → manual approval → roll back", scaled to seconds.
//!
//! The test serves a small exporter whose counters it controls, starts the
//! Prometheus server that `scripts/install-deps` installed (on a free
//! port, with its own configuration and data directory) and stops it when
//! done. It drives the real `phasegate` binary: `start`, `run` until the
//! watch fires and the instance halts, `approve`, `run --until-idle`, and
//! reads `history`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{phasegate, run};

/// Requests and errors served so far; the error share is set by the test
/// in thousandths.
struct Exporter {
    requests: AtomicU64,
    errors: AtomicU64,
    error_permille: AtomicU64,
    stop: AtomicBool,
}

/// Serves `/metrics` on a free port; a background thread counts 200
/// requests a second with the current error share.
fn start_exporter() -> (Arc<Exporter>, u16) {
    let exporter = Arc::new(Exporter {
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        error_permille: AtomicU64::new(10),
        stop: AtomicBool::new(false),
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the exporter");
    let port = listener.local_addr().expect("address").port();
    let counting = Arc::clone(&exporter);
    std::thread::spawn(move || {
        while !counting.stop.load(Ordering::Relaxed) {
            counting.requests.fetch_add(20, Ordering::Relaxed);
            counting.errors.fetch_add(20 * counting.error_permille.load(Ordering::Relaxed) / 1000, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let serving = Arc::clone(&exporter);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if serving.stop.load(Ordering::Relaxed) {
                return;
            }
            serve(stream, &serving);
        }
    });
    (exporter, port)
}

fn serve(mut stream: TcpStream, exporter: &Exporter) {
    let mut request = [0u8; 2048];
    let _ = stream.read(&mut request);
    let body = format!(
        "# TYPE demo_http_requests_total counter\ndemo_http_requests_total {}\n# TYPE demo_http_errors_total counter\ndemo_http_errors_total {}\n",
        exporter.requests.load(Ordering::Relaxed),
        exporter.errors.load(Ordering::Relaxed)
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// A Prometheus server, stopped (and waited for) when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn prometheus_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PHASEGATE_PROMETHEUS") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("prometheus")).find(|p| p.is_file()))
        .unwrap_or_default();
    found.unwrap_or_else(|| panic!("no prometheus binary: run scripts/install-deps (scripts/test does) or set PHASEGATE_PROMETHEUS"))
}

fn start_prometheus(dir: &Path, exporter_port: u16) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 250ms\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
        ),
    )
    .expect("write the configuration");
    let port = free_port();
    let child = Command::new(prometheus_binary())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let server = Prometheus { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http_get(port, "/-/ready").is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200")) {
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("prometheus did not become ready on port {port}");
}

/// Waits until Prometheus answers `query` with a number: a watch started
/// before the first scrapes land sees "no data" (and, with no_data =
/// inconclusive, rightly halts).
fn wait_for_data(port: u16, query: &str) {
    let encoded: String = query
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http_get(port, &format!("/api/v1/query?query={encoded}")).is_some_and(|r| r.contains("\"value\":[")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("prometheus never had data for {query}");
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

const QUERY: &str = "sum(rate(demo_http_errors_total[2s])) / sum(rate(demo_http_requests_total[2s]))";

const WORKFLOW: &str = r#"
name = "launch"
description = "Deploy, then watch the error rate; roll back with a person's approval if it stays high."
[vars]
error_rate_max = 0.10

[[phases]]
id = "deploy"
[[phases.tasks]]
id = "release"
agent = "exec"
params = { argv = ["echo", "{\"version\": \"1.4.0\"}"] }
rollback = { id = "restore-previous-release", agent = "exec", params = { argv = ["echo", "restored 1.3.9"] } }
[[phases.tasks]]
id = "switch-traffic"
agent = "exec"
params = { argv = ["echo", "{\"weight\": 100}"] }
depends_on = ["release"]
rollback = { id = "switch-traffic-back", agent = "exec", params = { argv = ["echo", "weight 0"] } }

[[phases]]
id = "post-launch"
after = ["deploy"]
[[phases.tasks]]
id = "soak"
agent = "sleep"
params = { duration = "10m" }
[[phases.watches]]
id = "error-rate"
agent = "prometheus"
params = { query = "sum(rate(demo_http_errors_total[2s])) / sum(rate(demo_http_requests_total[2s]))" }
interval = "500ms"
condition = "value > vars.error_rate_max"
for = "2s"
no_data = "inconclusive"
[[phases.triggers]]
id = "error-rate-rollback"
on = "error-rate"
action = "halt_for_approval"
approval = { approvers = ["sam"], comment_required = true }
then = "rollback"
[[phases.rollback]]
id = "announce-rollback"
agent = "exec"
params = { argv = ["echo", "rolling back the launch"] }
"#;

#[test]
fn error_rate_above_ten_percent_for_two_seconds_halts_and_approval_rolls_back_in_reverse_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (exporter, exporter_port) = start_exporter();
    let prometheus = start_prometheus(dir.path(), exporter_port);
    let url = format!("http://127.0.0.1:{}", prometheus.port);
    std::fs::write(dir.path().join("launch.toml"), WORKFLOW).expect("write the workflow");
    assert!(WORKFLOW.contains(QUERY), "the test waits for the watch's own query");
    wait_for_data(prometheus.port, QUERY);

    let started = run(dir.path(), &["start", "launch.toml", "--id", "rel-7"]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));

    // Drive it; the first seconds are healthy (1 % errors).
    let mut driver = phasegate(dir.path())
        .args(["run"])
        .env("PROMETHEUS_URL", &url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run starts");
    let stderr = driver.stderr.take().expect("stderr");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str, limit: Duration| {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("`phasegate run` never printed {needle:?}; it printed:\n{}", seen.join("\n"));
    };
    wait_for("phase post-launch started", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    // 25 % errors: the breach must hold for 2 s before the watch fires.
    exporter.error_permille.store(250, Ordering::Relaxed);
    let breach_began = Instant::now();
    wait_for("trigger post-launch/error-rate-rollback fired", Duration::from_secs(60));
    assert!(breach_began.elapsed() >= Duration::from_secs(2), "fired after {:?}, before the breach could last 2 s", breach_began.elapsed());
    // Stop the driver (the halt waits for a person either way).
    let _ = Command::new("kill").args(["-INT", &driver.id().to_string()]).status();
    let _ = driver.wait();

    let status = run(dir.path(), &["--output", "json", "status", "rel-7"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status is JSON");
    assert_eq!(status["effective_status"], "awaiting_approval", "{status:#}");
    let approvals = run(dir.path(), &["approvals"]);
    assert!(String::from_utf8_lossy(&approvals.stdout).contains("error-rate-rollback"), "{}", String::from_utf8_lossy(&approvals.stdout));

    // Only the named approver decides, with a comment; a refusal changes nothing.
    let refused = run(dir.path(), &["--as", "mallory", "approve", "rel-7", "--comment", "ship it"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("may not decide"), "{}", String::from_utf8_lossy(&refused.stderr));
    let approved = run(dir.path(), &["--as", "sam", "approve", "rel-7", "--comment", "error budget burnt; roll back"]);
    assert!(approved.status.success(), "{}", String::from_utf8_lossy(&approved.stderr));

    // The release ends rolled back: `run` says so with exit status 1.
    let finished = phasegate(dir.path()).args(["run", "--until-idle"]).env("PROMETHEUS_URL", &url).output().expect("run");
    assert_eq!(finished.status.code(), Some(1), "{}", String::from_utf8_lossy(&finished.stderr));
    exporter.stop.store(true, Ordering::Relaxed);

    let history = run(dir.path(), &["--output", "json", "history", "rel-7"]);
    let records: Vec<serde_json::Value> = serde_json::from_slice(&history.stdout).expect("history is JSON");
    let events: Vec<&serde_json::Value> = records.iter().map(|r| &r["event"]).collect();
    let samples: Vec<f64> = events.iter().filter(|e| e["type"] == "WatchSampled").filter_map(|e| e["value"].as_f64()).collect();
    assert!(samples.iter().any(|v| *v < 0.05), "healthy samples from Prometheus were recorded: {samples:?}");
    assert!(samples.iter().any(|v| *v > 0.2), "breaching samples from Prometheus were recorded: {samples:?}");
    let compensations: Vec<&str> =
        events.iter().filter(|e| e["type"] == "CompensationSucceeded").filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(compensations, ["announce-rollback", "switch-traffic-back", "restore-previous-release"], "reverse completion order");
    let decided = events.iter().find(|e| e["type"] == "TriggerDecided").expect("the decision is in the history");
    assert_eq!(decided["decision"]["principal"], "sam");
    let final_status = run(dir.path(), &["--output", "json", "status", "rel-7"]);
    let final_status: serde_json::Value = serde_json::from_slice(&final_status.stdout).expect("JSON");
    assert_eq!(final_status["effective_status"], "rolled_back");
    let text = String::from_utf8_lossy(&run(dir.path(), &["history", "rel-7"]).stdout).into_owned();
    for line in [
        "watch post-launch/error-rate sampled",
        "trigger post-launch/error-rate-rollback fired",
        "approved by sam",
        "compensation restore-previous-release succeeded",
        "rollback completed",
    ] {
        assert!(text.contains(line), "history lacks {line:?}:\n{text}");
    }
    drop(prometheus);
}

const QUERIES: &str = r#"
name = "queries"
[[phases]]
id = "baseline"
[[phases.tasks]]
id = "error-ratio-5s"
agent = "prometheus"
params = { query = "sum(rate(demo_http_errors_total[2s])) / sum(rate(demo_http_requests_total[2s]))", range = "5s", step = "1s", reduce = "max" }
[[phases.tasks]]
id = "requests-now"
agent = "prometheus"
params = { query = "demo_http_requests_total" }
[[phases.gates]]
id = "healthy"
criteria = [
  { must = "tasks['error-ratio-5s'].output.value < 0.05", label = "Error ratio stayed under 5 % over the last 5 s" },
  { must = "tasks['requests-now'].output.value > 0.0", label = "Traffic is flowing" },
]
[[phases]]
id = "broken"
after = ["baseline"]
[[phases.tasks]]
id = "typo"
agent = "prometheus"
params = { query = "sum(rate(demo_http_errors_total[2s]" }
"#;

#[test]
fn range_and_instant_queries_feed_a_gate_and_prometheus_errors_surface_verbatim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (exporter, exporter_port) = start_exporter();
    let prometheus = start_prometheus(dir.path(), exporter_port);
    let url = format!("http://127.0.0.1:{}", prometheus.port);
    wait_for_data(prometheus.port, QUERY);
    // The range needs a few seconds of history.
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(dir.path().join("queries.toml"), QUERIES).expect("write");
    assert!(run(dir.path(), &["start", "queries.toml", "--id", "q"]).status.success());
    // The phase with the bad query fails the instance: `run` exits 1.
    let ran = phasegate(dir.path()).args(["run", "--until-idle"]).env("PROMETHEUS_URL", &url).output().expect("run");
    assert_eq!(ran.status.code(), Some(1), "{}", String::from_utf8_lossy(&ran.stderr));
    exporter.stop.store(true, Ordering::Relaxed);

    let status = run(dir.path(), &["--output", "json", "status", "q"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(status["phases"][0]["status"]["status"], "passed", "the gate read both queries: {status:#}");
    let ratio = &status["phases"][0]["tasks"][0]["status"]["output"];
    assert_eq!(ratio["result_type"], "matrix", "a range query: {ratio}");
    assert!(ratio["value"].as_f64().is_some_and(|v| v < 0.05), "{ratio}");
    assert!(status["phases"][0]["tasks"][1]["status"]["output"]["value"].as_f64().is_some_and(|v| v > 0.0));
    assert_eq!(status["effective_status"], "failed");
    let error = status["phases"][1]["tasks"][0]["status"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("parse error"), "Prometheus's own message: {error}");
    drop(prometheus);
}

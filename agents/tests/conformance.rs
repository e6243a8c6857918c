//! Every built-in agent passes the shared conformance checks, plus the
//! behaviour each one documents.

use std::sync::Arc;

use phasegate_agents::conformance::{check, Case};
use phasegate_agents::{Agent, Error, ExecAgent, HttpAgent, NoopAgent, Registry, SleepAgent, TaskContext, TaskRequest};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn params(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("a table")
}

fn request(params: Map<String, Value>) -> TaskRequest {
    TaskRequest {
        instance: "i-1".to_owned(),
        task: "t".to_owned(),
        attempt: 2,
        idempotency_key: "i-1/p.1/t/2".to_owned(),
        params,
        timeout: None,
    }
}

async fn assert_conforms(case: Case) {
    let failures = check(&case).await;
    assert!(failures.is_empty(), "{} does not conform:\n{}", case.agent.name(), failures.join("\n"));
}

/// A loopback HTTP server answering every request with `status` and `body`;
/// returns its base URL. Enough for the agent's tests, no more.
async fn stub_server(status: u16, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let _ = socket.read(&mut buffer).await;
                let response = format!(
                    "HTTP/1.1 {status} Stub\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn exec_conforms() {
    assert_conforms(Case {
        agent: Arc::new(ExecAgent),
        succeeds: params(json!({"argv": ["echo", "{\"ok\": true}"]})),
        invalid: params(json!({"argv": "echo hello"})),
        slow: Some(params(json!({"argv": ["sleep", "30"]}))),
    })
    .await;
}

#[tokio::test]
async fn http_conforms() {
    let url = stub_server(200, "{\"status\": \"ok\"}").await;
    assert_conforms(Case {
        agent: Arc::new(HttpAgent::new()),
        succeeds: params(json!({"url": url, "expect_json": {"/status": "ok"}})),
        invalid: params(json!({"url": "not a url"})),
        // A listener that accepts and never answers keeps the request waiting.
        slow: Some(params(json!({"url": silent_server().await}))),
    })
    .await;
}

async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}/")
}

#[tokio::test]
async fn noop_and_sleep_conform() {
    assert_conforms(Case {
        agent: Arc::new(NoopAgent),
        succeeds: params(json!({"output": {"x": 1}})),
        invalid: params(json!({"fail": 3})),
        slow: None,
    })
    .await;
    assert_conforms(Case {
        agent: Arc::new(SleepAgent),
        succeeds: params(json!({"duration": "10ms"})),
        invalid: params(json!({"duration": "a while"})),
        slow: Some(params(json!({"duration": "60s"}))),
    })
    .await;
}

#[tokio::test]
async fn exec_passes_argv_verbatim_and_reads_json_output() {
    // An argument full of shell syntax reaches the program untouched.
    let hostile = "$(touch /tmp/pwned); `id` && echo \"quoted\" | cat";
    let output =
        ExecAgent.run(request(params(json!({"argv": ["printf", "%s", hostile]}))), TaskContext::detached()).await.expect("printf runs");
    assert_eq!(output.0["stdout"], hostile);
    let output = ExecAgent
        .run(request(params(json!({"argv": ["sh", "-c", "printf '{\"key\": \"%s\", \"attempt\": %s}' \"$PHASEGATE_IDEMPOTENCY_KEY\" \"$PHASEGATE_ATTEMPT\""]}))), TaskContext::detached())
        .await
        .expect("sh runs");
    assert_eq!(output.0, json!({"key": "i-1/p.1/t/2", "attempt": 2}));
}

#[tokio::test]
async fn exec_failures_carry_stderr_and_their_kind() {
    let error = ExecAgent
        .run(request(params(json!({"argv": ["sh", "-c", "echo boom >&2; exit 3"]}))), TaskContext::detached())
        .await
        .expect_err("exit 3 fails");
    assert_eq!(error, Error::Retryable("`sh` exited with status 3; stderr: boom".to_owned()));
    let error = ExecAgent
        .run(request(params(json!({"argv": ["/nonexistent/program"]}))), TaskContext::detached())
        .await
        .expect_err("missing program");
    assert!(matches!(&error, Error::Permanent(m) if m.starts_with("cannot run `/nonexistent/program`")), "{error:?}");
    // A status the task names as a verdict ("the check ran and the answer is no") is not retried.
    let verdict = params(json!({"argv": ["sh", "-c", "echo 'smoke test failed' >&2; exit 3"], "permanent_exit_codes": [3]}));
    let error = ExecAgent.run(request(verdict), TaskContext::detached()).await.expect_err("exit 3 fails");
    assert_eq!(error, Error::Permanent("`sh` exited with status 3; stderr: smoke test failed".to_owned()));
    let other = params(json!({"argv": ["sh", "-c", "exit 1"], "permanent_exit_codes": [3]}));
    assert!(matches!(ExecAgent.run(request(other), TaskContext::detached()).await, Err(Error::Retryable(_))), "other statuses retry");
    for bad in [json!("3"), json!([0]), json!([256]), json!(["x"])] {
        let refused = ExecAgent.check_params(&params(json!({"argv": ["true"], "permanent_exit_codes": bad})));
        assert!(refused.as_ref().is_err_and(|e| e.contains("permanent_exit_codes")), "{bad}: {refused:?}");
    }
}

#[tokio::test]
async fn exec_uses_env_cwd_and_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = ExecAgent
        .run(
            request(params(json!({
                "argv": ["sh", "-c", "printf '%s|%s|' \"$GREETING\" \"$(pwd)\"; cat"],
                "env": {"GREETING": "hi"},
                "cwd": dir.path().to_str(),
                "stdin": "from stdin",
            }))),
            TaskContext::detached(),
        )
        .await
        .expect("runs");
    let expected = format!("hi|{}|from stdin", dir.path().canonicalize().expect("canonical").display());
    assert_eq!(output.0["stdout"], expected);
}

#[tokio::test]
async fn http_reports_status_latency_and_mismatches() {
    let url = stub_server(503, "{\"status\": \"degraded\"}").await;
    let error = HttpAgent::new().run(request(params(json!({"url": url}))), TaskContext::detached()).await.expect_err("503");
    assert!(matches!(&error, Error::Retryable(m) if m.contains("answered 503")), "{error:?}");
    let output = HttpAgent::new()
        .run(request(params(json!({"url": url, "expect_status": [503]}))), TaskContext::detached())
        .await
        .expect("503 expected");
    assert_eq!(output.0["status"], 503);
    assert_eq!(output.0["body"], json!({"status": "degraded"}));
    assert!(output.0["latency_ms"].is_u64());
    let error = HttpAgent::new()
        .run(request(params(json!({"url": url, "expect_status": 503, "expect_json": {"/status": "ok"}}))), TaskContext::detached())
        .await
        .expect_err("json mismatch");
    assert_eq!(error.message(), format!("{url}: `/status` is \"degraded\", expected \"ok\""));
}

#[test]
fn the_registry_holds_the_builtins_by_name() {
    let registry = Registry::with_builtins();
    assert_eq!(registry.names().collect::<Vec<_>>(), ["exec", "http", "noop", "plugin", "prometheus", "sleep", "webhook"]);
    assert_eq!(registry.names().count(), phasegate_agents::BUILTIN_AGENTS.len(), "every reserved name is provided");
    for name in registry.names() {
        assert!(phasegate_agents::BUILTIN_AGENTS.contains(&name), "{name} missing from BUILTIN_AGENTS");
    }
}

/// A loopback server answering each request with `body` and `status`, keeping
/// the raw requests for inspection.
async fn recording_server(status: u16, body: &'static str) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16384];
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                log.lock().expect("log").push(String::from_utf8_lossy(&buffer[..n]).into_owned());
                let response = format!(
                    "HTTP/1.1 {status} Stub\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (format!("http://{address}"), seen)
}

const VECTOR: &str =
    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[1700000000.1,"0.125"]}]}}"#;
const EMPTY: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"],[3,"6"]]}]}}"#;
const BAD_QUERY: &str = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;

#[tokio::test]
async fn prometheus_conforms_and_reads_vectors_matrices_and_errors() {
    use phasegate_agents::PrometheusAgent;
    let (url, seen) = recording_server(200, VECTOR).await;
    assert_conforms(Case {
        agent: Arc::new(PrometheusAgent::new()),
        succeeds: params(json!({"url": url, "query": "sum(rate(http_errors_total[1m]))"})),
        invalid: params(json!({"url": url, "query": ""})),
        slow: Some(params(json!({"url": silent_server().await, "query": "up"}))),
    })
    .await;
    let output =
        PrometheusAgent::new().run(request(params(json!({"url": url, "query": "up"}))), TaskContext::detached()).await.expect("vector");
    assert_eq!(output.0["value"], 0.125);
    assert_eq!(output.0["series"][0]["metric"]["job"], "api");
    assert!(seen.lock().expect("log").last().expect("request").starts_with("GET /api/v1/query?query=up "));

    let (empty, _) = recording_server(200, EMPTY).await;
    let output =
        PrometheusAgent::new().run(request(params(json!({"url": empty, "query": "up"}))), TaskContext::detached()).await.expect("empty");
    assert!(output.0["value"].is_null(), "no data is null, for watches to judge");

    let (matrix, seen) = recording_server(200, MATRIX).await;
    let output = PrometheusAgent::new()
        .run(request(params(json!({"url": matrix, "query": "up", "range": "5m", "step": "30s", "reduce": "avg"}))), TaskContext::detached())
        .await
        .expect("matrix");
    assert_eq!(output.0["value"], 3.0);
    assert!(seen.lock().expect("log").last().expect("request").contains("/api/v1/query_range?"));

    let (bad, _) = recording_server(400, BAD_QUERY).await;
    let error = PrometheusAgent::new()
        .run(request(params(json!({"url": bad, "query": "sum("}))), TaskContext::detached())
        .await
        .expect_err("bad query");
    assert_eq!(error, Error::Permanent("prometheus bad_data: 1:5: parse error: unexpected end of input".to_owned()));
}

#[tokio::test]
async fn webhook_conforms_and_keeps_secrets_out_of_outputs_and_errors() {
    use phasegate_agents::WebhookAgent;
    let (url, seen) = recording_server(200, "{}").await;
    std::env::set_var("PHASEGATE_TEST_HOOK_OK", format!("{url}/services/T000/token-secret-123"));
    std::env::set_var("PHASEGATE_TEST_HOOK_TOKEN", "Bearer sk-very-secret");
    assert_conforms(Case {
        agent: Arc::new(WebhookAgent::new()),
        succeeds: params(json!({"url_env": "PHASEGATE_TEST_HOOK_OK", "json": {"text": "hi"}, "headers_env": {"Authorization": "PHASEGATE_TEST_HOOK_TOKEN"}})),
        invalid: params(json!({"url": "https://example.invalid/x", "url_env": "X"})),
        slow: Some(params(json!({"url": silent_server().await, "timeout": "60s"}))),
    })
    .await;
    let output = WebhookAgent::new()
        .run(request(params(json!({"url_env": "PHASEGATE_TEST_HOOK_OK", "json": {"text": "release r1 needs approval"}, "headers_env": {"Authorization": "PHASEGATE_TEST_HOOK_TOKEN"}}))), TaskContext::detached())
        .await
        .expect("posts");
    let shown = output.0.to_string();
    assert!(!shown.contains("secret"), "{shown}");
    let sent = seen.lock().expect("log").last().cloned().expect("request");
    assert!(sent.starts_with("POST /services/T000/token-secret-123 "), "{sent}");
    assert!(sent.to_ascii_lowercase().contains("authorization: bearer sk-very-secret"), "{sent}");
    assert!(sent.contains(r#"{"text":"release r1 needs approval"}"#), "{sent}");

    let (failing, _) = recording_server(503, "{}").await;
    std::env::set_var("PHASEGATE_TEST_HOOK_DOWN", format!("{failing}/hook/token-secret-456"));
    let error = WebhookAgent::new()
        .run(request(params(json!({"url_env": "PHASEGATE_TEST_HOOK_DOWN"}))), TaskContext::detached())
        .await
        .expect_err("503");
    assert_eq!(error, Error::Retryable("the webhook at the URL in $PHASEGATE_TEST_HOOK_DOWN answered 503".to_owned()));
    let error = WebhookAgent::new()
        .run(request(params(json!({"url_env": "PHASEGATE_TEST_HOOK_UNSET"}))), TaskContext::detached())
        .await
        .expect_err("unset");
    assert!(matches!(&error, Error::Permanent(m) if m.contains("PHASEGATE_TEST_HOOK_UNSET") && m.contains("is not set")), "{error:?}");
}

fn example_plugin() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/plugin.py").display().to_string()
}

#[tokio::test]
async fn plugin_conforms() {
    let plugin = example_plugin();
    assert_conforms(Case {
        agent: Arc::new(phasegate_agents::PluginAgent),
        succeeds: params(json!({"command": ["python3", plugin], "name": "conformance"})),
        invalid: params(json!({"command": "python3 plugin.py"})),
        slow: Some(params(json!({"command": ["python3", plugin], "name": "slow", "pause": 20}))),
    })
    .await;
}

#[tokio::test]
async fn plugin_speaks_the_documented_protocol() {
    let plugin = example_plugin();
    let beats = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&beats);
    let context = TaskContext::new(
        tokio_util::sync::CancellationToken::new(),
        Arc::new(move |progress| sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(progress)),
    );
    let agent = phasegate_agents::PluginAgent;
    let output = agent.run(request(params(json!({"command": ["python3", &plugin], "name": "ada"}))), context).await.expect("succeeds");
    assert_eq!(output.0, json!({"greeting": "hello, ada", "attempt": 2, "key": "i-1/p.1/t/2"}));
    assert_eq!(beats.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len(), 3, "heartbeats reach the engine");

    // The plugin's own error, permanent as it says.
    let refused = agent.run(request(params(json!({"command": ["python3", &plugin]}))), TaskContext::detached()).await.expect_err("no name");
    assert!(matches!(&refused, Error::Permanent(m) if m == "parameter `name` is required"), "{refused:?}");

    // A crash is retryable and carries standard error; so is silence.
    let crash = agent
        .run(request(params(json!({"command": ["sh", "-c", "echo boom >&2; exit 3"]}))), TaskContext::detached())
        .await
        .expect_err("crashes");
    assert!(matches!(&crash, Error::Retryable(m) if m.contains("status 3") && m.contains("boom")), "{crash:?}");
    let silent = agent.run(request(params(json!({"command": ["true"]}))), TaskContext::detached()).await.expect_err("no result");
    assert!(matches!(&silent, Error::Retryable(m) if m.contains("without a {\"result\"")), "{silent:?}");
    let missing = agent.run(request(params(json!({"command": ["/no/such/plugin"]}))), TaskContext::detached()).await.expect_err("missing");
    assert!(matches!(&missing, Error::Permanent(m) if m.contains("cannot run plugin")), "{missing:?}");
}

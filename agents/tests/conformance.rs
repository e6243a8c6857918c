//! Every built-in agent passes the shared conformance checks, plus the
//! behaviour each one documents.

use std::sync::Arc;

use phasegate_agents::conformance::{check, Case};
use phasegate_agents::{
    Agent, Error, ExecAgent, HttpAgent, NoopAgent, Registry, SleepAgent, TaskContext, TaskRequest,
};
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
    assert!(
        failures.is_empty(),
        "{} does not conform:\n{}",
        case.agent.name(),
        failures.join("\n")
    );
}

/// A loopback HTTP server answering every request with `status` and `body`;
/// returns its base URL. Enough for the agent's tests, no more.
async fn stub_server(status: u16, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
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
    let output = ExecAgent
        .run(
            request(params(json!({"argv": ["printf", "%s", hostile]}))),
            TaskContext::detached(),
        )
        .await
        .expect("printf runs");
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
        .run(
            request(params(
                json!({"argv": ["sh", "-c", "echo boom >&2; exit 3"]}),
            )),
            TaskContext::detached(),
        )
        .await
        .expect_err("exit 3 fails");
    assert_eq!(
        error,
        Error::Retryable("`sh` exited with status 3; stderr: boom".to_owned())
    );
    let error = ExecAgent
        .run(
            request(params(json!({"argv": ["/nonexistent/program"]}))),
            TaskContext::detached(),
        )
        .await
        .expect_err("missing program");
    assert!(
        matches!(&error, Error::Permanent(m) if m.starts_with("cannot run `/nonexistent/program`")),
        "{error:?}"
    );
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
    let expected = format!(
        "hi|{}|from stdin",
        dir.path().canonicalize().expect("canonical").display()
    );
    assert_eq!(output.0["stdout"], expected);
}

#[tokio::test]
async fn http_reports_status_latency_and_mismatches() {
    let url = stub_server(503, "{\"status\": \"degraded\"}").await;
    let error = HttpAgent::new()
        .run(
            request(params(json!({"url": url}))),
            TaskContext::detached(),
        )
        .await
        .expect_err("503");
    assert!(
        matches!(&error, Error::Retryable(m) if m.contains("answered 503")),
        "{error:?}"
    );
    let output = HttpAgent::new()
        .run(
            request(params(json!({"url": url, "expect_status": [503]}))),
            TaskContext::detached(),
        )
        .await
        .expect("503 expected");
    assert_eq!(output.0["status"], 503);
    assert_eq!(output.0["body"], json!({"status": "degraded"}));
    assert!(output.0["latency_ms"].is_u64());
    let error = HttpAgent::new()
        .run(
            request(params(
                json!({"url": url, "expect_status": 503, "expect_json": {"/status": "ok"}}),
            )),
            TaskContext::detached(),
        )
        .await
        .expect_err("json mismatch");
    assert_eq!(
        error.message(),
        format!("{url}: `/status` is \"degraded\", expected \"ok\"")
    );
}

#[test]
fn the_registry_holds_the_builtins_by_name() {
    let registry = Registry::with_builtins();
    assert_eq!(
        registry.names().collect::<Vec<_>>(),
        ["exec", "http", "noop", "sleep"]
    );
    for name in registry.names() {
        assert!(
            phasegate_agents::BUILTIN_AGENTS.contains(&name),
            "{name} missing from BUILTIN_AGENTS"
        );
    }
}

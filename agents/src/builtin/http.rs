//! `http`: probes an HTTP endpoint.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::params;
use crate::{Agent, Error, TaskContext, TaskOutput, TaskRequest, MAX_OUTPUT_BYTES};

/// Sends one HTTP request and checks the answer. Parameters:
///
/// - `url` (required), `method` (default `GET`), `headers` (table of strings),
///   `body` (text) or `json` (any JSON value, sent as JSON);
/// - `expect_status`: a status or a list of statuses (default: any 2xx);
/// - `expect_body_contains`: text the body must contain;
/// - `expect_json`: a table of JSON pointers to expected values, e.g.
///   `{ "/status" = "ok" }`;
/// - `timeout`: per request (default 30s).
///
/// The output is `{"status": 200, "latency_ms": 12, "body": ...}` where the
/// body is JSON when it parses, text otherwise. A failed expectation or a
/// connection error is retryable: probes are expected to be retried until the
/// target is healthy or the retry policy gives up.
#[derive(Debug, Clone)]
pub struct HttpAgent {
    client: reqwest::Client,
}

impl HttpAgent {
    /// An agent with its own connection pool.
    pub fn new() -> Self {
        Self { client: reqwest::Client::builder().build().unwrap_or_default() }
    }
}

impl Default for HttpAgent {
    fn default() -> Self {
        Self::new()
    }
}

struct Expectation {
    statuses: Vec<u16>,
    body_contains: Option<String>,
    json: Vec<(String, Value)>,
}

fn expectation(params: &Map<String, Value>) -> Result<Expectation, String> {
    let statuses = match params.get("expect_status") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Number(n)) => vec![status_code(n)?],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_number().ok_or_else(|| format!("`expect_status` items must be numbers, found {item}")).and_then(status_code)
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("parameter `expect_status` must be a number or a list of numbers, found {other}")),
    };
    let json = match params.get("expect_json") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(table)) => {
            for pointer in table.keys() {
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    return Err(format!("`expect_json` keys are JSON pointers starting with `/`, such as \"/status\"; found `{pointer}`"));
                }
            }
            table.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        Some(other) => return Err(format!("parameter `expect_json` must be a table of JSON pointers to values, found {other}")),
    };
    Ok(Expectation { statuses, body_contains: params::optional_string(params, "expect_body_contains")?.map(str::to_owned), json })
}

fn status_code(n: &serde_json::Number) -> Result<u16, String> {
    n.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| (100..=599).contains(n)).ok_or_else(|| format!("`{n}` is not an HTTP status"))
}

fn method(params: &Map<String, Value>) -> Result<reqwest::Method, String> {
    let name = params::optional_string(params, "method")?.unwrap_or("GET");
    reqwest::Method::from_bytes(name.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("parameter `method`: `{name}` is not an HTTP method"))
}

fn check(params: &Map<String, Value>) -> Result<(), String> {
    let url = params::string(params, "url")?;
    reqwest::Url::parse(url).map_err(|error| format!("parameter `url`: `{url}` is not a URL ({error})"))?;
    method(params)?;
    params::string_table(params, "headers")?;
    params::optional_duration(params, "timeout")?;
    expectation(params)?;
    Ok(())
}

#[async_trait::async_trait]
impl Agent for HttpAgent {
    fn name(&self) -> &str {
        "http"
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        check(params)
    }

    async fn run(&self, request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error> {
        let params = &request.params;
        check(params).map_err(Error::Permanent)?;
        let url = params::string(params, "url").map_err(Error::Permanent)?;
        let expect = expectation(params).map_err(Error::Permanent)?;
        let timeout = params::optional_duration(params, "timeout").map_err(Error::Permanent)?.unwrap_or(Duration::from_secs(30));
        let mut builder = self.client.request(method(params).map_err(Error::Permanent)?, url).timeout(timeout);
        for (name, value) in params::string_table(params, "headers").map_err(Error::Permanent)? {
            builder = builder.header(name, value);
        }
        if let Some(json) = params.get("json") {
            builder = builder.json(json);
        } else if let Some(body) = params::optional_string(params, "body").map_err(Error::Permanent)? {
            builder = builder.body(body.to_owned());
        }
        builder = builder.header("Idempotency-Key", &request.idempotency_key);
        let started = Instant::now();
        let response = tokio::select! {
            response = builder.send() => response.map_err(|error| Error::Retryable(format!("request to {url} failed: {error}")))?,
            () = context.cancel.cancelled() => return Err(Error::Retryable("cancelled".to_owned())),
        };
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|error| Error::Retryable(format!("reading the body from {url} failed: {error}")))?;
        let latency_ms = started.elapsed().as_millis() as u64;
        let text = String::from_utf8_lossy(&bytes);
        let body_json = serde_json::from_slice::<Value>(&bytes).ok();
        let status_ok = if expect.statuses.is_empty() { (200..300).contains(&status) } else { expect.statuses.contains(&status) };
        if !status_ok {
            return Err(Error::Retryable(format!("{url} answered {status}; body: {}", params::tail(&text, 512))));
        }
        if let Some(needle) = &expect.body_contains {
            if !text.contains(needle.as_str()) {
                return Err(Error::Retryable(format!("the body from {url} does not contain `{needle}`")));
            }
        }
        for (pointer, expected) in &expect.json {
            let actual = body_json.as_ref().and_then(|body| body.pointer(pointer));
            if actual != Some(expected) {
                let actual = actual.map_or_else(|| "nothing".to_owned(), Value::to_string);
                return Err(Error::Retryable(format!("{url}: `{pointer}` is {actual}, expected {expected}")));
            }
        }
        let body = body_json.unwrap_or_else(|| Value::String(params::tail(&text, MAX_OUTPUT_BYTES / 2).to_owned()));
        Ok(TaskOutput(json!({"status": status, "latency_ms": latency_ms, "body": body})))
    }
}

//! `webhook`: POSTs JSON to an incoming-webhook URL (Slack, PagerDuty, …),
//! with secrets taken from the environment.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::params;
use crate::{Agent, Error, TaskContext, TaskOutput, TaskRequest};

/// Sends one JSON message. Parameters:
///
/// - `url_env` (preferred) names the environment variable holding the URL, so
///   a token embedded in it never enters a definition, the history, logs or
///   reports; or `url` for URLs that hold no secret.
/// - `json`: the body (default `{}`); `method` (default `POST`).
/// - `headers`: plain headers; `headers_env`: header name → environment
///   variable holding its value (an `Authorization` token, say).
/// - `timeout`: default 10s.
///
/// The output is `{"status": 200, "latency_ms": 12}`, never the URL or the
/// headers. Any 2xx succeeds; 429 and 5xx are retryable, other statuses
/// permanent. Error messages name the environment variable, not its value.
#[derive(Debug, Clone)]
pub struct WebhookAgent {
    client: reqwest::Client,
}

impl WebhookAgent {
    /// An agent with its own connection pool.
    pub fn new() -> Self {
        Self { client: reqwest::Client::builder().build().unwrap_or_default() }
    }
}

impl Default for WebhookAgent {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the URL comes from, for messages that must not reveal it.
enum Target {
    Plain(String),
    Env { var: String },
}

fn target(params: &Map<String, Value>) -> Result<Target, String> {
    match (params::optional_string(params, "url_env")?, params::optional_string(params, "url")?) {
        (Some(var), None) => Ok(Target::Env { var: var.to_owned() }),
        (None, Some(url)) => {
            reqwest::Url::parse(url).map_err(|error| format!("parameter `url` is not a URL ({error})"))?;
            Ok(Target::Plain(url.to_owned()))
        }
        (Some(_), Some(_)) => Err("give `url_env` or `url`, not both".to_owned()),
        (None, None) => Err("parameter `url_env` (the environment variable holding the webhook URL) is required".to_owned()),
    }
}

fn check(params: &Map<String, Value>) -> Result<(), String> {
    target(params)?;
    params::string_table(params, "headers")?;
    params::string_table(params, "headers_env")?;
    params::optional_duration(params, "timeout")?;
    let method = params::optional_string(params, "method")?.unwrap_or("POST");
    reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("parameter `method`: `{method}` is not an HTTP method"))?;
    Ok(())
}

#[async_trait::async_trait]
impl Agent for WebhookAgent {
    fn name(&self) -> &str {
        "webhook"
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        check(params)
    }

    async fn run(&self, request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error> {
        let params = &request.params;
        check(params).map_err(Error::Permanent)?;
        let (url, shown) = match target(params).map_err(Error::Permanent)? {
            Target::Plain(url) => (url.clone(), url),
            Target::Env { var } => match std::env::var(&var) {
                Ok(url) if !url.trim().is_empty() => (url, format!("the URL in ${var}")),
                _ => return Err(Error::Permanent(format!("the environment variable {var} (the webhook URL) is not set"))),
            },
        };
        let method = params::optional_string(params, "method").map_err(Error::Permanent)?.unwrap_or("POST").to_ascii_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| Error::Permanent("bad method".to_owned()))?;
        let timeout = params::optional_duration(params, "timeout").map_err(Error::Permanent)?.unwrap_or(Duration::from_secs(10));
        let body = params.get("json").cloned().unwrap_or_else(|| json!({}));
        let mut builder =
            self.client.request(method, &url).timeout(timeout).json(&body).header("Idempotency-Key", &request.idempotency_key);
        for (name, value) in params::string_table(params, "headers").map_err(Error::Permanent)? {
            builder = builder.header(name, value);
        }
        for (name, var) in params::string_table(params, "headers_env").map_err(Error::Permanent)? {
            let value =
                std::env::var(&var).map_err(|_| Error::Permanent(format!("the environment variable {var} (header {name}) is not set")))?;
            builder = builder.header(name, value);
        }
        let started = Instant::now();
        let response = tokio::select! {
            // reqwest's error text can contain the URL; say which target failed instead.
            response = builder.send() => response.map_err(|error| Error::Retryable(format!("the webhook at {shown} is unreachable ({})", error_kind(&error))))?,
            () = context.cancel.cancelled() => return Err(Error::Retryable("cancelled".to_owned())),
        };
        let status = response.status();
        let latency_ms = started.elapsed().as_millis() as u64;
        if status.is_success() {
            return Ok(TaskOutput(json!({"status": status.as_u16(), "latency_ms": latency_ms})));
        }
        let message = format!("the webhook at {shown} answered {}", status.as_u16());
        if status.as_u16() == 429 || status.is_server_error() {
            Err(Error::Retryable(message))
        } else {
            Err(Error::Permanent(message))
        }
    }
}

fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_request() {
        "request failed"
    } else {
        "transport error"
    }
}

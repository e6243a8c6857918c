//! `plugin`: runs an executable that speaks phasegate's JSON line protocol, so
//! agents can be written in any language.

use std::process::Stdio;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::params;
use crate::{Agent, Error, LogStream, TaskContext, TaskOutput, TaskRequest, MAX_OUTPUT_BYTES};

/// The protocol version written in every request.
pub const PLUGIN_PROTOCOL: u32 = 1;

/// Runs a plugin executable. Parameters:
///
/// - `command` (required): the program and its arguments, as an array
///   (never a shell string).
/// - `env`, `cwd`: as for `exec`.
/// - anything else is passed to the plugin in the request's `params`.
///
/// The protocol (docs/agents.md has a complete example):
///
/// 1. phasegate writes **one JSON line** to the plugin's standard input:
///    `{"protocol": 1, "instance", "task", "attempt", "idempotency_key",
///    "params", "timeout_ms"}`, then closes it.
/// 2. The plugin writes JSON lines to standard output:
///    `{"heartbeat": <any JSON>}` as often as it likes (progress), and
///    finally exactly one of `{"result": <output>}` or
///    `{"error": "message", "retryable": true|false}`. Lines that are not
///    JSON objects are ignored (so stray prints do no harm).
/// 3. It exits. Exit 0 after a `result` line succeeds; an `error` line fails
///    as it says; any other end (a crash, a non-zero exit, no final line) is
///    a retryable failure carrying the tail of standard error.
///
/// On cancellation or timeout the plugin is killed.
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginAgent;

struct Spec {
    command: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    params: Map<String, Value>,
}

fn parse(params: &Map<String, Value>) -> Result<Spec, String> {
    let command = match params.get("command") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().map(str::to_owned).ok_or_else(|| format!("parameter `command[{i}]` must be a string, found {item}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::String(_)) => {
            return Err(
                "parameter `command` must be an array such as [\"./my-agent.py\"], not a command string (nothing runs through a shell)"
                    .to_owned(),
            )
        }
        Some(_) => return Err("parameter `command` must be a non-empty array of strings".to_owned()),
        None => return Err("parameter `command` is required: the plugin program and its arguments".to_owned()),
    };
    let env = params::string_table(params, "env")?;
    let cwd = params::optional_string(params, "cwd")?.map(str::to_owned);
    let rest =
        params.iter().filter(|(k, _)| !matches!(k.as_str(), "command" | "env" | "cwd")).map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(Spec { command, env: env.into_iter().collect(), cwd, params: rest })
}

/// What one line of the plugin's output said.
enum Line {
    Heartbeat(Value),
    Result(Value),
    Error { message: String, retryable: bool },
    Other,
}

fn classify(line: &str) -> Line {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(line.trim()) else {
        return Line::Other;
    };
    if let Some(output) = map.remove("result") {
        return Line::Result(output);
    }
    if let Some(error) = map.remove("error") {
        let message = error.as_str().map_or_else(|| error.to_string(), str::to_owned);
        let retryable = map.get("retryable").and_then(Value::as_bool).unwrap_or(false);
        return Line::Error { message, retryable };
    }
    match map.remove("heartbeat") {
        Some(progress) => Line::Heartbeat(progress),
        None => Line::Other,
    }
}

#[async_trait::async_trait]
impl Agent for PluginAgent {
    fn name(&self) -> &str {
        "plugin"
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        parse(params).map(|_| ())
    }

    async fn run(&self, request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error> {
        let spec = parse(&request.params).map_err(Error::Permanent)?;
        let program = spec.command[0].clone();
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&spec.command[1..])
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().map_err(|error| Error::Permanent(format!("cannot run plugin `{program}`: {error}")))?;
        let message = json!({
            "protocol": PLUGIN_PROTOCOL,
            "instance": request.instance,
            "task": request.task,
            "attempt": request.attempt,
            "idempotency_key": request.idempotency_key,
            "params": spec.params,
            "timeout_ms": request.timeout.map(|t| t.as_millis() as u64),
        });
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin that exits without reading is judged by what it printed.
            let _ = stdin.write_all(format!("{message}\n").as_bytes()).await;
        }
        let stdout = child.stdout.take().ok_or_else(|| Error::Retryable("the plugin's standard output is not available".to_owned()))?;
        let stderr = child.stderr.take();
        // Standard error is read while standard output is, so a plugin that
        // writes much to it never blocks on a full pipe; both go to the log.
        let errors = async {
            match stderr {
                Some(stderr) => params::collect(stderr, LogStream::Stderr, &context).await,
                None => Vec::new(),
            }
        };
        let read = async {
            let mut lines = BufReader::new(stdout).lines();
            let mut last = None;
            let mut size = 0usize;
            while let Ok(Some(line)) = lines.next_line().await {
                size += line.len();
                if size > MAX_OUTPUT_BYTES * 4 {
                    return Some(Line::Error { message: "the plugin wrote too much output".to_owned(), retryable: false });
                }
                match classify(&line) {
                    Line::Heartbeat(progress) => context.heartbeat(progress),
                    Line::Other => context.log(LogStream::Stdout, &line),
                    final_line => last = Some(final_line),
                }
            }
            last
        };
        let both = async { tokio::join!(read, errors) };
        let (last, err_bytes) = tokio::select! {
            both = both => both,
            () = context.cancel.cancelled() => {
                let _ = child.kill().await;
                return Err(Error::Retryable("cancelled".to_owned()));
            }
        };
        let status = child.wait().await.map_err(|error| Error::Retryable(format!("waiting for plugin `{program}` failed: {error}")))?;
        let err_text = String::from_utf8_lossy(&err_bytes);
        let tail = params::tail(err_text.trim_end(), 2048);
        match (last, status.success()) {
            (Some(Line::Result(output)), true) => Ok(TaskOutput(output)),
            (Some(Line::Error { message, retryable: true }), _) => Err(Error::Retryable(message)),
            (Some(Line::Error { message, retryable: false }), _) => Err(Error::Permanent(message)),
            (_, false) => {
                let how = status.code().map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
                Err(Error::Retryable(format!("plugin `{program}` exited with {how}; stderr: {tail}")))
            }
            (_, true) => Err(Error::Retryable(format!(
                "plugin `{program}` exited without a {{\"result\": ...}} or {{\"error\": ...}} line; stderr: {tail}"
            ))),
        }
    }
}

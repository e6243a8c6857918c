//! `exec`: runs a program with an argv array.

use std::process::Stdio;
use std::time::Instant;

use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use super::params;
use crate::{Agent, Error, LogStream, TaskContext, TaskOutput, TaskRequest, MAX_OUTPUT_BYTES};

/// Most stderr kept in an error message.
const STDERR_TAIL_BYTES: usize = 2048;

/// Runs a program. Parameters:
///
/// - `argv` (required): the program and its arguments, as an array. Nothing is
///   ever passed through a shell, so values are never interpolated into a
///   command line.
/// - `env`: extra environment variables (a table of strings); the child also
///   inherits the engine's environment, which is where secrets belong.
/// - `cwd`: the working directory.
/// - `stdin`: text (or any JSON value, written as JSON) for standard input.
/// - `permanent_exit_codes`: exit statuses that mean "the check ran and the
///   answer is no" (a failed smoke test, a refused deploy) rather than "it
///   could not run": such a failure is permanent, not retried, so the
///   task's failure triggers act at once.
///
/// The child also gets `PHASEGATE_INSTANCE`, `PHASEGATE_TASK`,
/// `PHASEGATE_ATTEMPT` and `PHASEGATE_IDEMPOTENCY_KEY`. If standard output is
/// a JSON value, it is the task's output; otherwise the output is
/// `{"stdout": "...", "exit_code": 0}`. A non-zero exit is a retryable failure
/// carrying the tail of standard error (permanent for the statuses in
/// `permanent_exit_codes`); a program that cannot be started is a permanent
/// failure. The child is killed when the attempt is cancelled or
/// times out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecAgent;

struct ExecParams {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    stdin: Option<String>,
    permanent_exit_codes: Vec<i32>,
}

fn parse(params: &Map<String, Value>) -> Result<ExecParams, String> {
    let argv = match params.get("argv") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(text) => Ok(text.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(item.to_string()),
                other => Err(format!("parameter `argv[{i}]` must be a string, found {other}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Array(_)) => return Err("parameter `argv` is empty; give the program and its arguments".to_owned()),
        Some(Value::String(_)) => return Err(
            "parameter `argv` must be an array such as [\"./check.sh\", \"--fast\"], not a command string (nothing runs through a shell)"
                .to_owned(),
        ),
        Some(other) => return Err(format!("parameter `argv` must be an array of strings, found {other}")),
        None => return Err("parameter `argv` is required: the program and its arguments".to_owned()),
    };
    let stdin = match params.get("stdin") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => Some(other.to_string()),
    };
    let permanent_exit_codes = match params.get("permanent_exit_codes") {
        None => Vec::new(),
        Some(Value::Array(codes)) => codes
            .iter()
            .map(|code| {
                code.as_i64()
                    .and_then(|c| i32::try_from(c).ok())
                    .filter(|c| (1..=255).contains(c))
                    .ok_or_else(|| format!("parameter `permanent_exit_codes` holds {code}; give exit statuses from 1 to 255, such as [3]"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!("parameter `permanent_exit_codes` must be a list of exit statuses such as [3], found {other}")),
    };
    Ok(ExecParams {
        argv,
        env: params::string_table(params, "env")?,
        cwd: params::optional_string(params, "cwd")?.map(str::to_owned),
        stdin,
        permanent_exit_codes,
    })
}

#[async_trait::async_trait]
impl Agent for ExecAgent {
    fn name(&self) -> &str {
        "exec"
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        parse(params).map(|_| ())
    }

    async fn run(&self, request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error> {
        let spec = parse(&request.params).map_err(Error::Permanent)?;
        let mut command = tokio::process::Command::new(&spec.argv[0]);
        command
            .args(&spec.argv[1..])
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PHASEGATE_INSTANCE", &request.instance)
            .env("PHASEGATE_TASK", &request.task)
            .env("PHASEGATE_ATTEMPT", request.attempt.to_string())
            .env("PHASEGATE_IDEMPOTENCY_KEY", &request.idempotency_key)
            .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let started = Instant::now();
        let mut child = command.spawn().map_err(|error| Error::Permanent(format!("cannot run `{}`: {error}", spec.argv[0])))?;
        if let (Some(text), Some(mut stdin)) = (spec.stdin, child.stdin.take()) {
            // A child that exits without reading its input is not an error here.
            let _ = stdin.write_all(text.as_bytes()).await;
        }
        // Both streams are read as the program writes them, each line kept
        // in the attempt's log at once (so `phasegate logs --follow` shows a
        // long deploy as it goes), and collected for the output.
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Error::Retryable(format!("`{}` has no standard output or error to read", spec.argv[0])));
        };
        let collected = async {
            let (stdout, stderr) =
                tokio::join!(params::collect(out, LogStream::Stdout, &context), params::collect(err, LogStream::Stderr, &context));
            let status = child.wait().await;
            (stdout, stderr, status)
        };
        let (stdout, stderr, status) = tokio::select! {
            collected = collected => collected,
            () = context.cancel.cancelled() => return Err(Error::Retryable("cancelled".to_owned())),
        };
        let status = status.map_err(|error| Error::Retryable(format!("waiting for `{}` failed: {error}", spec.argv[0])))?;
        let stdout = String::from_utf8_lossy(&stdout);
        let code = status.code();
        if !status.success() {
            let stderr = String::from_utf8_lossy(&stderr);
            let status = code.map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
            let message =
                format!("`{}` exited with {status}; stderr: {}", spec.argv[0], params::tail(stderr.trim_end(), STDERR_TAIL_BYTES));
            return Err(if code.is_some_and(|c| spec.permanent_exit_codes.contains(&c)) {
                Error::Permanent(message)
            } else {
                Error::Retryable(message)
            });
        }
        let trimmed = stdout.trim();
        let value = match serde_json::from_str::<Value>(trimmed) {
            Ok(value) if !trimmed.is_empty() => value,
            _ => json!({
                "stdout": params::tail(trimmed, MAX_OUTPUT_BYTES / 2),
                "exit_code": code.unwrap_or(0),
                "duration_ms": started.elapsed().as_millis() as u64,
            }),
        };
        Ok(TaskOutput(value))
    }
}

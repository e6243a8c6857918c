//! `noop` and `sleep`: agents for tests, benchmarks and placeholders in drafts.

use std::time::Duration;

use serde_json::{Map, Value};

use super::params;
use crate::{Agent, Error, TaskContext, TaskOutput, TaskRequest};

/// Succeeds at once. Parameters: `output` (returned as the task's output,
/// default `{}`), `fail` (a message: fail permanently with it),
/// `fail_retryable` (a message: fail retryably with it), `fail_attempts`
/// (with `fail_retryable`: only attempts up to this number fail).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopAgent;

#[async_trait::async_trait]
impl Agent for NoopAgent {
    fn name(&self) -> &str {
        "noop"
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        params::optional_string(params, "fail")?;
        params::optional_string(params, "fail_retryable")?;
        Ok(())
    }

    async fn run(&self, request: TaskRequest, _context: TaskContext) -> Result<TaskOutput, Error> {
        let params = &request.params;
        if let Some(message) = params::optional_string(params, "fail").map_err(Error::Permanent)? {
            return Err(Error::Permanent(message.to_owned()));
        }
        if let Some(message) = params::optional_string(params, "fail_retryable").map_err(Error::Permanent)? {
            let limit = params.get("fail_attempts").and_then(Value::as_u64).unwrap_or(u64::MAX);
            if u64::from(request.attempt) <= limit {
                return Err(Error::Retryable(message.to_owned()));
            }
        }
        Ok(TaskOutput(params.get("output").cloned().unwrap_or_else(|| Value::Object(Map::new()))))
    }
}

/// Sleeps for `duration` (e.g. `"200ms"`, default 1s), then succeeds with
/// `{"slept_ms": N}`; stops early when cancelled.
#[derive(Debug, Clone, Copy, Default)]
pub struct SleepAgent;

fn sleep_duration(params: &Map<String, Value>) -> Result<Duration, String> {
    Ok(params::optional_duration(params, "duration")?.unwrap_or(Duration::from_secs(1)))
}

#[async_trait::async_trait]
impl Agent for SleepAgent {
    fn name(&self) -> &str {
        "sleep"
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        sleep_duration(params).map(|_| ())
    }

    async fn run(&self, request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error> {
        let duration = sleep_duration(&request.params).map_err(Error::Permanent)?;
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(TaskOutput(serde_json::json!({"slept_ms": duration.as_millis() as u64}))),
            () = context.cancel.cancelled() => Err(Error::Retryable("cancelled".to_owned())),
        }
    }
}

//! The checks every agent must pass, built-in or not (docs/agents.md states
//! the contract they verify). Agent authors call [`check`] from a test with
//! parameters that make their agent succeed, fail on bad input, and run long
//! enough to be cancelled.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::{Agent, Error, TaskContext, TaskRequest, MAX_OUTPUT_BYTES};

/// Parameters that exercise one agent.
pub struct Case {
    /// The agent under test.
    pub agent: Arc<dyn Agent>,
    /// Parameters with which one attempt succeeds.
    pub succeeds: Map<String, Value>,
    /// Parameters the agent must refuse (in `check_params` and in `run`, permanently).
    pub invalid: Map<String, Value>,
    /// Parameters with which an attempt runs for seconds, to test cancellation;
    /// `None` for agents that always finish at once.
    pub slow: Option<Map<String, Value>>,
}

/// How long an agent may take to stop after cancellation. Generous: this is
/// liveness, not speed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(10);

fn request(params: &Map<String, Value>, attempt: u32) -> TaskRequest {
    TaskRequest {
        instance: "conformance".to_owned(),
        task: "probe".to_owned(),
        attempt,
        idempotency_key: format!("conformance/probe/{attempt}"),
        params: params.clone(),
        timeout: Some(Duration::from_secs(30)),
    }
}

/// Runs every check and returns the failures (empty when the agent conforms).
pub async fn check(case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    let agent = &case.agent;
    let name = agent.name().to_owned();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        failures.push(format!("name `{name}` must be a non-empty plain identifier"));
    }

    // MUST accept the parameters it succeeds with, and return JSON within the size bound.
    if let Err(message) = agent.check_params(&case.succeeds) {
        failures.push(format!("{name}: check_params refused the succeeding parameters: {message}"));
    }
    match agent.run(request(&case.succeeds, 1), TaskContext::detached()).await {
        Ok(output) => {
            let size = serde_json::to_vec(&output.0).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
            if size > MAX_OUTPUT_BYTES {
                failures.push(format!("{name}: output of {size} bytes exceeds {MAX_OUTPUT_BYTES}"));
            }
        }
        Err(error) => failures.push(format!("{name}: the succeeding case failed: {error}")),
    }
    // MUST be safe to run again with the same idempotency key.
    if let Err(error) = agent.run(request(&case.succeeds, 1), TaskContext::detached()).await {
        failures.push(format!("{name}: a repeated attempt with the same key failed: {error}"));
    }

    // MUST refuse bad parameters up front and permanently at run time.
    match agent.check_params(&case.invalid) {
        Ok(()) => failures.push(format!("{name}: check_params accepted invalid parameters {}", Value::Object(case.invalid.clone()))),
        Err(message) if message.trim().is_empty() => failures.push(format!("{name}: check_params gave an empty message")),
        Err(_) => {}
    }
    match agent.run(request(&case.invalid, 1), TaskContext::detached()).await {
        Err(Error::Permanent(_)) => {}
        Err(Error::Retryable(message)) => {
            failures.push(format!("{name}: invalid parameters gave a retryable error ({message}); retrying cannot fix them"))
        }
        Ok(_) => failures.push(format!("{name}: invalid parameters succeeded")),
    }

    // MUST stop promptly once cancelled.
    if let Some(slow) = &case.slow {
        let cancel = CancellationToken::new();
        let context = TaskContext::new(cancel.clone(), Arc::new(|_| {}));
        let canceller = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                cancel.cancel();
            })
        };
        match tokio::time::timeout(CANCEL_GRACE, agent.run(request(slow, 1), context)).await {
            Ok(Ok(_)) => failures.push(format!("{name}: the slow case finished instead of being cancelled; make it slower")),
            Ok(Err(_)) => {}
            Err(_) => failures.push(format!("{name}: did not stop within {CANCEL_GRACE:?} of cancellation")),
        }
        let _ = canceller.await;
    }
    failures
}

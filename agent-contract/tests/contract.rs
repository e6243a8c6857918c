//! A plugin author's agent, written against this crate alone, passes the
//! conformance checks; one that breaks the contract is told how.

use std::sync::Arc;

use phasegate_agent_contract::conformance::{check, Case};
use phasegate_agent_contract::{Agent, Error, TaskContext, TaskOutput, TaskRequest};
use serde_json::{json, Map, Value};

/// Greets `name`; waits for cancellation when `slow` is true.
struct Greeter {
    /// A broken greeter accepts anything and fails retryably on bad input.
    broken: bool,
}

#[async_trait::async_trait]
impl Agent for Greeter {
    fn name(&self) -> &str {
        "greeter"
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        match params.get("name") {
            Some(Value::String(_)) => Ok(()),
            _ if self.broken => Ok(()),
            _ => Err("`name` must be a string".to_owned()),
        }
    }

    async fn run(&self, request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error> {
        let Some(name) = request.params.get("name").and_then(Value::as_str) else {
            return Err(if self.broken { Error::Retryable("no name".into()) } else { Error::Permanent("`name` must be a string".into()) });
        };
        if request.params.get("slow") == Some(&json!(true)) {
            // Slow means it only ends when cancelled.
            context.cancel.cancelled().await;
            return Err(Error::Retryable("cancelled".into()));
        }
        Ok(TaskOutput(json!({"greeting": format!("hello, {name}"), "key": request.idempotency_key})))
    }
}

fn case(broken: bool) -> Case {
    let object = |value: Value| value.as_object().cloned().unwrap_or_default();
    Case {
        agent: Arc::new(Greeter { broken }),
        succeeds: object(json!({"name": "ops"})),
        invalid: object(json!({"name": 7})),
        slow: Some(object(json!({"name": "ops", "slow": true}))),
    }
}

#[tokio::test]
async fn an_agent_written_against_the_contract_alone_conforms() {
    let failures = check(&case(false)).await;
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test]
async fn the_checks_say_what_a_nonconforming_agent_gets_wrong() {
    let failures = check(&case(true)).await;
    assert!(failures.iter().any(|f| f.contains("check_params accepted invalid parameters")), "{failures:?}");
    assert!(failures.iter().any(|f| f.contains("gave a retryable error")), "{failures:?}");
}

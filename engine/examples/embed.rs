//! Embedding phasegate in an orchestrator process: a custom in-process agent,
//! an inline definition, a subscription to the event stream, and a graceful
//! shutdown. Run it with `cargo run -p phasegate-engine --example embed [DATA_DIR]`.

use std::sync::Arc;

use phasegate_agents::{Agent, Error, Registry, TaskContext, TaskOutput, TaskRequest};
use phasegate_engine::model::{Format, Source};
use phasegate_engine::{Engine, StartOptions};
use serde_json::{json, Map, Value};

/// An agent the orchestrator provides itself: it "deploys" a version by
/// answering with a release id derived from the task's parameters.
struct Deployer;

#[async_trait::async_trait]
impl Agent for Deployer {
    fn name(&self) -> &str {
        "deployer"
    }

    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        match params.get("version") {
            Some(Value::String(_)) => Ok(()),
            _ => Err("parameter `version` (a string) is required".to_owned()),
        }
    }

    async fn run(&self, request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error> {
        let version = request.params.get("version").and_then(Value::as_str).ok_or_else(|| Error::Permanent("no version".to_owned()))?;
        context.heartbeat(json!({"stage": "rolling out", "version": version}));
        // The idempotency key makes a re-run after a crash recognisable.
        Ok(TaskOutput(json!({"release": format!("rel-{version}"), "key": request.idempotency_key, "healthy": true})))
    }
}

const DEFINITION: &str = r#"
name = "embedded-release"
[vars]
version = "1.4.2"
[[phases]]
id = "deploy"
[[phases.tasks]]
id = "rollout"
agent = "deployer"
params = { version = "1.4.2" }
[[phases.gates]]
id = "healthy"
criteria = [{ must = "tasks.rollout.output.healthy == true", label = "The rollout reports healthy" }]
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir =
        std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("phasegate-embed-example"));
    let mut agents = Registry::with_builtins();
    agents.register(Arc::new(Deployer));
    let engine = Engine::builder().store_path(&data_dir).agents(agents).max_concurrent_tasks(8).build().await?;

    // Follow the events the engine makes durable.
    let mut events = engine.subscribe();
    let follower = tokio::spawn(async move {
        while let Ok(note) = events.recv().await {
            println!(
                "event {:>3} {:<24} {}",
                note.record.seq(),
                note.record.event().describe(),
                note.status.map_or("unknown", |s| s.as_str())
            );
        }
    });

    let workflow = engine.load_definition(&Source::from_text(DEFINITION, Format::Toml))?;
    let id = engine.start(workflow, StartOptions { started_by: "orchestrator".into(), ..StartOptions::default() }).await?;
    engine.run_until_idle().await;

    let (instance, _) = engine.instance(&id)?;
    // Graceful shutdown: anything in flight would resume on the next start.
    // Dropping the engine closes the event stream, so the follower prints
    // every event before the summary below.
    engine.shutdown().await;
    drop(engine);
    follower.await?;
    println!("instance {id}: {}", instance.effective_status());
    Ok(())
}

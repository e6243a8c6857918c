//! `report`: the engine's own agent that renders one of the instance's
//! reports to a file, so a scheduled phase can write the monthly ops report
//! (or a certificate, or the deployment confirmation) where the team reads
//! it. It reads the instance's durable state and log from the store, as
//! `phasegate report` does, and replaces the file atomically.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use phasegate_agents::{Agent, Error, TaskContext, TaskOutput, TaskRequest};
use phasegate_store::Store;
use serde_json::{json, Map, Value};

use super::clock::Clock;
use super::load::{self, Definitions};
use crate::plan::AgentNames;
pub use crate::plan::REPORT_AGENT;
use crate::report::{self, Kind};

/// Renders a report of the task's own instance to `path`. Parameters:
/// `kind` (readiness, gate, checklist, certificate, deployment, ops),
/// `path` (the file, relative to the engine's working directory; its
/// directory is created), `format` (md, the default, or json), `phase`, and
/// `since`/`until` (times as `report --since` takes them; the ops report
/// defaults to the last calendar month, as `phasegate report` does). Its output names the file, the
/// kind, the bytes written and, for ops, the period.
pub struct ReportAgent {
    store: Arc<dyn Store>,
    definitions: Definitions,
    agents: AgentNames,
    clock: Arc<dyn Clock>,
}

impl ReportAgent {
    /// An agent reading instances from `store`, validating their pinned
    /// definitions against `agents`, and dating reports by `clock`.
    pub fn new(store: Arc<dyn Store>, agents: AgentNames, clock: Arc<dyn Clock>) -> Self {
        ReportAgent { store, definitions: Definitions::default(), agents, clock }
    }
}

/// The parameters, checked.
struct Params {
    kind: Kind,
    path: PathBuf,
    json: bool,
    phase: Option<String>,
    since: Option<crate::machine::Timestamp>,
    until: Option<crate::machine::Timestamp>,
}

fn params(params: &Map<String, Value>) -> Result<Params, String> {
    let text = |name: &str| match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("parameter `{name}` must be a string, not {other}")),
    };
    for key in params.keys() {
        if !["kind", "path", "format", "phase", "since", "until"].contains(&key.as_str()) {
            return Err(format!("unknown parameter `{key}`; the report agent takes kind, path, format, phase, since and until"));
        }
    }
    let kind = text("kind")?.ok_or("parameter `kind` is required: readiness, gate, checklist, certificate, deployment or ops")?;
    let kind = Kind::parse(&kind).map_err(|e| format!("parameter `kind`: {e}"))?;
    let path = text("path")?.filter(|p| !p.trim().is_empty()).ok_or("parameter `path` is required: the file to write")?;
    let json = match text("format")?.as_deref() {
        None | Some("md") => false,
        Some("json") => true,
        Some(other) => return Err(format!("parameter `format`: `{other}`; choose md or json")),
    };
    let instant = |name: &str| text(name)?.map(|t| report::parse_instant(&t).map_err(|e| format!("parameter `{name}`: {e}"))).transpose();
    Ok(Params { kind, path: PathBuf::from(path), json, phase: text("phase")?, since: instant("since")?, until: instant("until")? })
}

/// Writes `bytes` to `path` through a temporary file beside it, so a reader
/// sees the old report or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut file = tempfile::NamedTempFile::new_in(&dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[async_trait::async_trait]
impl Agent for ReportAgent {
    fn name(&self) -> &str {
        REPORT_AGENT
    }

    fn check_params(&self, p: &Map<String, Value>) -> Result<(), String> {
        params(p).map(|_| ())
    }

    async fn run(&self, request: TaskRequest, _context: TaskContext) -> Result<TaskOutput, Error> {
        let p = params(&request.params).map_err(Error::Permanent)?;
        let id = request.instance.clone();
        let (instance, workflow) = load::instance(&*self.store, &self.definitions, &self.agents, &id)
            .map_err(|e| Error::Retryable(format!("cannot read instance {id}: {e}")))?;
        let history = load::history(&*self.store, &id).map_err(|e| Error::Retryable(format!("cannot read the log of {id}: {e}")))?;
        let now = self.clock.now();
        let input = report::Input {
            instance: &instance,
            workflow: &workflow,
            history: &history,
            now,
            phase: p.phase.as_deref(),
            since: p.since,
            until: p.until,
        };
        let rendered = report::render(p.kind, &input).map_err(|e| Error::Permanent(format!("{} report: {e}", p.kind.name())))?;
        let text = if p.json { serde_json::to_string_pretty(&rendered.data).unwrap_or_default() + "\n" } else { rendered.markdown };
        let path = p.path.clone();
        let bytes = text.len();
        tokio::task::spawn_blocking(move || write_atomically(&path, text.as_bytes()))
            .await
            .map_err(|e| Error::Retryable(format!("the write did not finish: {e}")))?
            .map_err(|e| Error::Retryable(format!("cannot write {}: {e}", p.path.display())))?;
        let mut output = json!({
            "path": p.path.display().to_string(),
            "kind": p.kind.name(),
            "format": if p.json { "json" } else { "md" },
            "bytes": bytes,
            "events": history.len(),
        });
        if let Some(period) = rendered.data.get("period") {
            output["period"] = period.clone();
        }
        Ok(TaskOutput(output))
    }
}

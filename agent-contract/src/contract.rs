//! The agent contract: the trait and the types that cross it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// Largest output an agent may return, serialised; larger outputs are refused
/// by the engine as a permanent error (outputs live in the instance's state).
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

/// One attempt of one task, as an agent sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    /// The instance the task belongs to.
    pub instance: String,
    /// The task's id.
    pub task: String,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
    /// Stable across re-dispatches of the same attempt (after a crash): an
    /// agent that does something not naturally idempotent should record it.
    pub idempotency_key: String,
    /// The task's parameters from the definition.
    pub params: Map<String, Value>,
    /// How long this attempt may run; the engine enforces it.
    pub timeout: Option<Duration>,
}

/// A function an agent may call to report progress or liveness; the engine
/// logs it and (for plugins) treats it as a heartbeat.
pub type Heartbeat = Arc<dyn Fn(Value) + Send + Sync>;

/// Which of a program's streams a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Where an agent sends what the program it runs prints, a line at a time,
/// as it prints it: the engine keeps it per attempt (`phasegate logs`).
pub type LogSink = Arc<dyn Fn(LogStream, &str) + Send + Sync>;

/// What the engine gives an agent besides the request.
#[derive(Clone)]
pub struct TaskContext {
    /// Cancelled when the attempt must stop (timeout, halt with cancel, shutdown).
    /// The engine also drops the agent's future; observing the token lets an
    /// agent clean up first.
    pub cancel: CancellationToken,
    heartbeat: Heartbeat,
    log: LogSink,
}

impl TaskContext {
    /// A context with the given token and heartbeat sink (log lines are dropped).
    pub fn new(cancel: CancellationToken, heartbeat: Heartbeat) -> Self {
        Self { cancel, heartbeat, log: Arc::new(|_, _| {}) }
    }

    /// This context, sending log lines to `sink`.
    pub fn with_log(mut self, sink: LogSink) -> Self {
        self.log = sink;
        self
    }

    /// Keeps a line the program printed (without its line ending).
    pub fn log(&self, stream: LogStream, line: &str) {
        (self.log)(stream, line);
    }

    /// A context that is never cancelled and drops heartbeats (for tests and tools).
    pub fn detached() -> Self {
        Self::new(CancellationToken::new(), Arc::new(|_| {}))
    }

    /// Reports progress (a JSON value such as `{"percent": 40}`).
    pub fn heartbeat(&self, progress: Value) {
        (self.heartbeat)(progress);
    }
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext").field("cancelled", &self.cancel.is_cancelled()).finish()
    }
}

/// A task's result: a JSON value that conditions read as `tasks.<id>.output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOutput(pub Value);

impl TaskOutput {
    /// An empty object.
    pub fn empty() -> Self {
        Self(Value::Object(Map::new()))
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// Worth trying again (a flaky probe, a non-zero exit, a timeout upstream).
    /// The task's retry policy decides whether it is.
    #[error("{0}")]
    Retryable(String),
    /// Trying again will not help (bad parameters, a missing program).
    #[error("{0}")]
    Permanent(String),
}

impl Error {
    /// True for [`Error::Retryable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Retryable(_))
    }

    /// The message, whichever the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::Retryable(message) | Error::Permanent(message) => message,
        }
    }
}

/// Something that runs tasks. Implementations must be cheap to share (the
/// engine holds them in an `Arc`) and must tolerate concurrent calls.
#[async_trait::async_trait]
pub trait Agent: Send + Sync {
    /// The name definitions use in `agent = "..."`.
    fn name(&self) -> &str;

    /// Checks parameters before anything runs; the engine calls it when an
    /// instance starts so bad parameters fail early. Return a message naming
    /// the parameter and what is expected.
    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        let _ = params;
        Ok(())
    }

    /// Runs one attempt.
    async fn run(&self, request: TaskRequest, context: TaskContext) -> Result<TaskOutput, Error>;
}

//! # phasegate-agents
//!
//! The built-in agents and the explicit [`Registry`] the engine dispatches
//! through. The contract itself (the [`Agent`] trait, [`TaskRequest`],
//! [`TaskContext`], [`TaskOutput`], [`Error`] and the [`conformance`]
//! checks) is `phasegate-agent-contract`, re-exported here; a plugin author
//! depends on that crate alone, without this one's HTTP stack. The written
//! contract is docs/agents.md.
//!
//! This crate must never know about workflows, phases, gates or the store: an
//! agent receives one request and returns one result. Retries, timeouts,
//! cancellation and durability are the engine's job; an agent only has to be
//! safe to run again with the same idempotency key.

mod builtin;
mod registry;

pub use builtin::{ExecAgent, HttpAgent, NoopAgent, PluginAgent, PrometheusAgent, SleepAgent, WebhookAgent, PLUGIN_PROTOCOL};
pub use phasegate_agent_contract::{
    conformance, Agent, Error, Heartbeat, LogSink, LogStream, TaskContext, TaskOutput, TaskRequest, MAX_OUTPUT_BYTES,
};
pub use registry::Registry;

/// Names of the agents every phasegate build registers.
pub const BUILTIN_AGENTS: &[&str] = &["exec", "http", "prometheus", "webhook", "plugin", "noop", "sleep"];

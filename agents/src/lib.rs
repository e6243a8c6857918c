//! # phasegate-agents
//!
//! The contract between the engine and the things that do work: the [`Agent`]
//! trait, what an agent receives ([`TaskRequest`], [`TaskContext`]) and returns
//! ([`TaskOutput`] or [`Error`]), the explicit [`Registry`], the built-in agents
//! and the [`conformance`] checks every agent must pass. A plugin author
//! depends on this crate alone. The written contract is docs/agents.md.
//!
//! This crate must never know about workflows, phases, gates or the store: an
//! agent receives one request and returns one result. Retries, timeouts,
//! cancellation and durability are the engine's job; an agent only has to be
//! safe to run again with the same idempotency key.

mod builtin;
pub mod conformance;
mod contract;
mod registry;

pub use builtin::{ExecAgent, HttpAgent, NoopAgent, PluginAgent, PrometheusAgent, SleepAgent, WebhookAgent, PLUGIN_PROTOCOL};
pub use contract::{Agent, Error, Heartbeat, TaskContext, TaskOutput, TaskRequest, MAX_OUTPUT_BYTES};
pub use registry::Registry;

/// Names of the agents every phasegate build registers (the ones not yet
/// implemented by this crate are provided by the engine as it grows).
pub const BUILTIN_AGENTS: &[&str] = &["exec", "http", "prometheus", "webhook", "plugin", "noop", "sleep"];

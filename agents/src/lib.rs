//! # phasegate-agents
//!
//! The contract between the engine and the things that do work: the names of
//! the built-in agents today, and (as the runtime lands) the `Agent` trait,
//! task requests and outputs, errors, the registry and the built-ins
//! themselves. A plugin author depends on this crate alone.
//!
//! This crate must never know about workflows, phases, gates or the store: an
//! agent receives one request and returns one result.

/// Names of the agents every phasegate build registers.
pub const BUILTIN_AGENTS: &[&str] = &[
    "exec",
    "http",
    "prometheus",
    "webhook",
    "plugin",
    "noop",
    "sleep",
];

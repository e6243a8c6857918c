//! # phasegate-agent-contract
//!
//! The contract between the phasegate engine and the things that do work,
//! for plugin authors: the [`Agent`] trait, what an agent receives
//! ([`TaskRequest`], [`TaskContext`]) and returns ([`TaskOutput`] or
//! [`Error`]), and the [`conformance`] checks every agent must pass. It has
//! no HTTP stack and no built-in agents (those are `phasegate-agents`); the
//! written contract is docs/agents.md.
//!
//! An agent receives one request and returns one result; it never knows
//! about workflows, phases, gates or the store. Retries, timeouts,
//! cancellation and durability are the engine's job; an agent only has to be
//! safe to run again with the same idempotency key.

pub mod conformance;
mod contract;

pub use contract::{Agent, Error, Heartbeat, LogSink, LogStream, TaskContext, TaskOutput, TaskRequest, MAX_OUTPUT_BYTES};

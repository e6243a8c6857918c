//! The engine's integration tests, in one test binary: definitions and
//! validation, gates and decisions, reactions, and the runtime (recovery,
//! concurrency, quarantine), each in its own module.

mod definitions;
mod gates;
mod reactions;
mod runtime;

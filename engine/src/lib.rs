//! # phasegate-engine
//!
//! The workflow engine: it owns the definition format ([`model`]), validated
//! workflows and their graphs ([`plan`]), conditions ([`expr`]), and — as
//! later layers land — the pure state machine, the async runtime, gates and
//! the `phasegate` CLI.
//!
//! Architecture invariants:
//! - `engine` depends on `phasegate-store` and `phasegate-agents`; neither of
//!   them depends on `engine`. Workflow semantics live only here.
//! - The runtime only ever sees a [`plan::Workflow`], never a raw
//!   [`model::WorkflowDef`]: everything that can be checked is checked once,
//!   by [`plan::validate`].
//! - Nothing in this crate writes anywhere while loading, validating or
//!   exporting a definition.

pub mod api;
pub mod config;
pub mod expr;
pub mod machine;
#[cfg(feature = "server")]
mod metrics;
pub mod model;
pub mod plan;
pub mod report;
pub mod runtime;
#[cfg(feature = "server")]
pub mod server;
mod suggest;
pub mod template;
pub mod text;

pub use runtime::{Builder, Engine, Mode, StartOptions};

#[cfg(feature = "cli")]
pub mod cli;

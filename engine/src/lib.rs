//! # phasegate-engine
//!
//! The workflow engine: the definition format ([`model`]), validated
//! workflows and their graphs ([`plan`]), conditions ([`expr`]), the pure
//! state machine with its gates and approvals ([`machine`]), the async
//! runtime that persists and carries out what the machine says ([`runtime`],
//! embedded through [`Engine`]), the reports ([`report`]), the control API
//! and its wire types ([`api`]; the server behind the `server` feature) and
//! the `phasegate` CLI (feature `cli`). docs/ARCHITECTURE.md is the map.
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
pub mod describe;
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

//! The workspace-level tests, in one test binary (one link instead of one
//! per file): the real `phasegate` binary driven as a user drives it (CLI,
//! control API, end-to-end lifecycle, Prometheus, kill -9 crash cycles), and
//! the embedding example.

mod support;

mod cli_definitions;
mod cli_follow;
mod cli_gates;
mod cli_instances;
mod cli_reactions;
mod console;
mod crash;
mod embed_example;
mod identity;
mod lifecycle;
mod postgres;
mod prometheus;
mod regression;
mod server;

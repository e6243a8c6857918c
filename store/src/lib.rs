//! # phasegate-store
//!
//! The durable layer: per-instance append-only event logs, snapshots, indexes
//! and timers, on sled. It lands with the durable engine; today the crate only
//! fixes its place in the dependency graph.
//!
//! This crate must never know about workflows, phases, tasks or gates: it
//! stores opaque, versioned records keyed by instance and sequence number.

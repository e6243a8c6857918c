//! The event handlers, one module per concern. Each takes the handler
//! context and its event's payload, checks everything first and mutates
//! after, so a rejected event leaves the state exactly as it was.
//!
//! Imports run one way: `gate`, `task`, `watch` and `operator` queue
//! triggers (`trigger`); `trigger` and `schedule` re-enter phases
//! and `deadline` starts rollbacks (`rollback`); `rollback` imports only the shared guards.

pub(crate) mod deadline;
pub(crate) mod gate;
pub(crate) mod operator;
pub(crate) mod phase;
pub(crate) mod rollback;
pub(crate) mod schedule;
pub(crate) mod task;
pub(crate) mod trigger;
pub(crate) mod watch;

//! The built-in agents.

mod exec;
mod http;
mod noop;
mod params;

pub use exec::ExecAgent;
pub use http::HttpAgent;
pub use noop::{NoopAgent, SleepAgent};

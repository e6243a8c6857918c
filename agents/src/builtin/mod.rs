//! The built-in agents.

mod exec;
mod http;
mod noop;
mod params;
mod plugin;
mod prometheus;
mod webhook;

pub use exec::ExecAgent;
pub use http::HttpAgent;
pub use noop::{NoopAgent, SleepAgent};
pub use plugin::{PluginAgent, PLUGIN_PROTOCOL};
pub use prometheus::PrometheusAgent;
pub use webhook::WebhookAgent;

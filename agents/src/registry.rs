//! The explicit set of agents an engine can dispatch to.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::builtin::{ExecAgent, HttpAgent, NoopAgent, PluginAgent, PrometheusAgent, SleepAgent, WebhookAgent};
use crate::Agent;

/// Agents by name. Registration is explicit: nothing is discovered at link
/// time, so what a build can run is visible in one place.
#[derive(Clone, Default)]
pub struct Registry {
    agents: BTreeMap<String, Arc<dyn Agent>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in agents of this crate: `exec`, `http`, `noop`, `sleep`,
    /// `prometheus`, `webhook`, `plugin`.
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        registry.register(Arc::new(ExecAgent));
        registry.register(Arc::new(HttpAgent::new()));
        registry.register(Arc::new(NoopAgent));
        registry.register(Arc::new(SleepAgent));
        registry.register(Arc::new(PrometheusAgent::new()));
        registry.register(Arc::new(WebhookAgent::new()));
        registry.register(Arc::new(PluginAgent));
        registry
    }

    /// Adds (or replaces) an agent under its own name.
    pub fn register(&mut self, agent: Arc<dyn Agent>) {
        self.agents.insert(agent.name().to_owned(), agent);
    }

    /// The agent of this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Agent>> {
        self.agents.get(name).cloned()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.agents.keys()).finish()
    }
}

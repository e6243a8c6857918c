//! The operator's configuration file, `phasegate.toml`: who holds which role,
//! and concurrency limits. Definitions say *which* roles may decide; this file
//! says *who* holds them, so a workflow can be shared between teams.
//!
//! ```toml
//! [roles]
//! qa-director = ["alice"]
//! sre = ["carol", "dave"]
//!
//! [limits]
//! max_concurrent_tasks = 32
//! agents = { exec = 8 }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::machine::Roles;

/// The configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Role name → principals holding it.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Concurrency limits.
    #[serde(default)]
    pub limits: Limits,
}

/// Concurrency limits.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most task attempts running at once.
    pub max_concurrent_tasks: Option<usize>,
    /// Most attempts per agent running at once.
    #[serde(default)]
    pub agents: BTreeMap<String, usize>,
}

impl Config {
    /// Reads a configuration file; the error names the file, line and problem.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("{}: cannot read the configuration: {error}", path.display()))?;
        toml::from_str(&text).map_err(|error| {
            let line = error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => format!("{}:{line}: {}", path.display(), error.message().trim()),
                None => format!("{}: {}", path.display(), error.message().trim()),
            }
        })
    }

    /// The role membership for authorization.
    pub fn roles(&self) -> Roles {
        Roles(self.roles.iter().map(|(role, members)| (role.clone(), members.iter().cloned().collect::<BTreeSet<_>>())).collect())
    }
}

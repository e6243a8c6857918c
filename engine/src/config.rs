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
//!
//! # Who may operate instances through the server (default: the admin
//! # credential and the workflow's `owners`).
//! [permissions]
//! halt = ["role:sre"]
//! signal = ["role:monitoring"]
//!
//! # An authenticating proxy (oauth2-proxy style) in front of `serve`.
//! [auth]
//! proxy_header = "X-Forwarded-User"
//! trusted_proxies = ["127.0.0.1"]
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
    /// Who may carry out each operator command through the server.
    #[serde(default)]
    pub permissions: BTreeMap<Operation, Vec<String>>,
    /// How the server authenticates people besides API tokens.
    #[serde(default)]
    pub auth: Auth,
}

/// An operator command, as `[permissions]` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Operation {
    /// Start an instance of a workflow.
    Start,
    /// Stop new dispatch.
    Halt,
    /// Let a halted instance go on.
    Resume,
    /// End an instance.
    Cancel,
    /// Redrive failed work.
    Retry,
    /// Undo completed work.
    Rollback,
    /// Deliver an external event.
    Signal,
    /// Move an instance past a gate that passed.
    Advance,
}

impl Operation {
    /// Its name, as in `[permissions]` and the API's routes.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Authentication by a trusted proxy: requests from one of
/// `trusted_proxies` name their principal in `proxy_header`; the header from
/// anywhere else is refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The header the proxy names the signed-in user in (`X-Forwarded-User`, say).
    pub proxy_header: Option<String>,
    /// The addresses of the proxies whose header is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
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
        let config: Config = toml::from_str(&text).map_err(|error| {
            let line = error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => format!("{}:{line}: {}", path.display(), error.message().trim()),
                None => format!("{}: {}", path.display(), error.message().trim()),
            }
        })?;
        config.check().map_err(|message| format!("{}: {message}", path.display()))?;
        Ok(config)
    }

    /// Checks what the types alone do not: principals in `[permissions]`,
    /// and an `[auth]` proxy named together with where it is.
    fn check(&self) -> Result<(), String> {
        for (operation, entries) in &self.permissions {
            if let Some(bad) = entries.iter().find(|entry| crate::plan::Principal::parse(entry).is_none()) {
                return Err(format!(
                    "permissions.{}: `{bad}` is not a principal; write a name such as `alice` or a role such as `role:sre`",
                    operation.name()
                ));
            }
        }
        match (&self.auth.proxy_header, self.auth.trusted_proxies.is_empty()) {
            (Some(header), _) if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
                Err(format!("auth.proxy_header: `{header}` is not a header name (letters, digits and `-`)"))
            }
            (Some(header), true) => Err(format!(
                "auth.proxy_header = \"{header}\" needs auth.trusted_proxies: the addresses of the proxies whose header is believed"
            )),
            (None, false) => Err("auth.trusted_proxies needs auth.proxy_header: the header those proxies name the user in".to_owned()),
            _ => Ok(()),
        }
    }

    /// Who may carry out `operation` besides the admin credential: the
    /// configured entries, or `None` when the configuration leaves it to the
    /// workflow's owners.
    pub fn permitted(&self, operation: Operation) -> Option<Vec<crate::plan::Principal>> {
        self.permissions.get(&operation).map(|entries| entries.iter().filter_map(|e| crate::plan::Principal::parse(e)).collect())
    }

    /// The role membership for authorization.
    pub fn roles(&self) -> Roles {
        Roles(self.roles.iter().map(|(role, members)| (role.clone(), members.iter().cloned().collect::<BTreeSet<_>>())).collect())
    }
}

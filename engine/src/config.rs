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
    /// Where the store is, when not in the data directory.
    #[serde(default)]
    pub store: StoreConfig,
}

/// `[store]`: a PostgreSQL database shared by several nodes, instead of the
/// sled store in the data directory.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (`--store` and
    /// `PHASEGATE_STORE` take precedence).
    pub url: Option<String>,
    /// How long a node's lease on its instances lasts without renewal
    /// (`"10s"`, the default): a dead node's instances are taken over
    /// within this time.
    pub lease: Option<String>,
    /// This node's name in the lease table (default: host, process id and a random suffix).
    pub node: Option<String>,
}

impl StoreConfig {
    /// The PostgreSQL options this section sets; the error names the field.
    pub fn postgres_options(&self) -> Result<phasegate_store::PostgresOptions, String> {
        let mut options = phasegate_store::PostgresOptions { node: self.node.clone(), ..Default::default() };
        if let Some(lease) = &self.lease {
            let lease =
                humantime::parse_duration(lease).map_err(|error| format!("[store] lease = {lease:?}: {error} (write it as \"10s\")"))?;
            if lease < std::time::Duration::from_secs(1) {
                return Err(format!(
                    "[store] lease = {:?}: a lease shorter than a second would be lost between renewals; use at least \"1s\"",
                    humantime::format_duration(lease).to_string()
                ));
            }
            options.lease = lease;
        }
        Ok(options)
    }
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

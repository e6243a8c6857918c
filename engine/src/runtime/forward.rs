//! The commands one node of a cluster hands to another, and what carries
//! them (see [`super::cluster`]). Only types: the driver holds a
//! [`Forward`]er without knowing the cluster's workings.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{DecisionRequest, Error};
use crate::machine::Event;

/// A command that writes, as one node hands it to the instance's owner.
/// Everything was checked and resolved by the node that took the request
/// (authentication, variables, the definition pinned in the shared store);
/// the owner applies it as if it had been given to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Forwarded {
    /// Start an instance of the definition pinned under `hash`.
    Start {
        /// The instance id.
        id: String,
        /// The pinned definition's content hash.
        hash: String,
        /// The variables, resolved.
        vars: Map<String, Value>,
        /// Who starts it.
        started_by: String,
        /// The gates' baselines.
        baselines: BTreeMap<String, crate::machine::Baseline>,
    },
    /// An operator event (halt, resume, cancel, redrive, rollback, signal).
    Operate {
        /// The instance.
        id: String,
        /// The event.
        event: Event,
    },
    /// A decision at a gate.
    Decide {
        /// The instance.
        id: String,
        /// The gate, if named.
        gate: Option<String>,
        /// The decision, with its authenticated principal.
        request: DecisionRequest,
    },
    /// Move the instance on as far as it can go.
    Advance {
        /// The instance.
        id: String,
    },
}

impl Forwarded {
    /// The instance the command is for.
    pub fn instance(&self) -> &str {
        match self {
            Forwarded::Start { id, .. } | Forwarded::Operate { id, .. } | Forwarded::Decide { id, .. } | Forwarded::Advance { id } => id,
        }
    }
}

/// Carries a command to the node that owns its instance (the server's
/// node-to-node call) and returns the owner's answer: the JSON of the
/// command's outcome, or the owner's error as the same kind of error.
#[async_trait::async_trait]
pub trait Forward: Send + Sync {
    /// Sends `command` to `owner`.
    async fn forward(&self, owner: &phasegate_store::NodeAddress, command: &Forwarded) -> Result<Value, Error>;
}

/// The error for a command about an instance another node owns.
pub(crate) fn not_owner(id: &str) -> Error {
    phasegate_store::Error::NotOwner { instance: id.to_owned(), shard: phasegate_store::postgres::shard_of(id) }.into()
}

/// Whether an error says the instance is not this node's (any more).
pub(crate) fn is_not_owner(error: &Error) -> bool {
    matches!(error, Error::Store(phasegate_store::Error::NotOwner { .. })) || matches!(error, Error::Remote { kind: "not_owner", .. })
}

/// Decodes what the owner answered into the outcome the caller asked for.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|error| Error::Invalid(format!("another node answered with an unexpected outcome: {error}")))
}

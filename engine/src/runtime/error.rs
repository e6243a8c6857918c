//! The runtime's errors, each with the kind the API and the CLI report.

use super::*;

/// Errors of the engine's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] phasegate_store::Error),
    /// No instance has this id.
    #[error("no instance `{0}` in this store; `phasegate list` shows the instances")]
    UnknownInstance(String),
    /// The command does not fit the instance's state.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// The definition is invalid.
    #[error("{0}")]
    Definition(Diagnostics),
    /// A start option (a variable, an id) is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The instance was set apart because its stored records do not decode.
    #[error("instance {id} is quarantined: {reason}")]
    Quarantined {
        /// The instance.
        id: String,
        /// Why.
        reason: String,
    },
    /// Stored data that does not make sense (the instance gets quarantined).
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// The principal may not take this decision.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with one already recorded (a request id reused
    /// for a different decision).
    #[error("{0}")]
    Conflict(String),
    /// The engine has shut down.
    #[error("the engine has shut down")]
    ShutDown,
    /// What a server answered a client with: its kind and message, as the
    /// same kind of error a local command gives.
    #[error("{message}")]
    Remote {
        /// The error's kind, as [`Error::kind`] names it.
        kind: &'static str,
        /// The server's message.
        message: String,
    },
}

impl Error {
    /// A stable name for the kind of error, for scripts: the `kind` of the
    /// CLI's JSON errors and of the control API's error bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Store(phasegate_store::Error::NoStore { .. }) => "no_store",
            Error::Store(phasegate_store::Error::LostData { .. }) => "lost_data",
            Error::Store(phasegate_store::Error::InUse { .. }) => "in_use",
            Error::Store(phasegate_store::Error::NotOwner { .. }) => "not_owner",
            Error::Store(_) => "store",
            Error::UnknownInstance(_) => "not_found",
            Error::Rejected(rejected) => rejected.kind.name(),
            Error::Definition(_) | Error::Invalid(_) => "invalid",
            Error::Quarantined { .. } | Error::Corrupt(_) => "quarantined",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::ShutDown => "shut_down",
            Error::Remote { kind, .. } => kind,
        }
    }
}

//! The control API's request and response bodies: one set of types that the
//! server decodes and encodes and the CLI's client encodes and decodes, so a
//! renamed field breaks the build instead of a running deployment.
//!
//! The routes and their semantics are documented in docs/api.md. Bodies
//! that name the engine's own answers (a decision's outcome, pending
//! approvals, an instance's summary) reuse those types; the rest are here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::machine::{DecisionKind, EffectiveStatus};
use crate::runtime::Summary;

/// The path prefix of this version of the API.
pub const PREFIX: &str = "/v1";

/// How a definition sent to `POST /v1/instances` is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefinitionFormat {
    /// TOML (the default).
    #[default]
    Toml,
    /// JSON.
    Json,
}

impl From<crate::model::Format> for DefinitionFormat {
    fn from(format: crate::model::Format) -> Self {
        match format {
            crate::model::Format::Toml => DefinitionFormat::Toml,
            crate::model::Format::Json => DefinitionFormat::Json,
        }
    }
}

impl From<DefinitionFormat> for crate::model::Format {
    fn from(format: DefinitionFormat) -> Self {
        match format {
            DefinitionFormat::Toml => crate::model::Format::Toml,
            DefinitionFormat::Json => crate::model::Format::Json,
        }
    }
}

/// `POST /v1/instances`: start an instance of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The definition's text.
    pub definition: String,
    /// How it is written.
    #[serde(default)]
    pub format: DefinitionFormat,
    /// Variables (`name` → value as text, checked against the declared type).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The instance id to use instead of a generated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The instance whose gate baselines this one compares with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// The answer to `POST /v1/instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The new instance's id.
    pub id: String,
}

/// One row of `GET /v1/instances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listed {
    /// The instance.
    pub id: String,
    /// Where it stands.
    pub summary: Summary,
}

/// `POST /v1/instances/{id}/decisions`: a decision at a gate or a trigger's halt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// approve, reject, hold or escalate.
    pub decision: DecisionKind,
    /// `phase/gate`, a gate id or a trigger id; optional when one thing awaits a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// The client's idempotency key.
    #[serde(default)]
    pub request_id: String,
    /// The inputs the gate declares, with an approval: JSON values (text is
    /// parsed by the input's type).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub inputs: serde_json::Map<String, serde_json::Value>,
}

/// `POST /v1/instances/{id}/{operation}`: the fields an operation reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationBody {
    /// halt, cancel, rollback: why.
    #[serde(default)]
    pub reason: String,
    /// halt: cancel attempts in flight too.
    #[serde(default)]
    pub cancel_running: bool,
    /// retry: only this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// retry: this whole phase (every task, then its gates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// rollback: re-enter this phase afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// signal: the declared signal's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// signal: its data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// The answer to an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operated {
    /// The instance.
    pub instance: String,
    /// The sequence number the operation was recorded at.
    pub seq: u64,
    /// The instance's status after it (none if it could not be read back).
    pub status: Option<EffectiveStatus>,
}

/// `POST /v1/backup`: a consistent copy of the live store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// A new directory on the server's machine.
    pub dest: PathBuf,
}

/// The answer to `POST /v1/backup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackedUp {
    /// Where the copy is.
    pub path: String,
    /// Records copied.
    pub records: u64,
    /// Instances copied.
    pub instances: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl From<phasegate_store::BackupReport> for BackedUp {
    fn from(report: phasegate_store::BackupReport) -> Self {
        BackedUp { path: report.path, records: report.records, instances: report.instances, bytes: report.bytes }
    }
}

impl From<BackedUp> for phasegate_store::BackupReport {
    fn from(copy: BackedUp) -> Self {
        phasegate_store::BackupReport { path: copy.path, records: copy.records, instances: copy.instances, bytes: copy.bytes }
    }
}

/// Every error answer: what went wrong, and its kind (what scripts match on:
/// `not_found`, `rejected`, `forbidden`, `conflict`, `invalid`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// Its kind.
    pub kind: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire format is the documented one: a renamed field must fail here
    /// as well as in the build.
    #[test]
    fn bodies_keep_their_documented_field_names() {
        let start: StartRequest = serde_json::from_str(r#"{"definition": "name = 'w'", "vars": {"a": "1"}}"#).expect("start");
        assert_eq!(start.format, DefinitionFormat::Toml, "TOML by default");
        let decision: DecisionBody = serde_json::from_str(r#"{"decision": "approve", "comment": "ok"}"#).expect("decision");
        assert_eq!(decision.decision, DecisionKind::Approve);
        let wrong = serde_json::from_str::<DecisionBody>(r#"{"decision": "approved"}"#).expect_err("unknown decision");
        assert!(wrong.to_string().contains("expected one of `approve`, `reject`, `hold`, `escalate`"), "{wrong}");
        let unknown = serde_json::from_str::<OperationBody>(r#"{"reasons": "typo"}"#).expect_err("unknown field");
        assert!(unknown.to_string().contains("unknown field `reasons`"), "{unknown}");
        let operated =
            serde_json::to_value(Operated { instance: "i".into(), seq: 3, status: Some(EffectiveStatus::Halted) }).expect("json");
        assert_eq!(operated, serde_json::json!({"instance": "i", "seq": 3, "status": "halted"}));
    }
}

/// `POST /v1/users` (admin): issue a user an API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUser {
    /// The user's name: the principal their requests act as.
    pub name: String,
    /// Roles granted on top of phasegate.toml's.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The answer to `GET /v1/whoami`: who the credential says the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The principal requests act as.
    pub principal: String,
    /// True for the admin credential: operator commands, users, backups; never decisions.
    pub admin: bool,
    /// How the server established it (`token …`, `proxy …`, `admin token`).
    pub authentication: String,
    /// The roles the principal holds (phasegate.toml's and the store's).
    pub roles: Vec<String>,
}

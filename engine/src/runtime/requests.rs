//! Request ids: a client's idempotency key for one decision.
//!
//! A request id means one decision, across the whole store: repeating the
//! identical decision (same instance, gate or trigger, kind, principal and
//! comment) answers with the original outcome and appends nothing; using it
//! for anything else is refused as a conflict. Each use is written to the
//! `request` index in the batch that records the decision, so a trigger's
//! halt that has since moved on, or another instance, still finds it; uses
//! whose batch is not yet durable are kept by the driver in memory.

use serde::{Deserialize, Serialize};

use super::{DecisionOutcome, DecisionRequest, Error};
use crate::machine::{DecisionKind, Effect, Subject, Timestamp};
use phasegate_store::Store;

/// The store index of request ids: key the request id, value a [`RequestUse`].
pub(crate) const REQUEST_INDEX: &str = "request";

/// The decision a request id was used for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestUse {
    /// The instance.
    pub(crate) instance: String,
    /// The phase of the gate or trigger.
    pub(crate) phase: String,
    /// The gate's id, or the trigger's for a trigger's halt.
    pub(crate) gate: String,
    /// Whether it was a gate or a trigger's halt (uses indexed before this
    /// field existed read as gates).
    #[serde(default)]
    pub(crate) subject: Subject,
    /// What was decided.
    pub(crate) kind: DecisionKind,
    /// Who decided.
    pub(crate) principal: String,
    /// The comment given.
    pub(crate) comment: String,
    /// When it was recorded.
    pub(crate) at: Timestamp,
}

impl RequestUse {
    /// The use a decision's request id write effect records, at `at`.
    pub(crate) fn of_effect(instance: &str, effect: &Effect, at: Timestamp) -> Option<(String, RequestUse)> {
        let Effect::WriteRequest { request_id, subject, phase, id, decision } = effect else {
            return None;
        };
        let used = RequestUse {
            instance: instance.to_owned(),
            phase: phase.clone(),
            gate: id.clone(),
            subject: *subject,
            kind: decision.kind,
            principal: decision.principal.clone(),
            comment: decision.comment.clone(),
            at,
        };
        Some((request_id.clone(), used))
    }

    /// True if `request` on `instance` (naming `gate`, or none) is the
    /// identical decision.
    pub(crate) fn is_same(&self, instance: &str, gate: Option<&str>, request: &DecisionRequest) -> bool {
        let names_it = gate.is_none_or(|g| g == self.gate || g == format!("{}/{}", self.phase, self.gate));
        self.instance == instance
            && names_it
            && self.kind == request.kind
            && self.principal == request.principal
            && self.comment == request.comment
    }

    /// The refusal of a request id reused for a different decision.
    pub(crate) fn conflict(&self, request_id: &str) -> Error {
        Error::Conflict(format!(
            "request id {request_id} was already used by {} to {} {}/{} of instance {} at {}; a request id means one decision, so use a new one",
            self.principal,
            self.kind.verb(),
            self.phase,
            self.gate,
            self.instance,
            self.at
        ))
    }

    /// The original outcome, answered again (`seq` and the statuses are the current ones).
    pub(crate) fn outcome(
        &self,
        seq: u64,
        gate_status: String,
        instance_status: Option<crate::machine::EffectiveStatus>,
    ) -> DecisionOutcome {
        DecisionOutcome {
            instance: self.instance.clone(),
            phase: self.phase.clone(),
            gate: self.gate.clone(),
            subject: self.subject,
            kind: self.kind,
            principal: self.principal.clone(),
            at: self.at,
            seq,
            gate_status,
            instance_status,
            replayed: true,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The durable use of a request id, if any.
pub(crate) fn lookup(store: &dyn Store, request_id: &str) -> Result<Option<RequestUse>, Error> {
    let key = request_id.as_bytes().to_vec();
    let mut end = key.clone();
    end.push(0);
    let found = store.index_range(REQUEST_INDEX, &key, &end, 1)?;
    Ok(found.into_iter().find(|(k, _)| *k == key).and_then(|(_, value)| serde_json::from_slice::<RequestUse>(&value).ok()))
}

//! What the engine answers a decision or an advance with.

/// A human decision at a gate, as a client asks for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecisionRequest {
    /// Approve, reject, hold or escalate.
    pub kind: crate::machine::DecisionKind,
    /// Who decides (authorized against the gate's current level).
    pub principal: String,
    /// How `principal` was established: the server's credential check, or
    /// [`Authentication::Local`](crate::machine::Authentication::Local) for
    /// a caller holding the store (recorded with the decision).
    pub auth: crate::machine::Authentication,
    /// Why (required when the gate says so).
    pub comment: String,
    /// The client's request id: repeating the request returns the original
    /// outcome and changes nothing. Empty for none.
    pub request_id: String,
    /// The inputs the gate declares, by name: JSON values, or text parsed by
    /// the input's type (as `--input name=value` gives them).
    pub inputs: serde_json::Map<String, serde_json::Value>,
}

/// What a decision led to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecisionOutcome {
    /// The instance.
    pub instance: String,
    /// The phase.
    pub phase: String,
    /// The gate, or the trigger for a trigger's halt.
    pub gate: String,
    /// Whether the decision was on a gate or on a trigger's halt.
    pub subject: crate::machine::Subject,
    /// The decision.
    pub kind: crate::machine::DecisionKind,
    /// Who took it.
    pub principal: String,
    /// When (of the original decision, for a repeated request).
    pub at: crate::machine::Timestamp,
    /// The instance's last event after it.
    pub seq: u64,
    /// The gate's status after it.
    pub gate_status: String,
    /// The instance's status after it (none until the decision is durable).
    pub instance_status: Option<crate::machine::EffectiveStatus>,
    /// True when this answers a repeated request id (nothing was appended).
    pub replayed: bool,
}

impl DecisionOutcome {
    /// The outcome of a decision just submitted on `target`; `seq` and the
    /// statuses are filled in once it is durable.
    pub(crate) fn submitted(
        instance: &str,
        target: &crate::machine::Target<'_>,
        request: &DecisionRequest,
        at: crate::machine::Timestamp,
    ) -> Self {
        Self {
            instance: instance.to_owned(),
            phase: target.phase.to_owned(),
            gate: target.id.to_owned(),
            subject: target.subject,
            kind: request.kind,
            principal: request.principal.clone(),
            at,
            seq: 0,
            gate_status: String::new(),
            instance_status: None,
            replayed: false,
        }
    }
}

/// What `advance` did and what still blocks the instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdvanceReport {
    /// Events appended by advancing.
    pub appended: usize,
    /// The instance's status after it (none if it could not be read back).
    pub status: Option<crate::machine::EffectiveStatus>,
    /// What keeps it from moving on.
    pub blockers: Vec<crate::machine::Blocker>,
}

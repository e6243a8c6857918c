//! The stored forms of events, snapshots and summaries: versioned JSON,
//! decoded into a closed set of types. A record that does not decode is a
//! [`DecodeError`]; the runtime quarantines its instance rather than guess.

use serde::{Deserialize, Serialize};

use crate::machine::{Instance, Record, Timestamp};

/// The version of [`Snapshot`] and [`Summary`] this build writes.
pub(crate) const STATE_VERSION: u32 = 1;

/// A stored record that this build cannot read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} does not decode: {detail}")]
pub struct DecodeError {
    /// Which record.
    pub what: String,
    /// The decoder's message.
    pub detail: String,
}

/// Encodes an event record without a link (tests; the driver writes
/// [`encode_linked`]).
#[cfg(test)]
pub(crate) fn encode_record(record: &Record) -> Vec<u8> {
    // Serialising plain data to JSON cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

/// Encodes an event record with its link in the audit chain: `prev`, the
/// hash of the record before it. The JSON is the stored form of [`Record`].
pub(crate) fn encode_linked(record: &Record, prev: &str) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(tag = "v")]
    enum Linked<'a> {
        #[serde(rename = "1")]
        V1 { seq: u64, at: Timestamp, event: &'a crate::machine::Event, prev: &'a str },
    }
    // Serialising plain data to JSON cannot fail.
    serde_json::to_vec(&Linked::V1 { seq: record.seq(), at: record.at(), event: record.event(), prev }).unwrap_or_default()
}

/// Decodes an event record.
pub(crate) fn decode_record(instance: &str, seq: u64, bytes: &[u8]) -> Result<Record, DecodeError> {
    serde_json::from_slice(bytes)
        .map_err(|error| DecodeError { what: format!("event {seq} of instance {instance}"), detail: error.to_string() })
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum Snapshot {
    #[serde(rename = "1")]
    V1 { state: Box<Instance> },
}

/// Encodes an instance snapshot.
pub(crate) fn encode_snapshot(instance: &Instance) -> Vec<u8> {
    serde_json::to_vec(&Snapshot::V1 { state: Box::new(instance.clone()) }).unwrap_or_default()
}

/// Decodes an instance snapshot.
pub(crate) fn decode_snapshot(instance: &str, bytes: &[u8]) -> Result<Instance, DecodeError> {
    match serde_json::from_slice::<Snapshot>(bytes) {
        Ok(Snapshot::V1 { state }) => Ok(*state),
        Err(error) => Err(DecodeError { what: format!("the snapshot of instance {instance}"), detail: error.to_string() }),
    }
}

/// What listings show about an instance without loading its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Format version.
    pub v: u32,
    /// The workflow's name.
    pub workflow: String,
    /// Content hash of the pinned definition.
    pub definition_hash: String,
    /// Effective status.
    pub status: crate::machine::EffectiveStatus,
    /// Who started it.
    pub started_by: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Phases not pending and not passed (what it is doing or waiting on).
    pub current: Vec<String>,
    /// The earliest time it must be looked at again, if any (its timer).
    pub wake_at: Option<Timestamp>,
}

impl Summary {
    /// The summary of an instance in this state.
    pub fn of(instance: &Instance, wake_at: Option<Timestamp>) -> Self {
        use crate::machine::PhaseStatus;
        Self {
            v: STATE_VERSION,
            workflow: instance.workflow.clone(),
            definition_hash: instance.definition_hash.clone(),
            status: instance.effective_status(),
            started_by: instance.started_by.clone(),
            started_at: instance.started_at,
            updated_at: instance.updated_at,
            current: instance
                .phases
                .iter()
                .filter(|p| match p.status {
                    PhaseStatus::Running { .. }
                    | PhaseStatus::AwaitingApproval { .. }
                    | PhaseStatus::OnHold { .. }
                    | PhaseStatus::Failed { .. } => true,
                    PhaseStatus::Pending | PhaseStatus::Passed { .. } => false,
                })
                .map(|p| p.id.clone())
                .collect(),
            wake_at,
        }
    }

    /// Encodes it.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes it.
    pub fn decode(instance: &str, bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes)
            .map_err(|error| DecodeError { what: format!("the summary of instance {instance}"), detail: error.to_string() })
    }
}

/// The key of an instance's entry in the `timer` index: due time first, so a
/// range scan from zero to now finds what is due.
pub(crate) fn timer_key(due: Timestamp, instance: &str) -> Vec<u8> {
    let mut key = due.0.to_be_bytes().to_vec();
    key.extend_from_slice(instance.as_bytes());
    key
}

/// The name of the pending-approvals index: key `instance 0x00 phase 0x00 gate`.
pub(crate) const APPROVAL_INDEX: &str = "approval";

/// A decision someone is waiting for, as the approvals index stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The instance.
    pub instance: String,
    /// Its workflow.
    pub workflow: String,
    /// Who started it (who may not approve when self-approval is off).
    pub started_by: String,
    /// The phase.
    pub phase: String,
    /// The gate.
    pub gate: String,
    /// The escalation level.
    pub level: usize,
    /// Waiting since.
    pub since: Timestamp,
    /// The level's deadline.
    pub deadline: Option<Timestamp>,
    /// Who may decide (principals and roles).
    pub approvers: Vec<String>,
    /// Approvals needed at this level.
    pub required: u32,
    /// Per role (or approver set): who approved through it and how many it
    /// needs; one list per way to pass the wait (a `may` escalation adds one).
    #[serde(default)]
    pub needs: Vec<Vec<crate::machine::GroupProgress>>,
    /// The inputs an approval must (or may) carry, described for people:
    /// `window (string, required): the launch window`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// Approvals so far.
    pub approvals: Vec<String>,
    /// Criteria that could not be judged (evidence missing).
    pub inconclusive: Vec<String>,
    /// Should-criteria that failed: warnings for the approver.
    pub warnings: Vec<String>,
    /// A scored gate's total and band, and each criterion's contribution
    /// (`label: points/weight`), for the approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<crate::machine::gate::Score>,
    /// Each criterion's contribution to the score: (label, points, weight).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakdown: Vec<(String, f64, f64)>,
}

impl PendingApproval {
    /// Who has approved and who is still needed, per role: `role:qa 0 of 1
    /// and role:sre 1 of 1 (sam)`; ways to pass joined by "or".
    pub fn still_needed(&self) -> String {
        self.still_needed_among(&crate::machine::Roles::default())
    }

    /// [`Self::still_needed`], with the people each role maps to:
    /// `role:qa 1 of 2 (quinn) (held by quinn, quentin)`; a group that has
    /// its approvals names nobody more.
    pub fn still_needed_among(&self, roles: &crate::machine::Roles) -> String {
        let held = |approvers: &[String]| -> String {
            let held: Vec<(&str, String)> = approvers
                .iter()
                .filter_map(|approver| approver.strip_prefix("role:"))
                .filter_map(|role| roles.0.get(role).map(|members| (role, members)))
                .map(|(role, members)| match members.is_empty() {
                    true => (role, "nobody".to_owned()),
                    false => (role, members.iter().cloned().collect::<Vec<_>>().join(", ")),
                })
                .collect();
            let roles: Vec<String> = match held.as_slice() {
                [(_, members)] => vec![format!("held by {members}")],
                many => many.iter().map(|(role, members)| format!("role:{role}: {members}")).collect(),
            };
            if roles.is_empty() {
                String::new()
            } else {
                format!(" ({})", roles.join("; "))
            }
        };
        if self.needs.is_empty() {
            return format!("{} of {} from {}{}", self.approvals.len(), self.required, self.approvers.join(", "), held(&self.approvers));
        }
        let ways: Vec<String> = self
            .needs
            .iter()
            .map(|groups| {
                groups
                    .iter()
                    // Only a group still short of approvals needs its people named.
                    .map(|g| format!("{}{}", g.describe(), if g.missing() > 0 { held(&g.approvers) } else { String::new() }))
                    .collect::<Vec<_>>()
                    .join(" and ")
            })
            .collect();
        ways.join(", or ")
    }
}

/// The inputs an approval carries, described for people.
fn described_inputs(approval: Option<&crate::plan::Approval>) -> Vec<String> {
    approval.map(|a| a.inputs.iter().map(|(name, input)| input.describe(name)).collect()).unwrap_or_default()
}

/// The approvals index entries an instance should have in this state.
pub(crate) fn pending_approvals(instance: &Instance, workflow: &crate::plan::Workflow) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    use crate::machine::{GateStatus, InstanceStatus, Verdict};
    let mut out = std::collections::BTreeMap::new();
    // A finished instance waits for no one, whatever its gates were doing.
    match instance.status {
        InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RolledBack { .. } => return out,
        InstanceStatus::Running
        | InstanceStatus::Halted { .. }
        | InstanceStatus::AwaitingDecision { .. }
        | InstanceStatus::RollingBack { .. } => {}
    }
    for (p, phase) in instance.phases.iter().enumerate() {
        for (g, gate) in phase.gates.iter().enumerate() {
            let GateStatus::AwaitingDecision { since, level, deadline, approvals } = &gate.status else {
                continue;
            };
            let authority = crate::machine::Target::gate(workflow, p, g).authority(*level);
            let evaluation = gate.evaluation.as_ref();
            let pending = PendingApproval {
                instance: instance.id.clone(),
                workflow: instance.workflow.clone(),
                started_by: instance.started_by.clone(),
                phase: phase.id.clone(),
                gate: gate.id.clone(),
                level: *level,
                since: *since,
                deadline: *deadline,
                approvers: authority.as_ref().map(|a| a.approvers().iter().map(ToString::to_string).collect()).unwrap_or_default(),
                required: authority.as_ref().map_or(1, |a| a.required()),
                needs: authority.as_ref().map(|a| a.progress(&gate.approvals_via())).unwrap_or_default(),
                inputs: described_inputs(workflow.phases[p].gates[g].approval.as_ref()),
                approvals: approvals.clone(),
                inconclusive: evaluation
                    .map(|e| e.criteria.iter().filter(|c| c.verdict == Verdict::Inconclusive).map(|c| c.label.clone()).collect())
                    .unwrap_or_default(),
                warnings: evaluation.map(|e| e.warnings().map(|c| c.label.clone()).collect()).unwrap_or_default(),
                score: evaluation.and_then(|e| e.score),
                breakdown: evaluation
                    .filter(|e| e.score.is_some())
                    .map(|e| e.criteria.iter().map(|c| (c.label.clone(), c.points, c.weight)).collect())
                    .unwrap_or_default(),
            };
            let mut key = instance.id.as_bytes().to_vec();
            key.push(0);
            key.extend_from_slice(phase.id.as_bytes());
            key.push(0);
            key.extend_from_slice(gate.id.as_bytes());
            out.insert(key, serde_json::to_vec(&pending).unwrap_or_default());
        }
    }
    // A trigger's halt for approval is listed under the trigger's id.
    if let crate::machine::InstanceStatus::AwaitingDecision { phase, trigger, cause, approval, .. } = &instance.status {
        let found = workflow.trigger(phase, trigger);
        if let (Some((_, plan)), GateStatus::AwaitingDecision { since, level, deadline, approvals }) = (found, &approval.status) {
            if let crate::plan::Action::HaltForApproval { then, .. } = &plan.action {
                let authority = crate::machine::Target::halt_named(workflow, phase, trigger).and_then(|t| t.authority(*level));
                let pending = PendingApproval {
                    instance: instance.id.clone(),
                    workflow: instance.workflow.clone(),
                    started_by: instance.started_by.clone(),
                    phase: phase.clone(),
                    gate: trigger.clone(),
                    level: *level,
                    since: *since,
                    deadline: *deadline,
                    approvers: authority.as_ref().map(|a| a.approvers().iter().map(ToString::to_string).collect()).unwrap_or_default(),
                    required: authority.as_ref().map_or(1, |a| a.required()),
                    needs: authority.as_ref().map(|a| a.progress(&approval.approvals_via())).unwrap_or_default(),
                    inputs: match &plan.action {
                        crate::plan::Action::HaltForApproval { approval, .. } => described_inputs(Some(approval)),
                        _ => Vec::new(),
                    },
                    approvals: approvals.clone(),
                    inconclusive: Vec::new(),
                    warnings: vec![format!("{cause}; approving runs `{}`", then.name())],
                    score: None,
                    breakdown: Vec::new(),
                };
                let mut key = instance.id.as_bytes().to_vec();
                key.push(0);
                key.extend_from_slice(phase.as_bytes());
                key.push(0);
                key.extend_from_slice(trigger.as_bytes());
                out.insert(key, serde_json::to_vec(&pending).unwrap_or_default());
            }
        }
    }
    out
}

/// The name of the due-timer index.
pub(crate) const TIMER_INDEX: &str = "timer";

/// The index of the latest gate passes per workflow: `workflow\0phase/gate`.
pub(crate) const BASELINE_INDEX: &str = "baseline";
/// The index of gate passes per instance: `instance\0phase/gate`.
pub(crate) const BASELINE_BY_INSTANCE_INDEX: &str = "baseline-of";

/// The key of a baseline entry.
pub(crate) fn baseline_key(owner: &str, gate: &str) -> Vec<u8> {
    let mut key = owner.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(gate.as_bytes());
    key
}

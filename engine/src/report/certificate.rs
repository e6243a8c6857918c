//! A phase completion certificate: issued only for a phase that passed, with
//! its gates and evidence, the people who approved it, the should criteria
//! they accepted, the work done, and the phases it authorizes.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::common::{list_markdown, or_dash, tasks_markdown, GateEntry, TaskEntry};
use super::{phase_named, Document, Header, Input};
use crate::machine::{DecisionKind, InstanceStatus, PhaseStatus};

/// A phase completion certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    /// The phase.
    pub phase: String,
    /// Its title.
    pub title: String,
    /// Who owns it.
    pub owner: Option<String>,
    /// Its attempt.
    pub attempt: u32,
    /// When it passed.
    pub passed_at: String,
    /// Its gates.
    pub gates: Vec<GateEntry>,
    /// The approvals recorded at its gates.
    pub approvals: Vec<Approval>,
    /// Should criteria that were not met (accepted by the approvers).
    pub should_warnings: Vec<String>,
    /// The work performed.
    pub tasks: Vec<TaskEntry>,
    /// The phases that may start now (none once the certificate is void).
    pub authorizes: Vec<String>,
    /// Why the certificate no longer authorizes anything: the release was
    /// rolled back or cancelled after the phase passed. A release that
    /// failed later is noted here too, though a retry may still go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub void: Option<String>,
    /// What the report describes.
    pub report: Header,
}

/// An approval at one of the phase's gates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The gate.
    pub gate: String,
    /// Who approved.
    pub by: String,
    /// The approver entry that allowed it.
    pub via: String,
    /// How the approver was authenticated (empty when not recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authenticated: String,
    /// When.
    pub at: String,
    /// Their comment.
    pub comment: String,
}

impl Certificate {
    pub(super) fn build(input: &Input<'_>, report: Header) -> Result<Self, String> {
        let (instance, workflow) = (input.instance, input.workflow);
        let p = match input.phase {
            Some(id) => phase_named(workflow, id)?,
            None => workflow
                .phase_order
                .iter()
                .rev()
                .copied()
                .find(|&p| matches!(instance.phases[p].status, PhaseStatus::Passed { .. }))
                .ok_or_else(|| format!("instance {} has no phase that passed yet; there is nothing to certify", instance.id))?,
        };
        let state = &instance.phases[p];
        let plan = &workflow.phases[p];
        let PhaseStatus::Passed { at } = &state.status else {
            return Err(format!(
                "phase {} is {}, not passed; a certificate is issued only for a passed phase",
                plan.id,
                state.status.kind()
            ));
        };
        let approvals = state
            .gates
            .iter()
            .flat_map(|g| {
                // People's approvals; a deadline's answer (by phasegate, through no approver entry) is not a sign-off.
                let human = |d: &crate::machine::Decision| !d.via.is_empty() || d.principal != "phasegate";
                g.decisions.iter().filter(move |(_, d)| d.kind == DecisionKind::Approve && human(d)).map(move |(at, d)| Approval {
                    gate: g.id.clone(),
                    by: d.principal.clone(),
                    via: d.via.clone(),
                    authenticated: super::common::authenticated(&d.auth),
                    at: at.to_string(),
                    comment: d.comment.clone(),
                })
            })
            .collect();
        // What happened to the release after the phase passed.
        let rollback = || instance.rollback.as_ref().map(|r| format!(" by {}: {}", r.by, r.reason)).unwrap_or_default();
        let (void, in_force) = match &instance.status {
            InstanceStatus::RollingBack { .. } | InstanceStatus::RolledBack { .. } => {
                (Some(format!("the release was rolled back after this phase passed{}", rollback())), false)
            }
            InstanceStatus::Cancelled { by, reason, .. } => (Some(format!("the release was cancelled by {by}: {reason}")), false),
            InstanceStatus::Failed { reason, .. } => (Some(format!("the release failed after this phase passed: {reason}")), true),
            InstanceStatus::Running
            | InstanceStatus::Halted { .. }
            | InstanceStatus::AwaitingDecision { .. }
            | InstanceStatus::Completed { .. } => (None, true),
        };
        Ok(Certificate {
            phase: plan.id.clone(),
            title: plan.title.clone(),
            owner: plan.owner.as_ref().map(ToString::to_string),
            attempt: state.attempt,
            passed_at: at.to_string(),
            gates: state.gates.iter().zip(&plan.gates).map(|(g, gp)| GateEntry::of(&plan.id, g, gp, input)).collect(),
            approvals,
            should_warnings: state
                .gates
                .iter()
                .filter_map(|g| g.evaluation.as_ref())
                .flat_map(|e| e.warnings().map(|c| c.label.clone()))
                .collect(),
            tasks: TaskEntry::of_phase(&state.tasks, &plan.tasks),
            authorizes: if in_force {
                workflow.phases.iter().filter(|candidate| candidate.after.contains(&p)).map(|c| c.id.clone()).collect()
            } else {
                Vec::new()
            },
            void,
            report,
        })
    }
}

impl Document for Certificate {
    fn markdown(&self) -> String {
        let mut out = String::new();
        self.report.markdown(&mut out, &format!("Phase completion certificate: {}", self.title));
        let _ = writeln!(
            out,
            "This certifies that phase **`{}`** ({}) passed at **{}** (attempt {}), owner {}.\n",
            self.phase,
            self.title,
            self.passed_at,
            self.attempt,
            or_dash(self.owner.as_ref())
        );
        let _ = writeln!(out, "## Quality criteria and evidence\n");
        for gate in &self.gates {
            gate.markdown(&mut out);
        }
        let approvals: Vec<String> = self
            .approvals
            .iter()
            .map(|a| {
                let how = if a.authenticated.is_empty() { String::new() } else { format!(", {}", a.authenticated) };
                format!("{} approved `{}` at {} (as {}{how}): {}", a.by, a.gate, a.at, a.via, a.comment)
            })
            .collect();
        list_markdown(&mut out, "Human approvals (sign-offs)", &approvals);
        list_markdown(&mut out, "Should criteria not met (accepted by the approvers)", &self.should_warnings);
        let _ = writeln!(out, "## Work performed\n");
        tasks_markdown(&mut out, &self.tasks);
        match (&self.void, self.authorizes.is_empty()) {
            (Some(why), true) => {
                let _ = writeln!(out, "**Void: this certificate authorizes nothing:** {why}\n");
            }
            (void, _) => {
                let next = if self.authorizes.is_empty() { "this is the last phase".to_owned() } else { self.authorizes.join(", ") };
                let _ = writeln!(out, "**Authorization to proceed:** {next}\n");
                if let Some(why) = void {
                    let _ = writeln!(out, "**Note:** {why}\n");
                }
            }
        }
        out
    }
}

/// `--phase all`: a certificate for every phase that passed, in the
/// workflow's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificates {
    /// One per passed phase.
    pub certificates: Vec<Certificate>,
    /// What the report describes.
    pub report: Header,
}

impl Certificates {
    pub(super) fn build(input: &Input<'_>, report: Header) -> Result<Self, String> {
        let passed: Vec<&str> = input
            .workflow
            .phase_order
            .iter()
            .filter(|&&p| matches!(input.instance.phases[p].status, PhaseStatus::Passed { .. }))
            .map(|&p| input.workflow.phases[p].id.as_str())
            .collect();
        if passed.is_empty() {
            return Err(format!("instance {} has no phase that passed yet; there is nothing to certify", input.instance.id));
        }
        let certificates = passed
            .into_iter()
            .map(|phase| Certificate::build(&Input { phase: Some(phase), ..*input }, report.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Certificates { certificates, report })
    }
}

impl Document for Certificates {
    fn markdown(&self) -> String {
        self.certificates.iter().map(Document::markdown).collect::<Vec<_>>().join("\n---\n\n")
    }
}

//! What stands between an instance and its next step, in words: the answer
//! of `phasegate advance` when it cannot move.

use serde::Serialize;

use super::gate::{GateStatus, Verdict};
use super::{Instance, InstanceStatus, PhaseStatus, TaskStatus, Timestamp};
use crate::plan::Workflow;

/// One thing that blocks progress.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Blocker {
    /// The phase concerned, if any.
    pub phase: Option<String>,
    /// The gate concerned, if any.
    pub gate: Option<String>,
    /// What blocks, and what would unblock it.
    pub message: String,
}

fn blocker(phase: Option<&str>, gate: Option<&str>, message: String) -> Blocker {
    Blocker { phase: phase.map(str::to_owned), gate: gate.map(str::to_owned), message }
}

/// Everything that keeps the instance from moving on right now.
pub fn blockers(instance: &Instance, workflow: &Workflow, now: Timestamp) -> Vec<Blocker> {
    let mut out = Vec::new();
    match &instance.status {
        InstanceStatus::Running => {}
        InstanceStatus::Halted { by, at, .. } => {
            out.push(blocker(None, None, format!("halted by {by} at {at}; `phasegate resume {}` lets it go on", instance.id)))
        }
        InstanceStatus::Completed { .. } => return out,
        InstanceStatus::Failed { reason, .. } => {
            out.push(blocker(None, None, format!("failed: {reason}; `phasegate retry {}` redrives it", instance.id)))
        }
        InstanceStatus::Cancelled { by, .. } => {
            out.push(blocker(None, None, format!("cancelled by {by}")));
            return out;
        }
        InstanceStatus::RolledBack { reason, at } => {
            out.push(blocker(None, None, format!("rolled back at {at}: {reason}")));
            return out;
        }
        InstanceStatus::RollingBack { since } => {
            let open = instance.rollback.as_ref().and_then(|r| r.steps.iter().find(|s| !s.state.status.is_done()));
            let what = match open {
                Some(step) => format!("compensation {} is {}", step.state.id, step.state.status.kind()),
                None => "every compensation is done".to_owned(),
            };
            out.push(blocker(None, None, format!("rolling back since {since}: {what}")));
            return out;
        }
        InstanceStatus::AwaitingDecision { phase, trigger, cause, approval, .. } => {
            if let (Some((_, plan)), GateStatus::AwaitingDecision { level, deadline, approvals, .. }) =
                (workflow.trigger(phase, trigger), &approval.status)
            {
                if let crate::plan::Action::HaltForApproval { then, .. } = &plan.action {
                    let needed = super::Target::halt_named(workflow, phase, trigger)
                        .and_then(|t| t.authority(*level))
                        .map(|a| a.still_needed(&approval.approvals_via()))
                        .unwrap_or_default();
                    let until = match deadline {
                        Some(deadline) => format!(" until {deadline} (then on_timeout applies)"),
                        None => String::new(),
                    };
                    let have = if approvals.is_empty() { String::new() } else { format!(" (approved so far by {})", approvals.join(", ")) };
                    out.push(blocker(
                        Some(phase),
                        Some(trigger),
                        format!(
                            "trigger {trigger} halted the instance: {cause}; approving runs its `{}` action, rejecting goes on without it; \
                             needs {needed} at level {level}{until}{have}",
                            then.name(),
                        ),
                    ));
                }
            }
        }
    }

    for &p in &workflow.phase_order {
        let plan = &workflow.phases[p];
        let phase = &instance.phases[p];
        let id = phase.id.as_str();
        match &phase.status {
            PhaseStatus::Passed { .. } => {}
            PhaseStatus::Pending => {
                let waiting: Vec<String> = plan
                    .after
                    .iter()
                    .filter(|&&u| !matches!(instance.phases[u].status, PhaseStatus::Passed { .. }))
                    .map(|&u| format!("{} ({})", instance.phases[u].id, instance.phases[u].status.kind()))
                    .collect();
                if !waiting.is_empty() {
                    out.push(blocker(Some(id), None, format!("phase {id} waits for {}", waiting.join(", "))));
                }
            }
            PhaseStatus::Running { .. } => {
                let busy: Vec<String> = phase
                    .tasks
                    .iter()
                    .zip(&plan.tasks)
                    .filter(|(t, task_plan)| !(task_plan.on_demand && matches!(t.status, TaskStatus::Pending)))
                    .map(|(t, _)| t)
                    .filter_map(|t| match &t.status {
                        TaskStatus::Dispatched { attempt, .. } => Some(format!("{} (attempt {attempt} running)", t.id)),
                        TaskStatus::RetryWaiting { attempt, due, .. } => Some(format!("{} (attempt {attempt} due {due})", t.id)),
                        TaskStatus::Waiting { due, .. } => Some(format!("{} (waiting until {due})", t.id)),
                        TaskStatus::Pending | TaskStatus::Cancelled { .. } | TaskStatus::Failed { .. } => {
                            Some(format!("{} ({})", t.id, t.status.kind()))
                        }
                        TaskStatus::Succeeded { .. } | TaskStatus::Skipped { .. } => None,
                    })
                    .collect();
                if !busy.is_empty() {
                    out.push(blocker(Some(id), None, format!("phase {id} has work to finish: {}", busy.join(", "))));
                }
            }
            PhaseStatus::AwaitingApproval { .. } | PhaseStatus::OnHold { .. } => {
                for (g, gate) in phase.gates.iter().enumerate() {
                    let criteria = gate
                        .evaluation
                        .as_ref()
                        .map(|e| {
                            e.criteria
                                .iter()
                                .filter(|c| c.verdict != Verdict::Pass)
                                .map(|c| {
                                    format!(
                                        "{} `{}` {}",
                                        match c.level {
                                            crate::plan::Level::Must => "must",
                                            crate::plan::Level::Should => "should",
                                        },
                                        c.label,
                                        match c.verdict {
                                            Verdict::Fail => "failed",
                                            Verdict::Inconclusive => "is inconclusive (missing evidence)",
                                            Verdict::Warning => "is in its warning band",
                                            Verdict::Pass => "passed",
                                        }
                                    )
                                })
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    let criteria = if criteria.is_empty() { String::new() } else { format!("; {}", criteria.join("; ")) };
                    match &gate.status {
                        GateStatus::AwaitingDecision { level, deadline, approvals, .. } => {
                            let Some(authority) = super::Target::gate_of(plan, g).authority(*level) else { continue };
                            let needed = authority.still_needed(&gate.approvals_via());
                            let until = match deadline {
                                Some(deadline) if *deadline > now => format!(" until {deadline}"),
                                Some(deadline) => format!(" (deadline {deadline} passed)"),
                                None => String::new(),
                            };
                            let have = if approvals.is_empty() { String::new() } else { format!(" (approved so far by {})", approvals.join(", ")) };
                            out.push(blocker(
                                Some(id),
                                Some(&gate.id),
                                format!("gate {id}/{} waits for approvals: {needed} at level {level}{until}{have}{criteria}", gate.id),
                            ));
                        }
                        GateStatus::OnHold { by, since } => out.push(blocker(
                            Some(id),
                            Some(&gate.id),
                            format!("gate {id}/{} is on hold since {since} (by {by}): remediate, then `phasegate retry {} [TASK]` re-runs tasks and evaluates the gate again{criteria}", gate.id, instance.id),
                        )),
                        GateStatus::Failed { reason, .. } => out.push(blocker(Some(id), Some(&gate.id), format!("gate {id}/{} failed: {reason}", gate.id))),
                        GateStatus::Pending | GateStatus::Passed { .. } => {}
                    }
                }
            }
            PhaseStatus::Failed { reason, .. } => out.push(blocker(Some(id), None, format!("phase {id} failed: {reason}"))),
        }
    }
    out
}

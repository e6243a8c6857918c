//! Deadlines: a phase's or the instance's overall time limit, and what
//! happens when it passes.

use super::super::gate::GateStatus;
use super::super::guards::{cancel_in_flight, phase_index, require_running, Cx, Handled};
use super::super::state::phase_active;
use super::super::{payload, InstanceStatus, PhaseStatus, RejectKind, Rejected};
use super::rollback;
use crate::model::DeadlineOutcome;

/// `DeadlinePassed`: the phase (or the instance) is still not done when its
/// deadline passes; the declared outcome is applied, once per attempt.
pub(crate) fn passed(cx: Cx<'_>, e: &payload::DeadlinePassed) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    require_running(instance, event)?;
    let (phase, deadline, since, acted) = match &e.phase {
        Some(id) => {
            let p = phase_index(workflow, event, id)?;
            let state = &instance.phases[p];
            if !phase_active(&state.status) {
                return Err(Rejected::new(
                    event,
                    format!("phase {id} is {}", state.status.kind()),
                    "only an active phase's deadline passes",
                ));
            }
            (Some(p), workflow.phases[p].deadline.as_ref(), state.started_at, state.deadline_passed)
        }
        None => (None, workflow.deadline.as_ref(), Some(instance.started_at), instance.deadline_passed),
    };
    let whose = e.phase.as_deref().map_or_else(|| "the instance".to_owned(), |id| format!("phase {id}"));
    let Some(deadline) = deadline else {
        return Err(Rejected::of(RejectKind::Unknown, event, format!("{whose} has no deadline"), "only a declared deadline passes"));
    };
    if acted {
        return Err(Rejected::new(event, format!("{whose}'s deadline already acted"), "a deadline acts once per attempt"));
    }
    if deadline.outcome != e.outcome {
        return Err(Rejected::new(
            event,
            format!("{whose}'s deadline has outcome {}", deadline.outcome.name()),
            "the outcome is the one the definition declares",
        ));
    }
    let due = since.map(|since| since.after(deadline.after_for(&instance.vars)));
    if due.is_none_or(|due| at < due) {
        return Err(Rejected::new(
            event,
            match due {
                Some(due) => format!("{whose}'s deadline is {due}"),
                None => format!("{whose} has not started"),
            },
            format!("it is {at}: the deadline has not passed"),
        ));
    }
    match phase {
        Some(p) => instance.phases[p].deadline_passed = true,
        None => instance.deadline_passed = true,
    }
    match e.outcome {
        DeadlineOutcome::Fail => {
            let failing: Vec<usize> = match phase {
                Some(p) => vec![p],
                None => (0..instance.phases.len()).filter(|&p| phase_active(&instance.phases[p].status)).collect(),
            };
            let mut effects = Vec::new();
            for p in failing {
                effects.extend(cancel_in_flight(instance, Some(p), &e.reason, at));
                let state = &mut instance.phases[p];
                // A decision still open cannot pass the phase any more: its gate fails with it,
                // so the gate's owner can hold it for remediation or `retry --phase` run it again.
                for gate in &mut state.gates {
                    match gate.status {
                        GateStatus::AwaitingDecision { .. } | GateStatus::OnHold { .. } => {
                            gate.status = GateStatus::Failed { at, reason: e.reason.clone() };
                        }
                        GateStatus::Pending | GateStatus::Passed { .. } | GateStatus::Failed { .. } => {}
                    }
                }
                state.status = PhaseStatus::Failed { reason: e.reason.clone(), at };
            }
            Ok(effects)
        }
        DeadlineOutcome::Rollback => {
            let by = format!("deadline:{}", e.phase.as_deref().unwrap_or("instance"));
            Ok(rollback::start(instance, workflow, &by, &e.reason, None, at))
        }
        DeadlineOutcome::Halt => {
            instance.status = InstanceStatus::Halted { by: "phasegate".to_owned(), reason: e.reason.clone(), cancel_running: false, at };
            Ok(Vec::new())
        }
    }
}

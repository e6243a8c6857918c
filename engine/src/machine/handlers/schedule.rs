//! Scheduled phases: the next cycle of a phase that passed.

use super::super::guards::{phase_index, require, Cx, Handled};
use super::super::{payload, InstanceStatus, PhaseStatus, Rejected};
use super::rollback;

/// `ScheduleFired`: a passed phase whose next cycle is due runs again as a new attempt.
pub(crate) fn fired(cx: Cx<'_>, e: &payload::ScheduleFired) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let phase = &e.phase;
    require(instance, event, matches!(instance.status, InstanceStatus::Running), "scheduled cycles start while the instance runs")?;
    let p = phase_index(workflow, event, phase)?;
    let state = &instance.phases[p];
    match (&state.status, state.next_cycle) {
        (PhaseStatus::Passed { .. }, Some(due)) if due <= at => {}
        (status, next) => {
            return Err(Rejected::new(
                event,
                format!("phase {phase} is {} (next cycle {next:?})", status.kind()),
                "a phase runs its next cycle once it passed and the cycle is due",
            ));
        }
    }
    let cycle = state.attempt + 1;
    let state = &mut instance.phases[p];
    rollback::reset_phase(state);
    state.entered = Some(format!("scheduled cycle {cycle}"));
    Ok(Vec::new())
}

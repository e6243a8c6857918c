//! `step`: applies one event to an instance.
//!
//! `step` is the one dispatcher: every event is named here once, and goes
//! to the handler of its concern in [`handlers`](super::handlers) with its
//! payload. Every handler checks first and mutates after, so a
//! [`Rejected`] event leaves the state exactly as it was (a property test
//! holds it to that). Conceptually `step` is `(state, event, now) ->
//! Result<(state, effects), Rejected>`; it mutates in place because copying
//! a thousand-task state for every event would make long workflows
//! quadratic.

use super::event::EventKind;
use super::guards::{Cx, Effect};
use super::handlers::{deadline, gate, operator, phase, rollback, schedule, task, trigger, watch};
use super::table;
use super::{payload, Event, Instance, Record, RejectKind, Rejected, Timestamp};
use crate::plan::Workflow;

/// Applies `event` (which happened at `at`) to `instance`.
pub fn step(instance: &mut Instance, workflow: &Workflow, event: &Event, at: Timestamp) -> Result<Vec<Effect>, Rejected> {
    // Debug builds check every accepted event against the transition table.
    let before = cfg!(debug_assertions).then(|| table::Kinds::of(instance));
    let cx = Cx { instance, workflow, event, at };
    let effects = match event {
        Event::InstanceStarted(_) => {
            return Err(Rejected::new(event, format!("instance {} already started", cx.instance.id), "an instance starts once"));
        }
        Event::PhaseStarted(e) => phase::started(cx, e)?,
        Event::PhaseCompleted(e) => phase::completed(cx, e)?,
        Event::PhaseFailed(e) => phase::failed(cx, e)?,
        Event::InstanceCompleted => phase::instance_completed(cx)?,
        Event::InstanceFailed(e) => phase::instance_failed(cx, e)?,

        Event::TaskDispatched(e) => task::dispatched(cx, e)?,
        Event::TaskSucceeded(e) => task::ended(cx, task::Ended::Succeeded(e))?,
        Event::TaskFailed(e) => task::ended(cx, task::Ended::Failed(e))?,
        Event::TaskCancelled(e) => task::ended(cx, task::Ended::Cancelled(e))?,
        Event::RetryScheduled(e) => task::retry_scheduled(cx, e)?,
        Event::TaskSkipped(e) => task::skipped(cx, e)?,
        Event::WaitStarted(e) => task::wait_started(cx, e)?,
        Event::WaitElapsed(e) => task::wait_elapsed(cx, e)?,
        Event::DeadlinePassed(e) => deadline::passed(cx, e)?,

        Event::GateEvaluated(e) => gate::evaluated(cx, e)?,
        Event::DecisionRecorded(e) => gate::decided(cx, e)?,
        Event::GateTimedOut(e) => gate::timed_out(cx, e)?,
        Event::BaselinesLoaded(e) => gate::baselines_loaded(cx, e)?,

        Event::Halted(e) => operator::halted(cx, e)?,
        Event::Resumed(e) => operator::resumed(cx, e)?,
        Event::Cancelled(e) => operator::cancelled(cx, e)?,
        Event::Redriven(e) => operator::redriven(cx, e)?,
        Event::SignalReceived(e) => operator::signal(cx, e)?,

        Event::WatchSampled(e) => watch::sampled(cx, e)?,
        Event::WatchInconclusive(e) => watch::inconclusive(cx, e)?,

        Event::TriggerFired(e) => trigger::fired(cx, e)?,
        Event::TriggerSkipped(e) => trigger::skipped(cx, e)?,
        Event::TriggerDecided(e) => trigger::decided(cx, e)?,
        Event::TriggerTimedOut(e) => trigger::timed_out(cx, e)?,

        Event::RollbackStarted(e) => rollback::started(cx, e)?,
        Event::CompensationDispatched(e) => rollback::dispatched(cx, e)?,
        Event::CompensationSucceeded(e) => rollback::ended(cx, rollback::Ended::Succeeded(e))?,
        Event::CompensationFailed(e) => rollback::ended(cx, rollback::Ended::Failed(e))?,
        Event::CompensationRetryScheduled(e) => rollback::retry_scheduled(cx, e)?,
        Event::RollbackCompleted => rollback::completed(cx)?,

        Event::ScheduleFired(e) => schedule::fired(cx, e)?,
    };
    instance.updated_at = at;
    if let Some(before) = before {
        if let Err(undeclared) = table::check(&before, &table::Kinds::of(instance), EventKind::from(event), Some(subject(event))) {
            panic!("step accepted {}, but {undeclared}", event.describe());
        }
    }
    Ok(effects)
}

/// The phase and gate (or trigger) an event names, for the table check.
fn subject(event: &Event) -> (Option<&str>, Option<&str>) {
    match event {
        Event::GateEvaluated(e) => (Some(&e.phase), Some(&e.gate)),
        Event::DecisionRecorded(e) => (Some(&e.phase), Some(&e.gate)),
        Event::GateTimedOut(e) => (Some(&e.phase), Some(&e.gate)),
        Event::PhaseStarted(e) => (Some(&e.phase), None),
        Event::PhaseCompleted(e) => (Some(&e.phase), None),
        Event::PhaseFailed(e) => (Some(&e.phase), None),
        Event::TaskDispatched(e) => (Some(&e.phase), None),
        Event::TaskSucceeded(e) => (Some(&e.phase), None),
        Event::TaskFailed(e) => (Some(&e.phase), None),
        Event::TaskCancelled(e) => (Some(&e.phase), None),
        Event::RetryScheduled(e) => (Some(&e.phase), None),
        Event::TaskSkipped(e) => (Some(&e.phase), None),
        Event::WaitStarted(e) => (Some(&e.phase), None),
        Event::WaitElapsed(e) => (Some(&e.phase), None),
        Event::DeadlinePassed(e) => (e.phase.as_deref(), None),
        Event::WatchSampled(e) => (Some(&e.phase), None),
        Event::WatchInconclusive(e) => (Some(&e.phase), None),
        Event::TriggerFired(e) => (Some(&e.phase), None),
        Event::TriggerSkipped(e) => (Some(&e.phase), None),
        Event::TriggerDecided(e) => (Some(&e.phase), None),
        Event::TriggerTimedOut(e) => (Some(&e.phase), None),
        Event::ScheduleFired(e) => (Some(&e.phase), None),
        Event::InstanceStarted(_)
        | Event::InstanceCompleted
        | Event::InstanceFailed(_)
        | Event::Halted(_)
        | Event::Resumed(_)
        | Event::Cancelled(_)
        | Event::Redriven(_)
        | Event::SignalReceived(_)
        | Event::RollbackStarted(_)
        | Event::CompensationDispatched(_)
        | Event::CompensationSucceeded(_)
        | Event::CompensationFailed(_)
        | Event::CompensationRetryScheduled(_)
        | Event::RollbackCompleted
        | Event::BaselinesLoaded(_) => (None, None),
    }
}

/// Rebuilds an instance from its whole log (the first record must be
/// `InstanceStarted`). Used to check snapshots and by tests; the runtime loads
/// from a snapshot plus the events after it.
pub fn replay(id: &str, workflow: &Workflow, records: &[Record]) -> Result<Instance, Rejected> {
    let mut records = records.iter();
    let Some(first) = records.next() else {
        return Err(Rejected {
            kind: RejectKind::WrongState,
            action: "replay".to_owned(),
            event: "(nothing)".to_owned(),
            state: format!("instance {id} has no events"),
            reason: "a log starts with InstanceStarted".to_owned(),
        });
    };
    let mut instance = start(id, workflow, first.event(), first.at())?;
    instance.seq = first.seq();
    for record in records {
        step(&mut instance, workflow, record.event(), record.at())?;
        instance.seq = record.seq();
    }
    Ok(instance)
}

/// Creates an instance from its `InstanceStarted` event.
pub(crate) fn start(id: &str, workflow: &Workflow, event: &Event, at: Timestamp) -> Result<Instance, Rejected> {
    match event {
        Event::InstanceStarted(payload::InstanceStarted { workflow: name, definition_hash, vars, started_by }) => {
            if name != &workflow.name {
                return Err(Rejected::new(
                    event,
                    format!("the pinned definition is workflow `{}`", workflow.name),
                    format!("the event names workflow `{name}`"),
                ));
            }
            #[cfg(test)]
            table::mark(
                table::Level::Instance,
                table::State::Start,
                EventKind::InstanceStarted,
                table::State::Instance(super::state::InstanceKind::Running),
            );
            Ok(Instance::new(id, workflow, definition_hash, vars.clone(), started_by, at))
        }
        other => Err(Rejected::new(other, format!("instance {id} has not started"), "a log starts with InstanceStarted")),
    }
}

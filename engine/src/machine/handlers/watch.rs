//! Watches: samples, the breach clock, consecutive failures, and missing data.

use serde_json::Value;

use super::super::guards::{require, watch_index, Cx, Handled};
use super::super::{payload, Event, Instance, InstanceStatus, Rejected, Sample, SampleVerdict, WATCH_WINDOW};
use super::trigger;
use crate::machine::state::reaction_live;
use crate::model::NoDataPolicy;
use crate::plan::TriggerOn;
use crate::plan::Workflow;

/// What a watch's agent answered for one sample.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleResult {
    /// It answered (the value is `value`, or the output itself).
    Answered(Value),
    /// It failed: the target could not be reached or refused (its message).
    Failed(String),
    /// It did not answer within the sample's timeout, or was stopped: slow
    /// evidence, which is missing evidence, not a target that is down.
    TimedOut(String),
}

/// The `WatchSampled` event for what watch `w` of phase `p` returned: its
/// value and what that means for the breach condition. A missing or
/// non-numeric value, an agent error, or a condition that cannot be applied
/// is "no data", with the reason kept verbatim (the `no_data` policy then
/// decides what it counts as).
pub fn sample_event(instance: &Instance, workflow: &Workflow, p: usize, w: usize, result: &SampleResult) -> Event {
    let (phase, watch) = (&workflow.phases[p], &workflow.phases[p].watches[w]);
    let number = |value: &Value| value.as_f64().filter(|v| v.is_finite());
    let unreachable = matches!(result, SampleResult::Failed(_));
    let (value, detail) = match result {
        SampleResult::Failed(error) | SampleResult::TimedOut(error) => (None, error.clone()),
        SampleResult::Answered(output) => match output.get("value").or(Some(output)).and_then(number) {
            Some(value) => (Some(value), String::new()),
            None if output.get("value").is_some_and(Value::is_null) => (None, "the query returned no data".to_owned()),
            None => (None, "the agent's output has no numeric `value`".to_owned()),
        },
    };
    let (verdict, detail) = match value {
        None => (SampleVerdict::NoData, detail),
        Some(value) => {
            let mut evidence = super::super::evidence(instance);
            evidence.insert("value".to_owned(), Value::from(value));
            match watch.condition.evaluate(&evidence) {
                crate::expr::Outcome::True => (SampleVerdict::Breach, String::new()),
                crate::expr::Outcome::False => (SampleVerdict::Ok, String::new()),
                crate::expr::Outcome::Missing(why) | crate::expr::Outcome::Error(why) => {
                    (SampleVerdict::NoData, format!("`{}` could not be evaluated: {why}", watch.condition.source()))
                }
            }
        }
    };
    Event::WatchSampled(payload::WatchSampled { phase: phase.id.clone(), watch: watch.id.clone(), value, verdict, detail, unreachable })
}

/// `WatchSampled`: a sample moves the breach clock; a breach held for the
/// watch's `for` (or its run of consecutive failures) queues its triggers;
/// missing data for as long makes the watch inconclusive when its
/// `no_data` policy says so.
pub(crate) fn sampled(cx: Cx<'_>, e: &payload::WatchSampled) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let (phase, watch, value) = (&e.phase, &e.watch, e.value);
    require(
        instance,
        event,
        matches!(instance.status, InstanceStatus::Running | InstanceStatus::AwaitingDecision { .. }),
        "watches sample while the instance runs or a trigger's halt waits for a decision",
    )?;
    let (p, w) = watch_index(workflow, event, phase, watch)?;
    if !reaction_live(instance, p, workflow.phases[p].watches[w].span.as_ref()) {
        return Err(Rejected::new(
            event,
            format!("phase {phase} is {}", instance.phases[p].status.kind()),
            "a phase's watches sample while their phase is active, a workflow-level watch during its span",
        ));
    }
    let plan = &workflow.phases[p].watches[w];
    let effective = match (e.verdict, plan.no_data) {
        (SampleVerdict::NoData, NoDataPolicy::Breach) => SampleVerdict::Breach,
        (SampleVerdict::NoData, NoDataPolicy::BreachIfUnreachable) if e.unreachable => SampleVerdict::Breach,
        (SampleVerdict::NoData, NoDataPolicy::Ok) => SampleVerdict::Ok,
        (other, _) => other,
    };
    let sustain = u64::try_from(plan.sustain_for(&instance.vars).as_millis()).unwrap_or(u64::MAX);
    let state = &mut instance.phases[p].watches[w];
    state.taken += 1;
    state.samples.push(Sample { at, value, verdict: effective });
    if state.samples.len() > WATCH_WINDOW {
        state.samples.remove(0);
    }
    let mut fired = None;
    let mut inconclusive = None;
    match effective {
        SampleVerdict::Breach => {
            state.breaching_run += 1;
            let since = *state.breaching_since.get_or_insert(at);
            state.no_data_since = None;
            state.no_data_run = 0;
            state.inconclusive = false;
            state.no_data_reason = None;
            let lasted = at.since(since);
            let by_count = plan.consecutive_failures.is_some_and(|n| state.breaching_run >= n);
            if !state.firing && (lasted >= sustain || by_count) {
                state.firing = true;
                let shown = value.map_or_else(|| "no data".to_owned(), |v| v.to_string());
                let why = if by_count && lasted < sustain {
                    format!("{} breaching samples in a row", state.breaching_run)
                } else {
                    // Whole seconds: sample timing jitter is not news.
                    let shown = if lasted >= 1_000 { lasted / 1_000 * 1_000 } else { lasted };
                    format!("breaching for {}", crate::plan::format_duration(std::time::Duration::from_millis(shown)))
                };
                fired = Some(format!("watch {watch} fired: `{}` held ({why}; latest value {shown})", plan.condition.source()));
            }
        }
        SampleVerdict::Ok => {
            state.breaching_run = 0;
            state.breaching_since = None;
            state.firing = false;
            state.no_data_since = None;
            state.no_data_run = 0;
            state.inconclusive = false;
            state.no_data_reason = None;
        }
        SampleVerdict::NoData => {
            state.no_data_run += 1;
            let since = *state.no_data_since.get_or_insert(at);
            let by_count = plan.consecutive_failures.is_some_and(|n| state.no_data_run >= n);
            if !state.inconclusive && (at.since(since) >= sustain || by_count) {
                state.inconclusive = true;
                let detail = if e.detail.is_empty() { String::new() } else { format!(" ({})", e.detail) };
                inconclusive = Some(format!(
                    "watch {watch} has had no data since {since}{detail}; no_data = inconclusive asks a person: \
                     check the metric, then `phasegate resume {id}` to go on or `phasegate rollback {id}` to roll back",
                    id = instance.id
                ));
            }
        }
    }
    if let Some(cause) = fired {
        trigger::queue(instance, workflow, trigger::Scope::Watch(p), |on| *on == TriggerOn::Watch(w), &cause);
    }
    if let Some(reason) = inconclusive {
        instance.phases[p].watches[w].no_data_reason = Some(reason);
    }
    Ok(Vec::new())
}

/// `WatchInconclusive`: missing data lasted as long as the watch's `for`,
/// so the instance halts for a person.
pub(crate) fn inconclusive(cx: Cx<'_>, e: &payload::WatchInconclusive) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    require(instance, event, matches!(instance.status, InstanceStatus::Running), "only a running instance halts for missing data")?;
    let (p, w) = watch_index(workflow, event, &e.phase, &e.watch)?;
    let Some(reason) = instance.phases[p].watches[w].no_data_reason.take() else {
        return Err(Rejected::new(
            event,
            format!("watch {} has data", e.watch),
            "a watch is inconclusive after missing data for its `for`",
        ));
    };
    instance.status = InstanceStatus::Halted { by: "phasegate".to_owned(), reason, cancel_running: false, at };
    Ok(Vec::new())
}

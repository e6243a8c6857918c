//! Notifications (a gate waits, escalates or times out; a trigger fires or
//! halts for a decision) as durable work, like task attempts.
//!
//! When a batch carries a notification effect, the notice (its key and the
//! payload, built from the state at that moment) is put in the instance's
//! outbox in the same batch. Only once the batch is durable is it sent,
//! through its step's agent, retried by the step's policy, counted as work
//! in flight (so `run --until-idle` waits for it); when it is delivered, or
//! fails for good, its outbox entry is deleted. A process that dies first
//! sends it again at recovery with the same idempotency key. A notification
//! never changes the decision it announces, so it records no event.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::machine::{GateStatus, Instance};
use crate::plan::{Action, Step, Workflow};

/// What a notice announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    /// A gate, by index within its phase.
    Gate(usize),
    /// A trigger, by index within its phase.
    Trigger(usize),
}

/// One notification to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Notice {
    /// The idempotency key (also its outbox key): unique per gate or
    /// trigger, what happened, level, phase attempt and the event it follows.
    pub(crate) key: String,
    /// The phase index.
    pub(crate) phase: usize,
    /// The gate or trigger.
    pub(crate) source: Source,
    /// What the agent is sent (`json` and `stdin` unless the step sets them).
    pub(crate) payload: Value,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    notify: Notice,
}

impl Notice {
    /// The outbox value.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&Stored { notify: self.clone() }).unwrap_or_default()
    }

    /// A notice from an outbox value, if it is one.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Notice> {
        serde_json::from_slice::<Stored>(bytes).ok().map(|stored| stored.notify)
    }

    /// The step that delivers it, from the pinned definition: the gate's
    /// or halt's own `notify`, else the workflow's.
    pub(crate) fn step(&self, workflow: &Workflow) -> Option<Step> {
        let phase = workflow.phases.get(self.phase)?;
        let own = match self.source {
            Source::Gate(g) => phase.gates.get(g)?.approval.as_ref()?.notify.clone(),
            Source::Trigger(k) => match &phase.triggers.get(k)?.action {
                Action::Notify(step) => return Some(step.clone()),
                Action::HaltForApproval { approval, then } => match (approval.notify.as_ref(), then.as_ref()) {
                    (Some(step), _) => Some(step.clone()),
                    (None, Action::Notify(step)) => Some(step.clone()),
                    (None, _) => None,
                },
                Action::Rollback { .. } | Action::Goto { .. } | Action::Run { .. } => None,
            },
        };
        own.or_else(|| workflow.notify.clone())
    }
}

fn slug(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// The notice of gate `g` of phase `p`: `what` happened to it.
pub(crate) fn gate(instance: &Instance, workflow: &Workflow, p: usize, g: usize, what: &str) -> Option<Notice> {
    let plan = &workflow.phases[p];
    plan.gates[g].approval.as_ref()?.notify.as_ref().or(workflow.notify.as_ref())?;
    let state = &instance.phases[p].gates[g];
    let (level, deadline) = match &state.status {
        GateStatus::AwaitingDecision { level, deadline, .. } => (Some(*level), *deadline),
        _ => (None, None),
    };
    let authority = level.and_then(|l| crate::machine::Target::gate(workflow, p, g).authority(l));
    let approvers: Vec<String> = authority.map(|a| a.approvers().iter().map(ToString::to_string).collect()).unwrap_or_default();
    let key = format!(
        "notify/{}/{}/{}/{}/{}/level-{}/event-{}",
        instance.id,
        plan.id,
        instance.phases[p].attempt,
        plan.gates[g].id,
        slug(what),
        level.map_or_else(|| "none".to_owned(), |l| l.to_string()),
        instance.seq
    );
    let payload = json!({
        "key": key,
        "instance": instance.id,
        "workflow": instance.workflow,
        "phase": plan.id,
        "gate": plan.gates[g].id,
        "what": what,
        "status": state.status.kind(),
        "level": level,
        "deadline": deadline.map(|d| d.to_string()),
        "approvers": approvers,
        "decide": format!("phasegate approve {} {}/{} --comment TEXT", instance.id, plan.id, plan.gates[g].id),
        "text": format!("phasegate: {} gate {}/{} {what}", instance.id, plan.id, plan.gates[g].id),
    });
    Some(Notice { key, phase: p, source: Source::Gate(g), payload })
}

/// The notice of trigger `k` of phase `p`: `what` happened (it fired, its
/// halt awaits a decision, escalated or timed out).
pub(crate) fn trigger(instance: &Instance, workflow: &Workflow, p: usize, k: usize, what: &str) -> Option<Notice> {
    let plan = &workflow.phases[p];
    let trigger = &plan.triggers[k];
    let key = format!(
        "notify/{}/{}/{}/trigger-{}/{}/event-{}",
        instance.id,
        plan.id,
        instance.phases[p].attempt,
        trigger.id,
        slug(what),
        instance.seq
    );
    // A halt waiting for a person says who may decide and how; an action taken says what it did.
    let waiting = match &instance.status {
        crate::machine::InstanceStatus::AwaitingDecision { phase, trigger: id, approval, .. } if *phase == plan.id && *id == trigger.id => {
            match &approval.status {
                GateStatus::AwaitingDecision { level, deadline, .. } => Some((*level, *deadline)),
                _ => None,
            }
        }
        _ => None,
    };
    let approvers: Vec<String> = waiting
        .and_then(|(level, _)| crate::machine::Target::halt(workflow, p, k)?.authority(level))
        .map(|a| a.approvers().iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let mut payload = json!({
        "key": key,
        "instance": instance.id,
        "workflow": instance.workflow,
        "phase": plan.id,
        "trigger": trigger.id,
        "what": what,
        "status": instance.effective_status(),
        "text": format!("phasegate: {} trigger {}/{}: {what}", instance.id, plan.id, trigger.id),
    });
    if let Some((level, deadline)) = waiting {
        payload["level"] = json!(level);
        payload["deadline"] = json!(deadline.map(|d| d.to_string()));
        payload["approvers"] = json!(approvers);
        payload["decide"] = json!(format!("phasegate approve {} {}/{} --comment TEXT", instance.id, plan.id, trigger.id));
    }
    let notice = Notice { key: key.clone(), phase: p, source: Source::Trigger(k), payload };
    notice.step(workflow).map(|_| notice)
}

#[cfg(test)]
mod tests {
    use crate::machine::{payload, replay, Event, Record, Timestamp};
    use crate::model::{Format, Source};
    use crate::plan::{self, AgentNames};

    /// Regression (hardening issue): the "escalated" and "failed closed"
    /// notifications of one gate shared one idempotency key, with a space in it.
    #[test]
    fn regression_notifications_of_one_gate_have_distinct_keys_without_spaces() {
        let toml = "name = \"w\"\n[[phases]]\nid = \"p\"\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n[[phases.gates]]\nid = \"g\"\n\
                    [phases.gates.approval]\napprovers = [\"a\"]\nnotify = { agent = \"noop\" }\n";
        let workflow = plan::load_source(&Source::from_text(toml, Format::Toml), &AgentNames::builtin()).expect("valid");
        let started = Event::InstanceStarted(payload::InstanceStarted {
            workflow: "w".into(),
            definition_hash: "h".into(),
            vars: Default::default(),
            started_by: "s".into(),
        });
        let instance = replay("i", &workflow, &[Record::new(1, Timestamp(1), started)]).expect("starts");
        let keys: Vec<String> = ["awaiting_decision", "escalated", "timed out (failed closed)"]
            .iter()
            .map(|what| super::gate(&instance, &workflow, 0, 0, what).expect("a notice").key)
            .collect();
        assert!(keys.iter().all(|k| !k.contains(' ')), "{keys:?}");
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
    }
}

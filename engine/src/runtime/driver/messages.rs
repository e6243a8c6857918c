//! What the driver receives (commands, results, timers, acknowledgements),
//! what it answers callers once a change is durable, and what subscribers see.

use super::*;

/// An event that became durable, as subscribers see it.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The instance.
    pub instance: String,
    /// The record.
    pub record: Record,
    /// The instance's effective status once the batch holding this event
    /// was durable (a batch can hold several events).
    pub status: Option<crate::machine::EffectiveStatus>,
    /// For task events, the agent that runs the task (for per-agent metrics).
    pub agent: Option<String>,
    /// For a `TriggerFired` event, what the trigger reacts to (a watch
    /// firing, a failure, a signal), from the pinned definition.
    pub trigger_on: Option<crate::plan::TriggerSource>,
}

/// What a persisted change answers, once durable.
pub(crate) enum Answer {
    None,
    Started(Reply<String>, String),
    Operated(Reply<u64>, u64),
    Decided(Reply<crate::runtime::DecisionOutcome>, crate::runtime::DecisionOutcome),
    Advanced(Reply<crate::runtime::AdvanceReport>, usize),
}

impl Answer {
    pub(super) fn fail(self, error: Error) {
        match self {
            Answer::None => {}
            Answer::Started(reply, _) => drop(reply.send(Err(error))),
            Answer::Operated(reply, _) => drop(reply.send(Err(error))),
            Answer::Decided(reply, _) => drop(reply.send(Err(error))),
            Answer::Advanced(reply, _) => drop(reply.send(Err(error))),
        }
    }

    /// Answers once the change is durable (or there was nothing to write).
    pub(super) fn succeed(self, cell: Option<&Cell>, appended: usize, now: Timestamp) {
        match self {
            Answer::None => {}
            Answer::Started(reply, id) => drop(reply.send(Ok(id))),
            Answer::Operated(reply, seq) => drop(reply.send(Ok(seq))),
            Answer::Decided(reply, mut outcome) => {
                if let Some(cell) = cell {
                    outcome.seq = cell.instance.seq;
                    outcome.instance_status = Some(cell.instance.effective_status());
                    outcome.gate_status = gate_status(&cell.instance, &outcome.phase, &outcome.gate);
                }
                drop(reply.send(Ok(outcome)));
            }
            Answer::Advanced(reply, before) => {
                let report = match cell {
                    Some(cell) => crate::runtime::AdvanceReport {
                        appended: before + appended,
                        status: Some(cell.instance.effective_status()),
                        blockers: crate::machine::blockers(&cell.instance, &cell.workflow, now),
                    },
                    None => crate::runtime::AdvanceReport { appended: before + appended, status: None, blockers: Vec::new() },
                };
                drop(reply.send(Ok(report)));
            }
        }
    }
}

/// How an attempt ended.
pub(crate) enum Outcome {
    Succeeded {
        output: Value,
        duration_ms: u64,
    },
    /// `timed_out`: the attempt hit its timeout (slow, which for a watch
    /// sample is missing evidence, not an unreachable target).
    Failed {
        error: String,
        retryable: bool,
        timed_out: bool,
    },
    Cancelled {
        reason: String,
    },
}

pub(crate) enum Message {
    Start {
        id: String,
        workflow: Arc<Workflow>,
        hash: String,
        vars: Map<String, Value>,
        started_by: String,
        baselines: BTreeMap<String, crate::machine::Baseline>,
        reply: Reply<String>,
    },
    Operate {
        id: String,
        event: Event,
        reply: Reply<u64>,
    },
    Finished {
        id: String,
        phase: usize,
        task: usize,
        attempt: u32,
        key: String,
        outcome: Outcome,
    },
    Compensated {
        id: String,
        step: usize,
        attempt: u32,
        key: String,
        outcome: Outcome,
    },
    Sampled {
        id: String,
        phase: usize,
        watch: usize,
        result: crate::machine::SampleResult,
    },
    Persisted {
        id: String,
        result: phasegate_store::Result<()>,
        effects: Vec<Effect>,
        records: Vec<Record>,
        notices: Vec<crate::runtime::notices::Notice>,
        answer: Answer,
    },
    /// A notification was delivered, or failed for good: its outbox entry goes.
    Notified {
        id: String,
        key: String,
    },
    Decide {
        id: String,
        gate: Option<String>,
        request: crate::runtime::DecisionRequest,
        reply: Reply<crate::runtime::DecisionOutcome>,
    },
    Advance {
        id: String,
        reply: Reply<crate::runtime::AdvanceReport>,
    },
    Barrier {
        reply: Reply<()>,
    },
    /// Fire what is due by the clock now (a manual clock moved).
    Wake {
        reply: Reply<()>,
    },
    Shutdown {
        reply: Reply<()>,
    },
    /// What the store leases to this node changed (a cluster node).
    Ownership,
}

//! The runtime's single owner of in-memory instance state.
//!
//! One tokio task receives every message (commands, task results, write
//! acknowledgements, timers) and is the only code that mutates an instance.
//! A change is applied in memory, submitted to the store, and its effects run
//! only when the store acknowledges the flush. The driver does not wait for
//! that acknowledgement: it goes on with other instances meanwhile, so many
//! instances' writes share one flush.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::codec::{self, Summary, TIMER_INDEX};
use super::{load, Error, Mode};
use crate::machine::{self, decide, step, Effect, Event, Instance, InstanceStatus, Record, TaskStatus, Timestamp};
use crate::plan::{AgentNames, Workflow};
use phasegate_agents::{Registry, TaskContext, TaskRequest, MAX_OUTPUT_BYTES};
use phasegate_store::{Batch, IndexOp, OutboxOp, Store};

/// Write a snapshot at least this often (in events), so loading an instance
/// replays a bounded tail.
const SNAPSHOT_EVERY: u64 = 256;

/// What the engine shares between the driver, the API and running tasks.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Registry,
    pub(crate) agent_names: AgentNames,
    pub(crate) definitions: load::Definitions,
    pub(crate) roles: crate::machine::Roles,
    pub(crate) events: broadcast::Sender<Notification>,
    pub(crate) global_permits: Arc<Semaphore>,
    pub(crate) agent_permits: HashMap<String, Arc<Semaphore>>,
    /// Why the engine no longer works, once it does not: its driver task
    /// stopped, or its store refuses writes. Never cleared.
    pub(crate) failure: watch::Sender<Option<String>>,
}

impl Shared {
    /// Records the first reason the engine stopped working.
    pub(crate) fn fail(&self, why: String) {
        self.failure.send_if_modified(|failure| {
            if failure.is_some() {
                return false;
            }
            error!(reason = %why, "the engine is unhealthy");
            *failure = Some(why);
            true
        });
    }
}

/// An event that became durable, as subscribers see it.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The instance.
    pub instance: String,
    /// The record.
    pub record: Record,
    /// The instance's effective status once the batch holding this event
    /// was durable (a batch can hold several events).
    pub status: &'static str,
    /// For task events, the agent that runs the task (for per-agent metrics).
    pub agent: Option<String>,
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a persisted change answers, once durable.
pub(crate) enum Answer {
    None,
    Started(Reply<String>, String),
    Operated(Reply<u64>, u64),
    Decided(Reply<super::DecisionOutcome>, super::DecisionOutcome),
    Advanced(Reply<super::AdvanceReport>, usize),
}

impl Answer {
    fn fail(self, error: Error) {
        match self {
            Answer::None => {}
            Answer::Started(reply, _) => drop(reply.send(Err(error))),
            Answer::Operated(reply, _) => drop(reply.send(Err(error))),
            Answer::Decided(reply, _) => drop(reply.send(Err(error))),
            Answer::Advanced(reply, _) => drop(reply.send(Err(error))),
        }
    }

    /// Answers once the change is durable (or there was nothing to write).
    fn succeed(self, cell: Option<&Cell>, appended: usize) {
        match self {
            Answer::None => {}
            Answer::Started(reply, id) => drop(reply.send(Ok(id))),
            Answer::Operated(reply, seq) => drop(reply.send(Ok(seq))),
            Answer::Decided(reply, mut outcome) => {
                if let Some(cell) = cell {
                    outcome.seq = cell.instance.seq;
                    outcome.instance_status = cell.instance.effective_status().to_owned();
                    outcome.gate_status = gate_status(&cell.instance, &outcome.phase, &outcome.gate);
                }
                drop(reply.send(Ok(outcome)));
            }
            Answer::Advanced(reply, before) => {
                let report = match cell {
                    Some(cell) => super::AdvanceReport {
                        appended: before + appended,
                        status: cell.instance.effective_status().to_owned(),
                        blockers: crate::machine::blockers(&cell.instance, &cell.workflow, Timestamp::now()),
                    },
                    None => super::AdvanceReport { appended: before + appended, status: "unknown".to_owned(), blockers: Vec::new() },
                };
                drop(reply.send(Ok(report)));
            }
        }
    }
}

fn gate_status(instance: &Instance, phase: &str, gate: &str) -> String {
    if let InstanceStatus::AwaitingDecision { phase: waiting, trigger, approval, .. } = &instance.status {
        if waiting == phase && trigger == gate {
            return approval.status.kind().to_owned();
        }
    }
    let is_gate = instance.phases.iter().any(|p| p.id == phase && p.gates.iter().any(|g| g.id == gate));
    if !is_gate {
        // A trigger's halt that is no longer awaited was decided.
        return "decided".to_owned();
    }
    instance
        .phases
        .iter()
        .find(|p| p.id == phase)
        .and_then(|p| p.gates.iter().find(|g| g.id == gate))
        .map_or_else(|| "unknown".to_owned(), |g| g.status.kind().to_owned())
}

/// How an attempt ended.
pub(crate) enum Outcome {
    Succeeded { output: Value, duration_ms: u64 },
    Failed { error: String, retryable: bool },
    Cancelled { reason: String },
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
        result: Result<Value, String>,
    },
    Persisted {
        id: String,
        result: phasegate_store::Result<()>,
        effects: Vec<Effect>,
        records: Vec<Record>,
        notices: Vec<super::notices::Notice>,
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
        request: super::DecisionRequest,
        reply: Reply<super::DecisionOutcome>,
    },
    Advance {
        id: String,
        reply: Reply<super::AdvanceReport>,
    },
    Barrier {
        reply: Reply<()>,
    },
    Shutdown {
        reply: Reply<()>,
    },
}

struct Cell {
    instance: Instance,
    workflow: Arc<Workflow>,
    /// The seq, status and wake time as of the last batch submitted.
    written_seq: u64,
    written_status: String,
    written_wake: Option<Timestamp>,
    /// The approval index entries as of the last batch submitted.
    written_approvals: BTreeMap<Vec<u8>, Vec<u8>>,
    snapshot_seq: u64,
    wake: Option<Timestamp>,
    pending_writes: usize,
}

impl Cell {
    /// Applies one event through the machine and records it under the next
    /// sequence number, collecting its effects.
    fn apply(
        &mut self,
        event: Event,
        now: Timestamp,
        records: &mut Vec<Record>,
        effects: &mut Vec<Effect>,
    ) -> Result<(), crate::machine::Rejected> {
        let more = step(&mut self.instance, &self.workflow, &event, now)?;
        self.instance.seq += 1;
        records.push(Record::new(self.instance.seq, now, event));
        effects.extend(more);
        Ok(())
    }
}

struct Running {
    token: CancellationToken,
    abort: tokio::task::AbortHandle,
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    mode: Mode,
    cells: HashMap<String, Cell>,
    running: HashMap<String, Running>,
    /// Watches with a sample being taken: `instance/phase/watch`.
    sampling: BTreeSet<String>,
    timers: BTreeSet<(Timestamp, String)>,
    /// The earliest timer of an instance not in memory, if known.
    stored_timer: Option<Timestamp>,
    sender: mpsc::UnboundedSender<Message>,
    receiver: mpsc::UnboundedReceiver<Message>,
    active: watch::Sender<usize>,
    shutdown: Option<Reply<()>>,
    /// Request ids whose decision's batch is not durable yet.
    requests_in_flight: HashMap<String, super::requests::RequestUse>,
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        mode: Mode,
        sender: mpsc::UnboundedSender<Message>,
        receiver: mpsc::UnboundedReceiver<Message>,
        active: watch::Sender<usize>,
    ) -> Self {
        Self {
            shared,
            mode,
            cells: HashMap::new(),
            running: HashMap::new(),
            sampling: BTreeSet::new(),
            timers: BTreeSet::new(),
            stored_timer: None,
            sender,
            receiver,
            active,
            shutdown: None,
            requests_in_flight: HashMap::new(),
        }
    }

    /// Loads every instance with work to resume: running ones, ones with
    /// effects in their outbox (attempts in flight when the last process
    /// stopped), and ones whose timer is due. Attempts in flight are
    /// dispatched again with their idempotency key, or recorded as cancelled
    /// when the instance was halted with cancellation, failed or cancelled.
    pub(crate) fn recover(&mut self) {
        let store = Arc::clone(&self.shared.store);
        let mut ids: BTreeSet<String> = BTreeSet::new();
        for status in ["running", "rolling_back"] {
            match store.instances_with_status(status) {
                Ok(found) => ids.extend(found),
                Err(error) => error!(%error, status, "recovery: cannot list instances"),
            }
        }
        match store.outbox_instances() {
            Ok(pending) => ids.extend(pending),
            Err(error) => error!(%error, "recovery: cannot read the outbox"),
        }
        self.refresh_stored_timer();
        let count = ids.len();
        for id in ids {
            self.resume_instance(&id);
        }
        info!(instances = count, "recovered");
    }

    fn resume_instance(&mut self, id: &str) {
        if !self.ensure_loaded(id) {
            return;
        }
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        let outbox = self.shared.store.outbox(id).unwrap_or_default();
        let in_flight = cell.instance.in_flight();
        let redispatch = match &cell.instance.status {
            InstanceStatus::Running | InstanceStatus::AwaitingDecision { .. } => true,
            InstanceStatus::Halted { cancel_running, .. } => !cancel_running,
            InstanceStatus::Completed { .. }
            | InstanceStatus::Failed { .. }
            | InstanceStatus::Cancelled { .. }
            | InstanceStatus::RollingBack { .. }
            | InstanceStatus::RolledBack { .. } => false,
        };
        let mut events = Vec::new();
        let mut effects = Vec::new();
        // A compensation in flight runs again with its key unless the instance was cancelled.
        let compensation = cell.instance.compensation_in_flight();
        let mut live: BTreeSet<String> = BTreeSet::new();
        if let Some((step, attempt, key)) = compensation {
            live.insert(key.clone());
            if matches!(cell.instance.status, InstanceStatus::RollingBack { .. } | InstanceStatus::Halted { .. }) {
                effects.push(Effect::Compensate { step, attempt, key });
            } else if let Some(rollback) = &cell.instance.rollback {
                events.push(Event::CompensationFailed {
                    step,
                    id: rollback.steps[step].state.id.clone(),
                    attempt,
                    error: "cancelled while the engine was down".to_owned(),
                    retryable: true,
                });
            }
        }
        for (p, t, attempt, key) in in_flight {
            if redispatch {
                effects.push(Effect::Dispatch { phase: p, task: t, attempt, key });
            } else {
                let phase = &cell.instance.phases[p];
                events.push(Event::TaskCancelled {
                    phase: phase.id.clone(),
                    task: phase.tasks[t].id.clone(),
                    attempt,
                    reason: "cancelled while the engine was down".to_owned(),
                });
            }
        }
        // Notifications not yet delivered are sent again, with their key.
        let notices: Vec<super::notices::Notice> = outbox.iter().filter_map(|(_, value)| super::notices::Notice::decode(value)).collect();
        live.extend(notices.iter().map(|notice| notice.key.clone()));
        // Outbox entries for attempts the state no longer has in flight are stale.
        live.extend(cell.instance.in_flight().into_iter().map(|(.., key)| key));
        let stale: Vec<Vec<u8>> =
            outbox.into_iter().map(|(key, _)| key).filter(|key| !live.contains(&String::from_utf8_lossy(key).into_owned())).collect();
        self.apply_and_drive(id, events, effects, stale, Answer::None);
        if self.ensure_loaded(id) {
            for notice in notices {
                self.send_notice(id, notice);
            }
        }
    }

    /// Makes sure the instance is in memory; quarantines it if it cannot be decoded.
    fn ensure_loaded(&mut self, id: &str) -> bool {
        if self.cells.contains_key(id) {
            return true;
        }
        match load::instance(&*self.shared.store, &self.shared.definitions, &self.shared.agent_names, id) {
            Ok((instance, workflow)) => {
                let summary = self.shared.store.summary(id).ok().flatten().and_then(|bytes| Summary::decode(id, &bytes).ok());
                let cell = Cell {
                    written_seq: instance.seq,
                    written_status: instance.effective_status().to_owned(),
                    written_wake: summary.and_then(|s| s.wake_at),
                    written_approvals: codec::pending_approvals(&instance, &workflow),
                    snapshot_seq: instance.seq,
                    wake: None,
                    pending_writes: 0,
                    instance,
                    workflow,
                };
                self.cells.insert(id.to_owned(), cell);
                true
            }
            Err(Error::Corrupt(reason)) => {
                error!(instance = id, %reason, "quarantining an instance whose records do not decode");
                if let Err(error) = self.shared.store.quarantine(id, &reason) {
                    error!(instance = id, %error, "could not quarantine");
                }
                false
            }
            // Asking for an instance that does not exist is the caller's
            // mistake, answered to the caller; only real load failures are logged.
            Err(Error::UnknownInstance(_)) => false,
            Err(error) => {
                warn!(instance = id, %error, "cannot load instance");
                false
            }
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.publish_activity();
            if self.shutdown.is_some() && self.pending_writes() == 0 {
                break;
            }
            let next = self.next_wake();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep(Duration::from_millis(at.since(Timestamp::now()))).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                message = self.receiver.recv() => match message {
                    Some(message) => self.handle(message),
                    None => break,
                },
                () = sleep => self.fire_timers(),
            }
        }
        if let Some(reply) = self.shutdown.take() {
            let _ = reply.send(Ok(()));
        }
        self.publish_activity();
    }

    fn load_error(&self, id: &str) -> Error {
        match load::instance(&*self.shared.store, &self.shared.definitions, &self.shared.agent_names, id) {
            Err(error) => error,
            Ok(_) => Error::UnknownInstance(id.to_owned()),
        }
    }

    /// A human decision: finds the gate, answers a repeated request id with
    /// the original outcome, checks the principal against the gate's current
    /// level (directly or through a role) and the comment rule, then records
    /// it. Everything refused appends nothing.
    fn decide(&mut self, id: &str, gate: Option<&str>, request: super::DecisionRequest, reply: Reply<super::DecisionOutcome>) {
        if !self.ensure_loaded(id) {
            let _ = reply.send(Err(self.load_error(id)));
            return;
        }
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        let instance = &cell.instance;
        let workflow = &cell.workflow;
        // A request id means one decision: the identical request again gets
        // the original outcome, anything else is a conflict.
        if !request.request_id.is_empty() {
            let used = match self.requests_in_flight.get(&request.request_id) {
                Some(used) => Ok(Some(used.clone())),
                None => super::requests::lookup(&*self.shared.store, &request.request_id),
            };
            let answer = match used {
                Err(error) => Some(Err(error)),
                Ok(None) => None,
                Ok(Some(used)) if used.is_same(id, gate, &request) => Some(Ok(used.outcome(
                    instance.seq,
                    gate_status(instance, &used.phase, &used.gate),
                    instance.effective_status().to_owned(),
                ))),
                Ok(Some(used)) => Some(Err(used.conflict(&request.request_id))),
            };
            if let Some(answer) = answer {
                let _ = reply.send(answer);
                self.maybe_evict(id);
                return;
            }
        }
        // Decisions recorded before the request index existed are found in the state.
        if !request.request_id.is_empty() {
            for phase in &instance.phases {
                for state in &phase.gates {
                    if let Some((at, decision)) = state.decision_with_request(&request.request_id) {
                        let outcome = super::DecisionOutcome {
                            instance: id.to_owned(),
                            phase: phase.id.clone(),
                            gate: state.id.clone(),
                            kind: decision.kind,
                            principal: decision.principal.clone(),
                            at: *at,
                            seq: instance.seq,
                            gate_status: state.status.kind().to_owned(),
                            instance_status: instance.effective_status().to_owned(),
                            replayed: true,
                        };
                        let names_it = gate.is_none_or(|g| g == state.id || g == format!("{}/{}", phase.id, state.id));
                        let result = if names_it
                            && decision.kind == request.kind
                            && decision.principal == request.principal
                            && decision.comment == request.comment
                        {
                            Ok(outcome)
                        } else {
                            Err(Error::Conflict(format!(
                                "request id {} was already used by {} to {} gate {}/{} at {at}",
                                request.request_id,
                                decision.principal,
                                decision.kind.verb(),
                                phase.id,
                                state.id
                            )))
                        };
                        let _ = reply.send(result);
                        self.maybe_evict(id);
                        return;
                    }
                }
            }
        }
        // A trigger's halt for approval is decided like a gate, named by the trigger's id.
        if let InstanceStatus::AwaitingDecision { phase, trigger, approval, .. } = &instance.status {
            let named = gate.is_none_or(|g| g == trigger || g == format!("{phase}/{trigger}"));
            if named {
                let outcome = self.trigger_decision(instance, workflow, phase, trigger, approval, &request);
                match outcome {
                    Ok((event, outcome)) => self.apply_and_drive(id, vec![event], Vec::new(), Vec::new(), Answer::Decided(reply, outcome)),
                    Err(error) => {
                        let _ = reply.send(Err(error));
                        self.maybe_evict(id);
                    }
                }
                return;
            }
        }
        let (p, g) = match find_gate(instance, workflow, gate) {
            Ok(found) => found,
            Err(error) => {
                let _ = reply.send(Err(error));
                self.maybe_evict(id);
                return;
            }
        };
        let plan = &workflow.phases[p];
        let gate_plan = &plan.gates[g];
        let state = &instance.phases[p].gates[g];
        let mut level = 0;
        if let crate::machine::GateStatus::AwaitingDecision { level: current, .. } = &state.status {
            level = *current;
            let authority = crate::machine::gate::authority(gate_plan, plan.owner.as_ref(), level);
            let approvers = authority.map(|a| a.approvers).unwrap_or_default();
            let Some(via) = self.shared.roles.allows(&approvers, &request.principal) else {
                let who: Vec<String> = approvers.iter().map(ToString::to_string).collect();
                let _ = reply.send(Err(Error::Forbidden(format!(
                    "{} may not decide gate {}/{} at level {level}; allowed: {}",
                    request.principal,
                    plan.id,
                    gate_plan.id,
                    if who.is_empty() { "nobody".to_owned() } else { who.join(", ") }
                ))));
                self.maybe_evict(id);
                return;
            };
            let comment_required = gate_plan.approval.as_ref().is_some_and(|a| a.comment_required);
            if comment_required && request.comment.trim().is_empty() {
                let _ = reply.send(Err(Error::Invalid(format!(
                    "gate {}/{} requires a comment with every decision (--comment)",
                    plan.id, gate_plan.id
                ))));
                self.maybe_evict(id);
                return;
            }
            let seen =
                state.evaluation.as_ref().map(|e| e.criteria.iter().map(|c| (c.id.clone(), c.verdict)).collect()).unwrap_or_default();
            let decision = crate::machine::Decision {
                kind: request.kind,
                principal: request.principal.clone(),
                via,
                comment: request.comment.clone(),
                request_id: request.request_id.clone(),
                level,
                seen,
            };
            let outcome = super::DecisionOutcome {
                instance: id.to_owned(),
                phase: plan.id.clone(),
                gate: gate_plan.id.clone(),
                kind: request.kind,
                principal: request.principal.clone(),
                at: Timestamp::now(),
                seq: 0,
                gate_status: String::new(),
                instance_status: String::new(),
                replayed: false,
            };
            let event = Event::DecisionRecorded { phase: plan.id.clone(), gate: gate_plan.id.clone(), decision };
            self.apply_and_drive(id, vec![event], Vec::new(), Vec::new(), Answer::Decided(reply, outcome));
            return;
        }
        // Not awaiting: let the machine say why (already decided by whom and when).
        let decision = crate::machine::Decision {
            kind: request.kind,
            principal: request.principal.clone(),
            via: String::new(),
            comment: request.comment.clone(),
            request_id: request.request_id.clone(),
            level,
            seen: BTreeMap::new(),
        };
        let event = Event::DecisionRecorded { phase: plan.id.clone(), gate: gate_plan.id.clone(), decision };
        let outcome = super::DecisionOutcome {
            instance: id.to_owned(),
            phase: plan.id.clone(),
            gate: gate_plan.id.clone(),
            kind: request.kind,
            principal: request.principal,
            at: Timestamp::now(),
            seq: 0,
            gate_status: String::new(),
            instance_status: String::new(),
            replayed: false,
        };
        self.apply_and_drive(id, vec![event], Vec::new(), Vec::new(), Answer::Decided(reply, outcome));
    }

    fn pending_writes(&self) -> usize {
        self.cells.values().map(|c| c.pending_writes).sum()
    }

    fn publish_activity(&self) {
        let passive = self.mode == Mode::Passive;
        let active =
            self.cells.values().filter(|c| c.pending_writes > 0 || (!passive && c.instance.is_active())).count() + self.running.len();
        self.active.send_replace(active);
    }

    fn next_wake(&self) -> Option<Timestamp> {
        if self.mode == Mode::Passive || self.shutdown.is_some() {
            return None;
        }
        let memory = self.timers.first().map(|(at, _)| *at);
        match (memory, self.stored_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn refresh_stored_timer(&mut self) {
        let now = Timestamp::now();
        // Due timers of instances not in memory: load and drive them.
        let due = self.shared.store.index_range(TIMER_INDEX, &0u64.to_be_bytes(), &(now.0 + 1).to_be_bytes(), 1024).unwrap_or_default();
        let ids: Vec<String> =
            due.into_iter().map(|(key, _)| String::from_utf8_lossy(key.get(8..).unwrap_or_default()).into_owned()).collect();
        for id in ids {
            if !self.cells.contains_key(&id) {
                self.resume_instance(&id);
            }
        }
        let next = self.shared.store.index_range(TIMER_INDEX, &(now.0 + 1).to_be_bytes(), &u64::MAX.to_be_bytes(), 1).unwrap_or_default();
        self.stored_timer = next
            .first()
            .and_then(|(key, _)| key.get(..8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(|b| Timestamp(u64::from_be_bytes(b)));
    }

    fn fire_timers(&mut self) {
        let now = Timestamp::now();
        let mut due = Vec::new();
        while let Some((at, id)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id.clone()));
            due.push(id);
        }
        for id in due {
            if let Some(cell) = self.cells.get_mut(&id) {
                cell.wake = None;
            }
            self.apply_and_drive(&id, Vec::new(), Vec::new(), Vec::new(), Answer::None);
        }
        if self.stored_timer.is_some_and(|at| at <= now) {
            self.refresh_stored_timer();
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Start { id, workflow, hash, vars, started_by, baselines, reply } => {
                if self.cells.contains_key(&id) || matches!(self.shared.store.head(&id), Ok(Some(_))) {
                    let _ = reply.send(Err(Error::Invalid(format!("an instance `{id}` already exists; choose another --id"))));
                    return;
                }
                let now = Timestamp::now();
                let event = Event::InstanceStarted { workflow: workflow.name.clone(), definition_hash: hash, vars, started_by };
                let record = Record::new(1, now, event);
                let instance = match machine::replay(&id, &workflow, std::slice::from_ref(&record)) {
                    Ok(instance) => instance,
                    Err(rejected) => {
                        let _ = reply.send(Err(rejected.into()));
                        return;
                    }
                };
                // Nothing is written yet: the first batch carries event 1.
                let cell = Cell {
                    instance,
                    workflow,
                    written_seq: 0,
                    written_status: String::new(),
                    written_wake: None,
                    written_approvals: BTreeMap::new(),
                    snapshot_seq: 0,
                    wake: None,
                    pending_writes: 0,
                };
                self.cells.insert(id.clone(), cell);
                let mut records = vec![record];
                let mut effects = Vec::new();
                if !baselines.is_empty() {
                    if let Some(cell) = self.cells.get_mut(&id) {
                        if let Err(rejected) = cell.apply(Event::BaselinesLoaded { baselines }, now, &mut records, &mut effects) {
                            error!(instance = %id, %rejected, "could not record the baselines");
                        }
                    }
                }
                self.drive_and_persist(&id, records, effects, Vec::new(), Answer::Started(reply, id.clone()));
            }
            Message::Operate { id, event, reply } => {
                if !self.ensure_loaded(&id) {
                    let _ = reply.send(Err(self.load_error(&id)));
                    return;
                }
                let seq_after = self.cells.get(&id).map_or(0, |c| c.instance.seq + 1);
                self.apply_and_drive(&id, vec![event], Vec::new(), Vec::new(), Answer::Operated(reply, seq_after));
            }
            Message::Finished { id, phase, task, attempt, key, outcome } => {
                self.running.remove(&key);
                if !self.ensure_loaded(&id) {
                    return;
                }
                let Some(cell) = self.cells.get(&id) else {
                    return;
                };
                // A loop-back may have reset the task since: a result only
                // counts for the attempt (and key) still in flight.
                match &cell.instance.phases[phase].tasks[task].status {
                    TaskStatus::Dispatched { key: current, .. } if *current == key => {}
                    _ => {
                        debug!(instance = %id, %key, "dropped the result of an attempt no longer in flight");
                        return;
                    }
                }
                let phase_id = cell.instance.phases[phase].id.clone();
                let task_id = cell.instance.phases[phase].tasks[task].id.clone();
                let event = match outcome {
                    Outcome::Succeeded { output, duration_ms } => {
                        Event::TaskSucceeded { phase: phase_id, task: task_id, attempt, output, duration_ms }
                    }
                    Outcome::Failed { error, retryable } => Event::TaskFailed { phase: phase_id, task: task_id, attempt, error, retryable },
                    Outcome::Cancelled { reason } => Event::TaskCancelled { phase: phase_id, task: task_id, attempt, reason },
                };
                self.apply_and_drive(&id, vec![event], Vec::new(), Vec::new(), Answer::None);
            }
            Message::Compensated { id, step, attempt, key, outcome } => {
                self.running.remove(&key);
                if !self.ensure_loaded(&id) {
                    return;
                }
                let Some(rollback) = self.cells.get(&id).and_then(|c| c.instance.rollback.as_ref()) else {
                    return;
                };
                let Some(compensation) = rollback.steps.get(step) else {
                    return;
                };
                let step_id = compensation.state.id.clone();
                let event = match outcome {
                    Outcome::Succeeded { output, duration_ms } => {
                        Event::CompensationSucceeded { step, id: step_id, attempt, output, duration_ms }
                    }
                    Outcome::Failed { error, retryable } => Event::CompensationFailed { step, id: step_id, attempt, error, retryable },
                    Outcome::Cancelled { reason } => {
                        Event::CompensationFailed { step, id: step_id, attempt, error: format!("cancelled: {reason}"), retryable: true }
                    }
                };
                self.apply_and_drive(&id, vec![event], Vec::new(), Vec::new(), Answer::None);
            }
            Message::Sampled { id, phase, watch, result } => self.sampled(&id, phase, watch, result),
            Message::Persisted { id, result, effects, records, notices, answer } => {
                self.persisted(&id, result, effects, records, notices, answer)
            }
            Message::Notified { id, key } => {
                self.running.remove(&key);
                if self.ensure_loaded(&id) {
                    self.drive_and_persist(&id, Vec::new(), Vec::new(), vec![key.into_bytes()], Answer::None);
                }
            }

            Message::Decide { id, gate, request, reply } => self.decide(&id, gate.as_deref(), request, reply),
            Message::Advance { id, reply } => {
                if !self.ensure_loaded(&id) {
                    let _ = reply.send(Err(self.load_error(&id)));
                    return;
                }
                self.apply_and_drive(&id, Vec::new(), Vec::new(), Vec::new(), Answer::Advanced(reply, 0));
            }
            Message::Barrier { reply } => {
                let _ = reply.send(Ok(()));
            }
            Message::Shutdown { reply } => {
                // Abandon attempts in flight without recording anything: the
                // next engine dispatches them again with the same key.
                for (_, running) in self.running.drain() {
                    running.abort.abort();
                }
                self.shutdown = Some(reply);
            }
        }
    }

    /// Applies events to an instance (a rejected one answers the caller and
    /// changes nothing), lets `decide` add what follows, and persists it all
    /// as one batch.
    fn apply_and_drive(&mut self, id: &str, events: Vec<Event>, effects: Vec<Effect>, stale_outbox: Vec<Vec<u8>>, answer: Answer) {
        let Some(cell) = self.cells.get_mut(id) else {
            return;
        };
        let now = Timestamp::now();
        let mut records = Vec::new();
        let mut effects = effects;
        for event in events {
            match cell.apply(event, now, &mut records, &mut effects) {
                Ok(()) => {}
                Err(rejected) => {
                    if matches!(answer, Answer::None) {
                        debug!(instance = id, %rejected, "dropped an event that no longer applies");
                    }
                    answer.fail(rejected.into());
                    self.maybe_evict(id);
                    return;
                }
            }
        }
        self.drive_and_persist(id, records, effects, stale_outbox, answer);
    }

    fn drive_and_persist(
        &mut self,
        id: &str,
        mut records: Vec<Record>,
        mut effects: Vec<Effect>,
        stale_outbox: Vec<Vec<u8>>,
        answer: Answer,
    ) {
        let Some(cell) = self.cells.get_mut(id) else {
            return;
        };
        let now = Timestamp::now();
        let mut wake = None;
        let force = matches!(answer, Answer::Advanced(..));
        if (self.mode == Mode::Drive || force) && self.shutdown.is_none() {
            // Bounded: each round applies at least one event, and a workflow
            // has finitely many things to start; the bound only guards bugs.
            'rounds: for _ in 0..100_000 {
                let decision = decide(&cell.instance, &cell.workflow, now);
                wake = decision.wake_at;
                if decision.events.is_empty() {
                    break;
                }
                for event in decision.events {
                    if let Err(rejected) = cell.apply(event, now, &mut records, &mut effects) {
                        // decide would propose the same event again: stop
                        // driving this instance rather than spin.
                        error!(instance = id, %rejected, "decide proposed an event step refused (a bug)");
                        break 'rounds;
                    }
                }
            }
        }
        // Watches due now are sampled; the next one due wakes the instance.
        let mut samples = Vec::new();
        if self.mode == Mode::Drive && self.shutdown.is_none() {
            for (p, w, due) in machine::watches_due(&cell.instance, &cell.workflow) {
                if self.sampling.contains(&sampling_key(id, p, w)) {
                    continue;
                }
                if due <= now {
                    samples.push((p, w));
                } else {
                    wake = Some(wake.map_or(due, |at| at.min(due)));
                }
            }
        }
        // Timers in memory follow the instance's wake time.
        if cell.wake != wake {
            if let Some(old) = cell.wake {
                self.timers.remove(&(old, id.to_owned()));
            }
            if let Some(new) = wake {
                self.timers.insert((new, id.to_owned()));
            }
            cell.wake = wake;
        }
        if records.is_empty() && stale_outbox.is_empty() {
            // Nothing to write: answer now and run what recovery asked for.
            answer.succeed(Some(cell), 0);
            for (p, w) in samples {
                self.sample(id, p, w);
            }
            self.run_effects(id, effects);
            self.maybe_evict(id);
            return;
        }
        // Notifications are durable work: put in the outbox with the batch
        // that calls for them, sent once it is durable.
        let notices: Vec<super::notices::Notice> = effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Notify { phase, gate, what } => super::notices::gate(&cell.instance, &cell.workflow, *phase, *gate, what),
                Effect::TriggerNotify { phase, trigger, what } => {
                    super::notices::trigger(&cell.instance, &cell.workflow, *phase, *trigger, what)
                }
                _ => None,
            })
            .collect();
        let mut batch = self.batch(id, &records, stale_outbox);
        batch.outbox.extend(notices.iter().map(|notice| OutboxOp::Put { key: notice.key.clone().into_bytes(), value: notice.encode() }));
        let Some(cell) = self.cells.get_mut(id) else {
            return;
        };
        cell.pending_writes += 1;
        let sender = self.sender.clone();
        let instance = id.to_owned();
        self.shared.store.submit(
            batch,
            Box::new(move |result| {
                let _ = sender.send(Message::Persisted { id: instance, result, effects, records, notices, answer });
            }),
        );
        for (p, w) in samples {
            self.sample(id, p, w);
        }
    }

    fn batch(&mut self, id: &str, records: &[Record], stale_outbox: Vec<Vec<u8>>) -> Batch {
        let Some(cell) = self.cells.get_mut(id) else {
            return Batch::default();
        };
        let instance = &cell.instance;
        let mut outbox: Vec<OutboxOp> = stale_outbox.into_iter().map(|key| OutboxOp::Delete { key }).collect();
        for record in records {
            match record.event() {
                Event::TaskDispatched { phase, task, attempt, key } => outbox.push(OutboxOp::Put {
                    key: key.as_bytes().to_vec(),
                    value: serde_json::to_vec(&json!({"dispatch": {"phase": phase, "task": task, "attempt": attempt}})).unwrap_or_default(),
                }),
                Event::TaskSucceeded { phase, task, attempt, .. }
                | Event::TaskFailed { phase, task, attempt, .. }
                | Event::TaskCancelled { phase, task, attempt, .. } => {
                    let phase_attempt = instance.phases.iter().find(|p| &p.id == phase).map_or(0, |p| p.attempt);
                    let key = crate::machine::idempotency_key(&instance.id, phase, phase_attempt, task, *attempt);
                    outbox.push(OutboxOp::Delete { key: key.into_bytes() });
                }
                Event::CompensationDispatched { step, id, attempt, key } => outbox.push(OutboxOp::Put {
                    key: key.as_bytes().to_vec(),
                    value: serde_json::to_vec(&json!({"compensate": {"step": step, "id": id, "attempt": attempt}})).unwrap_or_default(),
                }),
                Event::CompensationSucceeded { step, id, attempt, .. } | Event::CompensationFailed { step, id, attempt, .. } => {
                    let key = crate::machine::compensation_key(&instance.id, instance.rollbacks, *step, id, *attempt);
                    outbox.push(OutboxOp::Delete { key: key.into_bytes() });
                }

                _ => {}
            }
        }
        let status = instance.effective_status();
        let mut index = Vec::new();
        // An instance that is not active keeps its timer in the index so that
        // it is loaded when it falls due (approval deadlines, schedules).
        let wake = cell.wake;
        if cell.written_wake != wake {
            if let Some(old) = cell.written_wake {
                index.push(IndexOp::Delete { index: TIMER_INDEX.to_owned(), key: codec::timer_key(old, id) });
            }
            if let Some(new) = wake {
                index.push(IndexOp::Put { index: TIMER_INDEX.to_owned(), key: codec::timer_key(new, id), value: Vec::new() });
            }
        }
        // Pending decisions are indexed so `approvals` lists them without
        // loading instances.
        let approvals = codec::pending_approvals(instance, &cell.workflow);
        if approvals != cell.written_approvals {
            for key in cell.written_approvals.keys().filter(|k| !approvals.contains_key(*k)) {
                index.push(IndexOp::Delete { index: codec::APPROVAL_INDEX.to_owned(), key: key.clone() });
            }
            for (key, value) in approvals.iter().filter(|(k, v)| cell.written_approvals.get(*k) != Some(*v)) {
                index.push(IndexOp::Put { index: codec::APPROVAL_INDEX.to_owned(), key: key.clone(), value: value.clone() });
            }
            cell.written_approvals = approvals;
        }
        // Request ids of the decisions in this batch, so a reuse is found
        // once the instance has moved on (or from another instance).
        for (request_id, used) in super::requests::RequestUse::of_records(id, records) {
            index.push(IndexOp::Put {
                index: super::requests::REQUEST_INDEX.to_owned(),
                key: request_id.clone().into_bytes(),
                value: used.encode(),
            });
            self.requests_in_flight.insert(request_id, used);
        }
        let Some(cell) = self.cells.get_mut(id) else {
            return Batch::default();
        };
        let instance = &cell.instance;
        // Gate passes recorded in this batch become baselines for later
        // instances: the workflow's latest, and this instance's own.
        let batch_start = records.first().map_or(Timestamp(u64::MAX), Record::at);
        for (gate, baseline) in instance.baselines.iter().filter(|(_, b)| b.instance == instance.id && b.at >= batch_start) {
            let value = serde_json::to_vec(baseline).unwrap_or_default();
            index.push(IndexOp::Put {
                index: codec::BASELINE_INDEX.to_owned(),
                key: codec::baseline_key(&instance.workflow, gate),
                value: value.clone(),
            });
            index.push(IndexOp::Put {
                index: codec::BASELINE_BY_INSTANCE_INDEX.to_owned(),
                key: codec::baseline_key(&instance.id, gate),
                value,
            });
        }
        let snapshot =
            (!instance.is_active() || instance.seq - cell.snapshot_seq >= SNAPSHOT_EVERY).then(|| codec::encode_snapshot(instance));
        let batch = Batch {
            instance: id.to_owned(),
            expected_seq: cell.written_seq,
            events: records.iter().map(codec::encode_record).collect(),
            status: (cell.written_status != status).then(|| status.to_owned()),
            summary: Some(Summary::of(instance, wake).encode()),
            snapshot,
            index,
            outbox,
        };
        if batch.snapshot.is_some() {
            cell.snapshot_seq = instance.seq;
        }
        cell.written_seq = instance.seq;
        cell.written_status = status.to_owned();
        cell.written_wake = wake;
        batch
    }

    fn persisted(
        &mut self,
        id: &str,
        result: phasegate_store::Result<()>,
        effects: Vec<Effect>,
        records: Vec<Record>,
        notices: Vec<super::notices::Notice>,
        answer: Answer,
    ) {
        if let Some(cell) = self.cells.get_mut(id) {
            cell.pending_writes = cell.pending_writes.saturating_sub(1);
        }
        for (request_id, _) in super::requests::RequestUse::of_records(id, &records) {
            self.requests_in_flight.remove(&request_id);
        }
        if let Err(error) = result {
            if let Some(why) = self.shared.store.failure() {
                self.shared.fail(format!("the store refuses writes: {why}"));
            }
            // The state in memory is ahead of the store: forget it, so the
            // next use reloads what is durable. Nothing was acknowledged.
            error!(instance = id, %error, "a write failed; the instance is reloaded from the store");
            if let Some(cell) = self.cells.remove(id) {
                if let Some(wake) = cell.wake {
                    self.timers.remove(&(wake, id.to_owned()));
                }
            }
            answer.fail(error.into());
            return;
        }
        let status = self.cells.get(id).map_or("unknown", |c| c.instance.effective_status());
        let workflow = self.cells.get(id).map(|c| Arc::clone(&c.workflow));
        for record in &records {
            debug!(instance = id, seq = record.seq(), event = %record.event().describe(), "durable");
            let agent = match record.event() {
                Event::TaskDispatched { task, .. } | Event::TaskSucceeded { task, .. } | Event::TaskFailed { task, .. } => {
                    workflow.as_ref().and_then(|w| w.task_location(task).map(|(p, t)| w.phases[p].tasks[t].agent.clone()))
                }
                _ => None,
            };
            let _ = self.shared.events.send(Notification { instance: id.to_owned(), record: record.clone(), status, agent });
        }
        answer.succeed(self.cells.get(id), records.len());
        self.run_effects(id, effects);
        for notice in notices {
            self.send_notice(id, notice);
        }
        self.maybe_evict(id);
    }

    fn run_effects(&mut self, id: &str, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Dispatch { phase, task, attempt, key } => {
                    if self.mode == Mode::Drive && self.shutdown.is_none() {
                        self.dispatch(id, phase, task, attempt, key);
                    }
                }
                Effect::Cancel { key, .. } => {
                    if let Some(running) = self.running.get(&key) {
                        running.token.cancel();
                    }
                }
                // Sent as notices once their batch is durable (see drive_and_persist).
                Effect::Notify { .. } | Effect::TriggerNotify { .. } => {}
                Effect::Compensate { step, attempt, key } => {
                    if self.mode == Mode::Drive && self.shutdown.is_none() {
                        self.compensate(id, step, attempt, key);
                    }
                }
            }
        }
    }

    fn maybe_evict(&mut self, id: &str) {
        // A passive engine runs nothing, so it keeps nothing in memory.
        let passive = self.mode == Mode::Passive;
        let evict = self.cells.get(id).is_some_and(|cell| cell.pending_writes == 0 && (passive || !cell.instance.is_active()));
        if evict {
            if let Some(cell) = self.cells.remove(id) {
                if let Some(wake) = cell.wake {
                    self.timers.remove(&(wake, id.to_owned()));
                    self.stored_timer = Some(self.stored_timer.map_or(wake, |t| t.min(wake)));
                }
            }
        }
    }

    /// Runs a compensation attempt on its agent, like a task attempt.
    fn compensate(&mut self, id: &str, step: usize, attempt: u32, key: String) {
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        if self.running.contains_key(&key) {
            return;
        }
        let Some(compensation) = cell.instance.rollback.as_ref().and_then(|r| r.steps.get(step)) else {
            return;
        };
        match &compensation.state.status {
            TaskStatus::Dispatched { key: current, .. } if *current == key => {}
            _ => return,
        }
        let Some(plan) = machine::compensation_step(&cell.workflow, compensation).cloned() else {
            return;
        };
        let agent = self.shared.registry.get(&plan.agent);
        let request = TaskRequest {
            instance: id.to_owned(),
            task: plan.id.clone(),
            attempt,
            idempotency_key: key.clone(),
            params: crate::template::render(&plan.params, &cell.instance.vars, id),
            timeout: plan.timeout,
        };
        let span = info_span!("compensation", instance = id, step = %plan.id, attempt);
        let sender = self.sender.clone();
        let token = CancellationToken::new();
        let cancel = token.clone();
        let id_owned = id.to_owned();
        let task_key = key.clone();
        let handle = tokio::spawn(
            async move {
                let outcome = match agent {
                    None => Outcome::Failed { error: format!("agent `{}` is not registered in this engine", plan.agent), retryable: false },
                    Some(agent) => run_attempt(agent, request, cancel).await,
                };
                let _ = sender.send(Message::Compensated { id: id_owned, step, attempt, key: task_key, outcome });
            }
            .instrument(span),
        );
        self.running.insert(key, Running { token, abort: handle.abort_handle() });
    }

    /// Takes one sample of a watch through its agent in the background.
    fn sample(&mut self, id: &str, p: usize, w: usize) {
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        let plan = &cell.workflow.phases[p];
        let Some(watch) = plan.watches.get(w) else {
            return;
        };
        let key = sampling_key(id, p, w);
        if !self.sampling.insert(key) {
            return;
        }
        let taken = cell.instance.phases[p].watches.get(w).map_or(0, |s| s.taken);
        let agent = self.shared.registry.get(&watch.agent);
        let request = TaskRequest {
            instance: id.to_owned(),
            task: watch.id.clone(),
            attempt: 1,
            idempotency_key: format!("{id}/{}.{}/watch/{}/{}", plan.id, cell.instance.phases[p].attempt, watch.id, taken + 1),
            params: crate::template::render(&watch.params, &cell.instance.vars, id),
            // A sample never outlives its interval.
            timeout: Some(watch.interval_for(&cell.instance.vars).max(Duration::from_secs(1))),
        };
        let sender = self.sender.clone();
        let id_owned = id.to_owned();
        let agent_name = watch.agent.clone();
        let span = info_span!("watch", instance = id, watch = %watch.id);
        tokio::spawn(
            async move {
                let result = match agent {
                    None => Err(format!("agent `{agent_name}` is not registered in this engine")),
                    Some(agent) => match run_attempt(agent, request, CancellationToken::new()).await {
                        Outcome::Succeeded { output, .. } => Ok(output),
                        Outcome::Failed { error, .. } => Err(error),
                        Outcome::Cancelled { reason } => Err(reason),
                    },
                };
                let _ = sender.send(Message::Sampled { id: id_owned, phase: p, watch: w, result });
            }
            .instrument(span),
        );
    }

    /// Records a sample: its value and what it means for the watch's
    /// condition. Missing values and agent errors are "no data", with the
    /// agent's message kept verbatim.
    fn sampled(&mut self, id: &str, p: usize, w: usize, result: Result<Value, String>) {
        self.sampling.remove(&sampling_key(id, p, w));
        if !self.ensure_loaded(id) {
            return;
        }
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        let plan = &cell.workflow.phases[p];
        let Some(watch) = plan.watches.get(w) else {
            return;
        };
        let number = |value: &Value| value.as_f64().filter(|v| v.is_finite());
        let (value, detail) = match &result {
            Err(error) => (None, error.clone()),
            Ok(output) => match output.get("value").or(Some(output)).and_then(number) {
                Some(value) => (Some(value), String::new()),
                None if output.get("value").is_some_and(Value::is_null) => (None, "the query returned no data".to_owned()),
                None => (None, "the agent's output has no numeric `value`".to_owned()),
            },
        };
        let (verdict, detail) = match value {
            None => (machine::SampleVerdict::NoData, detail),
            Some(value) => {
                let mut evidence = machine::evidence(&cell.instance);
                evidence.insert("value".to_owned(), json!(value));
                match watch.condition.evaluate(&evidence) {
                    crate::expr::Outcome::True => (machine::SampleVerdict::Breach, String::new()),
                    crate::expr::Outcome::False => (machine::SampleVerdict::Ok, String::new()),
                    crate::expr::Outcome::Missing(why) | crate::expr::Outcome::Error(why) => {
                        (machine::SampleVerdict::NoData, format!("`{}` could not be evaluated: {why}", watch.condition.source()))
                    }
                }
            }
        };
        let event = Event::WatchSampled { phase: plan.id.clone(), watch: watch.id.clone(), value, verdict, detail };
        self.apply_and_drive(id, vec![event], Vec::new(), Vec::new(), Answer::None);
    }

    fn dispatch(&mut self, id: &str, p: usize, t: usize, attempt: u32, key: String) {
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        if self.running.contains_key(&key) {
            return;
        }
        // The state must still have this attempt in flight.
        match &cell.instance.phases[p].tasks[t].status {
            TaskStatus::Dispatched { key: current, .. } if *current == key => {}
            _ => return,
        }
        let plan = &cell.workflow.phases[p];
        let task = &plan.tasks[t];
        let sender = self.sender.clone();
        let token = CancellationToken::new();
        let agent = self.shared.registry.get(&task.agent);
        let global = Arc::clone(&self.shared.global_permits);
        let per_agent = self.shared.agent_permits.get(&task.agent).cloned();
        let request = TaskRequest {
            instance: id.to_owned(),
            task: task.id.clone(),
            attempt,
            idempotency_key: key.clone(),
            params: crate::template::render(&task.params, &cell.instance.vars, id),
            timeout: task.timeout,
        };
        let span = info_span!("task", instance = id, phase = %plan.id, task = %task.id, attempt);
        let id_owned = id.to_owned();
        let task_key = key.clone();
        let cancel = token.clone();
        let agent_name = task.agent.clone();
        let handle = tokio::spawn(
            async move {
                let outcome = match agent {
                    None => Outcome::Failed { error: format!("agent `{agent_name}` is not registered in this engine"), retryable: false },
                    Some(agent) => {
                        let _global = global.acquire_owned().await;
                        let _per_agent = match per_agent {
                            Some(semaphore) => Some(semaphore.acquire_owned().await),
                            None => None,
                        };
                        run_attempt(agent, request, cancel).await
                    }
                };
                let _ = sender.send(Message::Finished { id: id_owned, phase: p, task: t, attempt, key: task_key, outcome });
            }
            .instrument(span),
        );
        self.running.insert(key, Running { token, abort: handle.abort_handle() });
    }
}

/// Finds the gate a decision is for: `phase/gate`, a gate id, or, with
/// none given, the one gate awaiting a decision.
fn find_gate(instance: &Instance, workflow: &Workflow, gate: Option<&str>) -> Result<(usize, usize), Error> {
    let awaiting: Vec<(usize, usize)> = instance
        .phases
        .iter()
        .enumerate()
        .flat_map(|(p, phase)| {
            phase
                .gates
                .iter()
                .enumerate()
                .filter(|(_, g)| matches!(g.status, crate::machine::GateStatus::AwaitingDecision { .. }))
                .map(move |(g, _)| (p, g))
        })
        .collect();
    let name = |&(p, g): &(usize, usize)| format!("{}/{}", workflow.phases[p].id, workflow.phases[p].gates[g].id);
    match gate {
        None => match awaiting.as_slice() {
            [one] => Ok(*one),
            [] => {
                let latest = instance
                    .phases
                    .iter()
                    .flat_map(|phase| {
                        phase
                            .gates
                            .iter()
                            .filter_map(move |g| g.settling_decision().map(|(at, d)| (*at, phase.id.as_str(), g.id.as_str(), d)))
                    })
                    .max_by_key(|(at, ..)| *at);
                Err(Error::Invalid(match latest {
                    Some((at, phase, gate, decision)) => format!(
                        "instance {} has no gate awaiting a decision; gate {phase}/{gate} was already {} by {} at {at}",
                        instance.id,
                        decision.kind.past(),
                        decision.principal
                    ),
                    None => format!("instance {} has no gate awaiting a decision", instance.id),
                }))
            }
            many => Err(Error::Invalid(format!(
                "instance {} has several gates awaiting a decision: {}; name one",
                instance.id,
                many.iter().map(name).collect::<Vec<_>>().join(", ")
            ))),
        },
        Some(spec) => {
            let (phase, gate) = match spec.split_once('/') {
                Some((phase, gate)) => (Some(phase), gate),
                None => (None, spec),
            };
            let matches: Vec<(usize, usize)> = workflow
                .phases
                .iter()
                .enumerate()
                .filter(|(_, plan)| phase.is_none_or(|wanted| plan.id == wanted))
                .flat_map(|(p, plan)| plan.gates.iter().enumerate().filter(|(_, g)| g.id == gate).map(move |(g, _)| (p, g)))
                .collect();
            match matches.as_slice() {
                [one] => Ok(*one),
                [] => {
                    // A trigger's halt is decided by the trigger's name: say
                    // so when that is what was meant, and list both kinds.
                    let gates: Vec<String> =
                        workflow.phases.iter().flat_map(|p| p.gates.iter().map(move |g| format!("{}/{}", p.id, g.id))).collect();
                    let triggers: Vec<String> = workflow
                        .phases
                        .iter()
                        .flat_map(|p| {
                            p.triggers
                                .iter()
                                .filter(|t| matches!(t.action, crate::plan::Action::HaltForApproval { .. }))
                                .map(move |t| format!("{}/{}", p.id, t.id))
                        })
                        .collect();
                    let trigger_named = triggers.iter().any(|t| t == spec || t.rsplit('/').next() == Some(gate));
                    if trigger_named {
                        return Err(Error::Invalid(format!(
                            "trigger `{spec}` is not awaiting a decision: instance {} is {}",
                            instance.id,
                            instance.effective_status()
                        )));
                    }
                    let known = gates.iter().chain(&triggers);
                    let hint = match crate::suggest::closest(spec, known.clone()) {
                        Some(close) => format!("; did you mean `{close}`?"),
                        None => String::new(),
                    };
                    let list = |names: &[String]| if names.is_empty() { "none".to_owned() } else { names.join(", ") };
                    Err(Error::Invalid(format!(
                        "workflow `{}` has no gate or trigger `{spec}`{hint} (gates: {}; triggers that halt for a decision: {})",
                        workflow.name,
                        list(&gates),
                        list(&triggers)
                    )))
                }
                many => {
                    // Prefer the one awaiting a decision.
                    let waiting: Vec<&(usize, usize)> = many.iter().filter(|m| awaiting.contains(m)).collect();
                    match waiting.as_slice() {
                        [one] => Ok(**one),
                        _ => Err(Error::Invalid(format!(
                            "gate `{spec}` is ambiguous: {}; write phase/gate",
                            many.iter().map(name).collect::<Vec<_>>().join(", ")
                        ))),
                    }
                }
            }
        }
    }
}

impl Driver {
    /// Checks a decision on a trigger's halt (authority at the current
    /// level, comment rule) and builds its event and outcome.
    fn trigger_decision(
        &self,
        instance: &Instance,
        workflow: &Workflow,
        phase: &str,
        trigger: &str,
        state: &crate::machine::GateState,
        request: &super::DecisionRequest,
    ) -> Result<(Event, super::DecisionOutcome), Error> {
        let Some((p, plan)) = workflow.trigger(phase, trigger) else {
            return Err(Error::Invalid(format!("the pinned definition has no trigger `{phase}/{trigger}`")));
        };
        let crate::plan::Action::HaltForApproval { approval, .. } = &plan.action else {
            return Err(Error::Invalid(format!("trigger `{trigger}` does not halt for approval")));
        };
        let crate::machine::GateStatus::AwaitingDecision { level, .. } = &state.status else {
            return Err(Error::Invalid(format!("trigger {phase}/{trigger} is not awaiting a decision")));
        };
        let approvers = crate::machine::gate::authority_of(Some(approval), workflow.phases[p].owner.as_ref(), *level)
            .map(|a| a.approvers)
            .unwrap_or_default();
        let Some(via) = self.shared.roles.allows(&approvers, &request.principal) else {
            let who: Vec<String> = approvers.iter().map(ToString::to_string).collect();
            return Err(Error::Forbidden(format!(
                "{} may not decide trigger {phase}/{trigger} at level {level}; allowed: {}",
                request.principal,
                if who.is_empty() { "nobody".to_owned() } else { who.join(", ") }
            )));
        };
        if approval.comment_required && request.comment.trim().is_empty() {
            return Err(Error::Invalid(format!("trigger {phase}/{trigger} requires a comment with every decision (--comment)")));
        }
        let decision = crate::machine::Decision {
            kind: request.kind,
            principal: request.principal.clone(),
            via,
            comment: request.comment.clone(),
            request_id: request.request_id.clone(),
            level: *level,
            seen: BTreeMap::new(),
        };
        let outcome = super::DecisionOutcome {
            instance: instance.id.clone(),
            phase: phase.to_owned(),
            gate: trigger.to_owned(),
            kind: request.kind,
            principal: request.principal.clone(),
            at: Timestamp::now(),
            seq: 0,
            gate_status: String::new(),
            instance_status: String::new(),
            replayed: false,
        };
        Ok((Event::TriggerDecided { phase: phase.to_owned(), trigger: trigger.to_owned(), decision }, outcome))
    }

    /// Delivers a notice through its step's agent in the background,
    /// retried by the step's policy; its outbox entry is deleted once it is
    /// delivered or fails for good. The payload goes into the parameters as
    /// `json` (what `http` and `webhook` post) and `stdin` (what `exec`
    /// reads) unless the definition set those.
    fn send_notice(&mut self, id: &str, notice: super::notices::Notice) {
        if self.mode != Mode::Drive || self.shutdown.is_some() || self.running.contains_key(&notice.key) {
            return;
        }
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        let sender = self.sender.clone();
        let instance = id.to_owned();
        let key = notice.key.clone();
        let step = notice.step(&cell.workflow);
        let agent = step.as_ref().and_then(|step| self.shared.registry.get(&step.agent));
        let (Some(step), Some(agent)) = (step, agent) else {
            warn!(instance = id, key = %notice.key, "notify: the step or its agent is not available; the notification is dropped");
            let _ = sender.send(Message::Notified { id: instance, key });
            return;
        };
        let mut params = crate::template::render(&step.params, &cell.instance.vars, id);
        params.entry("json").or_insert_with(|| notice.payload.clone());
        params.entry("stdin").or_insert_with(|| notice.payload.clone());
        let token = CancellationToken::new();
        let cancel = token.clone();
        let task_key = key.clone();
        let handle = tokio::spawn(async move {
            for attempt in 1..=step.retry.max_attempts.max(1) {
                let request = TaskRequest {
                    instance: instance.clone(),
                    task: step.id.clone(),
                    attempt,
                    idempotency_key: task_key.clone(),
                    params: params.clone(),
                    timeout: step.timeout,
                };
                match run_attempt(Arc::clone(&agent), request, cancel.clone()).await {
                    Outcome::Succeeded { .. } => {
                        info!(instance = %instance, step = %step.id, key = %task_key, "notification sent");
                        break;
                    }
                    Outcome::Failed { error, retryable } => {
                        warn!(instance = %instance, step = %step.id, attempt, %error, "notification failed");
                        if !retryable || attempt >= step.retry.max_attempts.max(1) {
                            break;
                        }
                        tokio::time::sleep(step.retry.delay(attempt + 1, 0.5)).await;
                    }
                    // Stopping: the outbox keeps it for the next process.
                    Outcome::Cancelled { .. } => return,
                }
            }
            let _ = sender.send(Message::Notified { id: instance, key: task_key });
        });
        self.running.insert(key, Running { token, abort: handle.abort_handle() });
    }
}

async fn run_attempt(agent: Arc<dyn phasegate_agents::Agent>, request: TaskRequest, cancel: CancellationToken) -> Outcome {
    let timeout = request.timeout;
    let started = Instant::now();
    let heartbeat: phasegate_agents::Heartbeat = Arc::new(|progress| debug!(%progress, "heartbeat"));
    let context = TaskContext::new(cancel.clone(), heartbeat);
    let run = agent.run(request, context);
    let limit = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending::<()>().await,
        }
    };
    // Cancellation wins over a result that arrives at the same time: an agent
    // that observed the token returns an error, which is not a failure.
    let result = tokio::select! {
        biased;
        () = cancel.cancelled() => return Outcome::Cancelled { reason: "cancelled".to_owned() },
        result = run => result,
        () = limit => {
            let timeout = timeout.map(crate::plan::format_duration).unwrap_or_default();
            return Outcome::Failed { error: format!("timed out after {timeout}"), retryable: true };
        }
    };
    if cancel.is_cancelled() {
        return Outcome::Cancelled { reason: "cancelled".to_owned() };
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(output) => {
            let size = serde_json::to_vec(&output.0).map(|b| b.len()).unwrap_or(usize::MAX);
            if size > MAX_OUTPUT_BYTES {
                Outcome::Failed { error: format!("the output is {size} bytes; the limit is {MAX_OUTPUT_BYTES}"), retryable: false }
            } else {
                Outcome::Succeeded { output: output.0, duration_ms }
            }
        }
        Err(error) => Outcome::Failed { error: error.message().to_owned(), retryable: error.is_retryable() },
    }
}

/// The key of a watch with a sample being taken.
fn sampling_key(id: &str, phase: usize, watch: usize) -> String {
    format!("{id}/{phase}/{watch}")
}

//! The runtime's single owner of in-memory instance state.
//!
//! One tokio task receives every message (commands, task results, write
//! acknowledgements, timers) and is the only code that mutates an instance.
//! A change is applied in memory, submitted to the store, and its effects run
//! only when the store acknowledges the flush. The driver does not wait for
//! that acknowledgement: it goes on with other instances meanwhile, so many
//! instances' writes share one flush.

use crate::machine::payload;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
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

mod attempts;
mod batch;
mod decisions;
mod messages;
mod ownership;
mod recovery;
mod timers;

pub use messages::Notification;
pub(crate) use messages::{Answer, Message, Outcome};

use attempts::sampling_key;
use decisions::gate_status;

/// What the engine shares between the driver, the API and running tasks.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Registry,
    pub(crate) agent_names: AgentNames,
    pub(crate) definitions: load::Definitions,
    /// The users, their roles merged with the configuration's, and the policy.
    pub(crate) identity: std::sync::RwLock<super::identity::Directory>,
    pub(crate) events: broadcast::Sender<Notification>,
    pub(crate) global_permits: Arc<Semaphore>,
    pub(crate) agent_permits: HashMap<String, Arc<Semaphore>>,
    /// Why the engine no longer works, once it does not: its driver task
    /// stopped, or its store refuses writes. Never cleared.
    pub(crate) failure: watch::Sender<Option<String>>,
    /// Where the time comes from.
    pub(crate) clock: Arc<dyn super::Clock>,
    /// Where task logs are kept (`<data dir>/logs`), if the store has a directory.
    pub(crate) logs: Option<std::path::PathBuf>,
    /// Carries commands for instances another node owns (a cluster's server sets it).
    pub(crate) forwarder: std::sync::OnceLock<Arc<dyn super::forward::Forward>>,
}

impl Shared {
    /// The role membership decisions are authorized against, as of now.
    pub(crate) fn roles(&self) -> Arc<crate::machine::Roles> {
        self.identity.read().map(|directory| directory.roles()).unwrap_or_default()
    }

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

type Reply<T> = oneshot::Sender<Result<T, Error>>;

struct Cell {
    instance: Instance,
    workflow: Arc<Workflow>,
    /// The seq, status and wake time as of the last batch submitted.
    written_seq: u64,
    written_status: Option<crate::machine::EffectiveStatus>,
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

    pub(crate) async fn run(mut self) {
        loop {
            self.publish_activity();
            if self.shutdown.is_some() && self.pending_writes() == 0 {
                break;
            }
            let next = self.next_wake();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep(Duration::from_millis(at.since(self.shared.clock.now()))).await,
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

    fn pending_writes(&self) -> usize {
        self.cells.values().map(|c| c.pending_writes).sum()
    }

    fn publish_activity(&self) {
        let passive = self.mode == Mode::Passive;
        let active = self.cells.values().filter(|c| c.pending_writes > 0 || (!passive && c.instance.is_active(&c.workflow))).count()
            + self.running.len();
        self.active.send_replace(active);
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Start { reply, id, .. } if !self.shared.store.owns(&id) => {
                let _ = reply.send(Err(super::forward::not_owner(&id)));
            }
            Message::Operate { reply, id, .. } if !self.shared.store.owns(&id) => {
                let _ = reply.send(Err(super::forward::not_owner(&id)));
            }
            Message::Decide { reply, id, .. } if !self.shared.store.owns(&id) => {
                let _ = reply.send(Err(super::forward::not_owner(&id)));
            }
            Message::Advance { reply, id } if !self.shared.store.owns(&id) => {
                let _ = reply.send(Err(super::forward::not_owner(&id)));
            }
            Message::Ownership => self.ownership_changed(),
            Message::Start { id, workflow, hash, vars, started_by, baselines, reply } => {
                if self.cells.contains_key(&id) || matches!(self.shared.store.head(&id), Ok(Some(_))) {
                    let _ = reply.send(Err(Error::Invalid(format!("an instance `{id}` already exists; choose another --id"))));
                    return;
                }
                let now = self.shared.clock.now();
                let event = Event::InstanceStarted(payload::InstanceStarted {
                    workflow: workflow.name.clone(),
                    definition_hash: hash,
                    vars,
                    started_by,
                });
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
                    written_status: None,
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
                        if let Err(rejected) =
                            cell.apply(Event::BaselinesLoaded(payload::BaselinesLoaded { baselines }), now, &mut records, &mut effects)
                        {
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
                        Event::TaskSucceeded(payload::TaskSucceeded { phase: phase_id, task: task_id, attempt, output, duration_ms })
                    }
                    Outcome::Failed { error, retryable, .. } => {
                        Event::TaskFailed(payload::TaskFailed { phase: phase_id, task: task_id, attempt, error, retryable })
                    }
                    Outcome::Cancelled { reason } => {
                        Event::TaskCancelled(payload::TaskCancelled { phase: phase_id, task: task_id, attempt, reason })
                    }
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
                        Event::CompensationSucceeded(payload::CompensationSucceeded { step, id: step_id, attempt, output, duration_ms })
                    }
                    Outcome::Failed { error, retryable, .. } => {
                        Event::CompensationFailed(payload::CompensationFailed { step, id: step_id, attempt, error, retryable })
                    }
                    Outcome::Cancelled { reason } => Event::CompensationFailed(payload::CompensationFailed {
                        step,
                        id: step_id,
                        attempt,
                        error: format!("cancelled: {reason}"),
                        retryable: true,
                    }),
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
            Message::Wake { reply } => {
                self.fire_timers();
                let _ = reply.send(Ok(()));
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
    fn apply_and_drive(&mut self, id: &str, events: Vec<Event>, effects: Vec<Effect>, stale_outbox: Vec<Vec<u8>>, mut answer: Answer) {
        let Some(cell) = self.cells.get_mut(id) else {
            return;
        };
        let now = self.shared.clock.now();
        // A decision's outcome carries the time its event is recorded with,
        // which a repeated request id answers again.
        if let Answer::Decided(_, outcome) = &mut answer {
            outcome.at = now;
        }
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
        let now = self.shared.clock.now();
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
            answer.succeed(Some(cell), 0, self.shared.clock.now());
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
        let mut batch = self.batch(id, &records, &effects, stale_outbox);
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
        for effect in &effects {
            if let Effect::WriteRequest { request_id, .. } = effect {
                self.requests_in_flight.remove(request_id);
            }
        }
        if let Err(error) = result {
            if let Some(why) = self.shared.store.failure() {
                self.shared.fail(format!("the store refuses writes: {why}"));
            }
            // The state in memory is ahead of the store: forget it, so the
            // next use reloads what is durable. Nothing was acknowledged.
            if matches!(error, phasegate_store::Error::NotOwner { .. }) {
                // Another node took the instance over: it drives it now.
                warn!(instance = id, %error, "a write was refused: the instance moved to another node");
                self.abandon_attempts(id);
            } else {
                error!(instance = id, %error, "a write failed; the instance is reloaded from the store");
            }
            if let Some(cell) = self.cells.remove(id) {
                if let Some(wake) = cell.wake {
                    self.timers.remove(&(wake, id.to_owned()));
                }
            }
            answer.fail(error.into());
            return;
        }
        let status = self.cells.get(id).map(|c| c.instance.effective_status());
        let workflow = self.cells.get(id).map(|c| Arc::clone(&c.workflow));
        for record in &records {
            debug!(instance = id, seq = record.seq(), event = %record.event().describe(), "durable");
            let agent = match record.event() {
                Event::TaskDispatched(payload::TaskDispatched { task, .. })
                | Event::TaskSucceeded(payload::TaskSucceeded { task, .. })
                | Event::TaskFailed(payload::TaskFailed { task, .. }) => {
                    workflow.as_ref().and_then(|w| w.task_location(task).map(|(p, t)| w.phases[p].tasks[t].agent.clone()))
                }
                _ => None,
            };
            let trigger_on = match record.event() {
                Event::TriggerFired(fired) => workflow
                    .as_ref()
                    .and_then(|w| w.trigger(&fired.phase, &fired.trigger))
                    .map(|(_, t)| crate::plan::TriggerSource::from(&t.on)),
                _ => None,
            };
            let notification = Notification { instance: id.to_owned(), record: record.clone(), status, agent, trigger_on };
            let _ = self.shared.events.send(notification);
        }
        answer.succeed(self.cells.get(id), records.len(), self.shared.clock.now());
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
                // Written with the batch (see batch.rs).
                Effect::WriteOutbox { .. } | Effect::DeleteOutbox { .. } | Effect::WriteRequest { .. } | Effect::WriteBaseline { .. } => {}
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
        let evict =
            self.cells.get(id).is_some_and(|cell| cell.pending_writes == 0 && (passive || !cell.instance.is_active(&cell.workflow)));
        if evict {
            if let Some(cell) = self.cells.remove(id) {
                if let Some(wake) = cell.wake {
                    self.timers.remove(&(wake, id.to_owned()));
                    self.stored_timer = Some(self.stored_timer.map_or(wake, |t| t.min(wake)));
                }
            }
        }
    }
}

//! The runtime: a tokio task that owns the in-memory state of active
//! instances, applies events through the pure machine, writes them through the
//! store (acknowledged only once flushed), and carries out the effects:
//! dispatching tasks to agents, cancelling them, arming timers.
//!
//! [`Engine`] is the embedding API and what the CLI drives. Instances that
//! are halted, waiting for people or finished are not kept in memory; they are
//! loaded from the store when a command or a timer needs them.

mod answers;
pub mod audit;
mod builder;
pub mod clock;
pub mod cluster;
pub(crate) mod codec;
mod driver;
mod error;
mod forward;
pub mod identity;
mod load;
mod notices;
mod report_agent;
mod requests;
pub mod task_logs;
mod vars;

use crate::machine::payload;
use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use answers::{AdvanceReport, DecisionOutcome, DecisionRequest};
pub use builder::{Builder, Mode};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{DecodeError, PendingApproval, Summary};
use driver::Message;
pub use driver::Notification;
pub use error::Error;
pub use report_agent::{ReportAgent, REPORT_AGENT};
use vars::generated_id;
pub use vars::resolve_vars;

use crate::machine::{Event, Instance, Record, Rejected, TaskStatus};
use crate::model::{Diagnostics, Source};
use crate::plan::{self, AgentNames, Workflow};
use phasegate_agents::Registry;
use phasegate_store::{SledStore, Store};

/// Options of [`Engine::start`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The instance id (default: generated from the workflow's name).
    pub id: Option<String>,
    /// Variable overrides as written on a command line (`name=value`), typed
    /// by the variable's declaration.
    pub vars: Vec<(String, String)>,
    /// Who starts it.
    pub started_by: String,
    /// The instance whose gate passes scored gates compare with (`baseline.`
    /// in criteria); default: the latest pass of each gate by any instance
    /// of the same workflow.
    pub baseline: Option<String>,
}

/// One page of [`Engine::list_page`].
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The instances, in id order, with their summaries.
    pub rows: Vec<(String, Summary)>,
    /// True if more instances match after this page.
    pub more: bool,
}

/// The workflow engine: start and command instances, read their state.
pub struct Engine {
    shared: Arc<driver::Shared>,
    sender: mpsc::UnboundedSender<Message>,
    active: watch::Receiver<usize>,
    driver: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// A receiver made before recovery began, for the first subscriber.
    from_start: std::sync::Mutex<Option<broadcast::Receiver<Notification>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("store", &self.shared.store).finish()
    }
}

impl Engine {
    /// A builder with the built-in agents, driving, 64 concurrent tasks.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The store this engine writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The agent names definitions may use with this engine.
    pub fn agent_names(&self) -> &AgentNames {
        &self.shared.agent_names
    }

    /// Validates a definition against this engine's agents.
    pub fn load_definition(&self, source: &Source) -> Result<Workflow, Error> {
        plan::load_source(source, &self.shared.agent_names).map_err(Error::Definition)
    }

    async fn request<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Message) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.sender.send(make(reply)).map_err(|_| Error::ShutDown)?;
        answer.await.map_err(|_| Error::ShutDown)?
    }

    /// Starts an instance of a validated workflow: pins its definition,
    /// records `InstanceStarted` durably and returns the instance id.
    pub async fn start(&self, workflow: Workflow, options: StartOptions) -> Result<String, Error> {
        let vars = resolve_vars(&workflow, &options.vars)?;
        let roles = self.shared.roles();
        let unstaffed = workflow.unstaffed_roles(|role| roles.0.get(role).is_some_and(|members| !members.is_empty()));
        if !unstaffed.is_empty() {
            return Err(Error::Invalid(unstaffed.join("; ")));
        }
        let beyond: Vec<String> = workflow.waits_beyond_deadlines(&vars).into_iter().map(|(_, _, why)| why).collect();
        if !beyond.is_empty() {
            return Err(Error::Invalid(beyond.join("; ")));
        }
        for phase in &workflow.phases {
            // A wait is the engine's own timer: no agent to find or check.
            for task in phase.tasks.iter().filter(|task| task.wait.is_none()) {
                let agent = self.shared.registry.get(&task.agent).ok_or_else(|| {
                    Error::Invalid(format!(
                        "task `{}` uses agent `{}`, which this engine does not provide (it has: {})",
                        task.id,
                        task.agent,
                        self.shared.registry.names().collect::<Vec<_>>().join(", ")
                    ))
                })?;
                agent
                    .check_params(&crate::template::render(&task.params, &vars, "(instance)"))
                    .map_err(|message| Error::Invalid(format!("task `{}` (agent `{}`): {message}", task.id, task.agent)))?;
            }
        }
        let id = match options.id {
            Some(id) => {
                phasegate_store::check_id(&id).map_err(|e| Error::Invalid(e.to_string()))?;
                if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                    return Err(Error::Invalid(phasegate_store::Error::InvalidId(id).to_string()));
                }
                id
            }
            None => generated_id(&workflow.name),
        };
        let baselines = self.baselines(&workflow, options.baseline.as_deref())?;
        let (hash, workflow) = self.shared.definitions.pin(&*self.shared.store, workflow)?;
        let started_by = if options.started_by.is_empty() { "unknown".to_owned() } else { options.started_by };
        if self.shared.store.cluster().is_some() {
            return forward::decode(self.run_or_forward(cluster::Forwarded::Start { id, hash, vars, started_by, baselines }).await?);
        }
        self.request(|reply| Message::Start { id, workflow, hash, vars, started_by, baselines, reply }).await
    }

    /// The baselines a new instance's gates start with: per gate that reads
    /// `baseline.`, the latest pass recorded for the workflow, or for the
    /// instance named with `--baseline` (which must exist and run the same
    /// workflow). Index lookups, never a scan of history.
    fn baselines(&self, workflow: &Workflow, from: Option<&str>) -> Result<BTreeMap<String, crate::machine::Baseline>, Error> {
        let store = &self.shared.store;
        if let Some(other) = from {
            let summary = store
                .summary(other)
                .map_err(Error::from)?
                .and_then(|bytes| Summary::decode(other, &bytes).ok())
                .ok_or_else(|| Error::Invalid(format!("--baseline {other}: there is no instance `{other}` in this store")))?;
            if summary.workflow != workflow.name {
                return Err(Error::Invalid(format!(
                    "--baseline {other}: it runs workflow `{}`, not `{}`; a baseline comes from the same workflow",
                    summary.workflow, workflow.name
                )));
            }
        }
        let mut out = BTreeMap::new();
        for phase in &workflow.phases {
            for gate in phase.gates.iter().filter(|g| !g.baseline_paths.is_empty()) {
                let gate_key = format!("{}/{}", phase.id, gate.id);
                let (index, owner) = match from {
                    Some(other) => (codec::BASELINE_BY_INSTANCE_INDEX, other),
                    None => (codec::BASELINE_INDEX, workflow.name.as_str()),
                };
                let key = codec::baseline_key(owner, &gate_key);
                let mut end = key.clone();
                end.push(0);
                let found = store.index_range(index, &key, &end, 1).map_err(Error::from)?;
                if let Some((_, value)) = found.into_iter().next() {
                    match serde_json::from_slice::<crate::machine::Baseline>(&value) {
                        Ok(baseline) => {
                            out.insert(gate_key, baseline);
                        }
                        Err(error) => tracing::warn!(%error, gate = %gate_key, "ignoring a baseline that does not decode"),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Applies an operator event (halt, resume, cancel, redrive); answers once
    /// it is durable, or with the rejection (nothing appended).
    async fn operate(&self, id: &str, event: Event) -> Result<u64, Error> {
        if self.shared.store.cluster().is_some() {
            return forward::decode(self.run_or_forward(cluster::Forwarded::Operate { id: id.to_owned(), event }).await?);
        }
        self.request(|reply| Message::Operate { id: id.to_owned(), event, reply }).await
    }

    /// Stops new dispatch; with `cancel_running`, cancels in-flight attempts too.
    pub async fn halt(&self, id: &str, by: &str, reason: &str, cancel_running: bool) -> Result<u64, Error> {
        self.operate(id, Event::Halted(payload::Halted { by: by.to_owned(), reason: reason.to_owned(), cancel_running })).await
    }

    /// Compensates completed work in reverse completion order, then ends
    /// the instance rolled back, or with `to` re-enters that phase. Refused
    /// (nothing appended) when there is nothing to compensate.
    pub async fn rollback(&self, id: &str, by: &str, reason: &str, to: Option<&str>) -> Result<u64, Error> {
        self.operate(
            id,
            Event::RollbackStarted(payload::RollbackStarted { by: by.to_owned(), reason: reason.to_owned(), to: to.map(str::to_owned) }),
        )
        .await
    }

    /// Lets a halted instance go on.
    pub async fn resume(&self, id: &str, by: &str) -> Result<u64, Error> {
        self.operate(id, Event::Resumed(payload::Resumed { by: by.to_owned() })).await
    }

    /// Cancels an instance (in-flight attempts are cancelled).
    pub async fn cancel(&self, id: &str, by: &str, reason: &str) -> Result<u64, Error> {
        self.operate(id, Event::Cancelled(payload::Cancelled { by: by.to_owned(), reason: reason.to_owned() })).await
    }

    /// Redrives a failed instance from its failed (or cancelled) tasks, or
    /// from `task` only, without re-running what succeeded.
    pub async fn retry(&self, id: &str, by: &str, task: Option<&str>) -> Result<u64, Error> {
        let tasks = match task {
            Some(task) => vec![task.to_owned()],
            None => {
                let (instance, _) = self.instance(id)?;
                instance
                    .phases
                    .iter()
                    .flat_map(|phase| phase.tasks.iter())
                    .filter(|task| matches!(task.status, TaskStatus::Failed { .. } | TaskStatus::Cancelled { .. }))
                    .map(|task| task.id.clone())
                    .collect()
            }
        };
        self.operate(id, Event::Redriven(payload::Redriven { by: by.to_owned(), tasks, phase: None })).await
    }

    /// Runs a whole phase again (`retry ID --phase P`): every task, then its
    /// gates, after the phase failed (a must criterion, a rejection) or while
    /// it is on hold. What was decided and measured so far stays in the history.
    pub async fn retry_phase(&self, id: &str, by: &str, phase: &str) -> Result<u64, Error> {
        self.operate(id, Event::Redriven(payload::Redriven { by: by.to_owned(), tasks: Vec::new(), phase: Some(phase.to_owned()) })).await
    }

    /// Delivers an external event (`data` is any JSON, e.g. `{"severity": "P1"}`);
    /// conditions read the latest one of a name as `signals.<name>`. Refused
    /// for undeclared signals and for completed, failed or cancelled instances.
    pub async fn signal(&self, id: &str, name: &str, data: Value, by: &str) -> Result<u64, Error> {
        self.operate(id, Event::SignalReceived(payload::SignalReceived { name: name.to_owned(), data, by: by.to_owned() })).await
    }

    /// Takes a human decision at a gate (`gate` is `phase/gate`, a gate id, or
    /// `None` for the one gate awaiting a decision). Authorized against the
    /// gate's current escalation level, directly or through a role; refused
    /// decisions append nothing.
    ///
    /// A request that does not say how its principal was established is
    /// recorded as asserted locally; a store whose policy requires
    /// authenticated decisions refuses it.
    pub async fn decide(&self, id: &str, gate: Option<&str>, mut request: DecisionRequest) -> Result<DecisionOutcome, Error> {
        if request.auth.is_unrecorded() {
            request.auth = crate::machine::Authentication::Local;
        }
        if !request.auth.is_authenticated() && self.policy().require_authenticated_decisions {
            return Err(Error::Forbidden(format!(
                "this store refuses unauthenticated decisions (its policy: require_authenticated_decisions): {} was only asserted. \
                 Decide through `phasegate serve` with your own token (PHASEGATE_TOKEN or `phasegate login`)",
                request.principal
            )));
        }
        if self.shared.store.cluster().is_some() {
            let command = cluster::Forwarded::Decide { id: id.to_owned(), gate: gate.map(str::to_owned), request };
            return forward::decode(self.run_or_forward(command).await?);
        }
        self.request(|reply| Message::Decide { id: id.to_owned(), gate: gate.map(str::to_owned), request, reply }).await
    }

    /// Moves an instance on as far as it can go now (starting phases whose
    /// gates passed, evaluating gates) and reports what still blocks it.
    pub async fn advance(&self, id: &str) -> Result<AdvanceReport, Error> {
        if self.shared.store.cluster().is_some() {
            return forward::decode(self.run_or_forward(cluster::Forwarded::Advance { id: id.to_owned() }).await?);
        }
        self.request(|reply| Message::Advance { id: id.to_owned(), reply }).await
    }

    /// Decisions people are waiting for, across instances (from the index,
    /// without loading instances); with `principal`, only those they may take.
    pub fn approvals(&self, principal: Option<&str>) -> Result<Vec<PendingApproval>, Error> {
        let mut out = Vec::new();
        let mut corrupt = None;
        let roles = self.shared.roles();
        self.shared.store.scan_index(codec::APPROVAL_INDEX, b"", &mut |key, value| {
            let pending: PendingApproval = match serde_json::from_slice(value) {
                Ok(pending) => pending,
                Err(e) => {
                    corrupt = Some(Error::Corrupt(format!("approval index entry {}: {e}", String::from_utf8_lossy(key))));
                    return false;
                }
            };
            if let Some(principal) = principal {
                let roles = &roles;
                let approvers: Vec<crate::plan::Principal> =
                    pending.approvers.iter().filter_map(|a| crate::plan::Principal::parse(a)).collect();
                if roles.allows(&approvers, principal).is_none() {
                    return true;
                }
            }
            out.push(pending);
            true
        })?;
        match corrupt {
            Some(error) => Err(error),
            None => Ok(out),
        }
    }

    /// One page of [`Engine::approvals`]: `limit` decisions after skipping
    /// `skip`, and whether more follow. Reads the index only as far as the
    /// page needs, so an inbox over a large store answers at once.
    pub fn approvals_page(&self, principal: Option<&str>, skip: usize, limit: usize) -> Result<(Vec<PendingApproval>, bool), Error> {
        let mut out = Vec::new();
        let mut corrupt = None;
        let mut matched = 0usize;
        let mut more = false;
        let roles = self.shared.roles();
        self.shared.store.scan_index(codec::APPROVAL_INDEX, b"", &mut |key, value| {
            let pending: PendingApproval = match serde_json::from_slice(value) {
                Ok(pending) => pending,
                Err(e) => {
                    corrupt = Some(Error::Corrupt(format!("approval index entry {}: {e}", String::from_utf8_lossy(key))));
                    return false;
                }
            };
            if let Some(principal) = principal {
                let approvers: Vec<crate::plan::Principal> =
                    pending.approvers.iter().filter_map(|a| crate::plan::Principal::parse(a)).collect();
                if roles.allows(&approvers, principal).is_none() {
                    return true;
                }
            }
            matched += 1;
            if matched <= skip {
                return true;
            }
            if out.len() == limit {
                more = true;
                return false;
            }
            out.push(pending);
            true
        })?;
        match corrupt {
            Some(error) => Err(error),
            None => Ok((out, more)),
        }
    }

    /// The role membership decisions are authorized against: the
    /// configuration's, plus the roles of the store's active users.
    pub fn roles(&self) -> Arc<crate::machine::Roles> {
        self.shared.roles()
    }

    /// Issues user `name` an API token (shown once; only its hash is stored)
    /// with `roles` on top of the configuration's. Refused while `name`
    /// holds a current token.
    pub fn add_user(&self, name: &str, roles: &[String], by: &str) -> Result<identity::Issued, Error> {
        let mut directory = self.shared.identity.write().map_err(|_| Error::ShutDown)?;
        directory.add(&*self.shared.store, name, roles, by, self.shared.clock.now())
    }

    /// Revokes user `name`'s token: the server refuses it from now on.
    pub fn revoke_user(&self, name: &str, by: &str) -> Result<identity::User, Error> {
        let mut directory = self.shared.identity.write().map_err(|_| Error::ShutDown)?;
        directory.revoke(&*self.shared.store, name, by, self.shared.clock.now())
    }

    /// The store's users (never their tokens).
    pub fn users(&self) -> Vec<identity::User> {
        self.shared.identity.read().map(|directory| directory.users()).unwrap_or_default()
    }

    /// The user a presented API token belongs to, if it is current.
    pub fn authenticate(&self, token: &str) -> Result<identity::User, identity::TokenRefusal> {
        self.shared.identity.read().map_err(|_| identity::TokenRefusal::Unknown)?.authenticate(token)
    }

    /// The store's policy on unauthenticated decisions.
    pub fn policy(&self) -> identity::Policy {
        self.shared.identity.read().map(|directory| directory.policy()).unwrap_or_default()
    }

    /// Sets the store's policy (durably).
    pub fn set_policy(&self, policy: identity::Policy) -> Result<(), Error> {
        let mut directory = self.shared.identity.write().map_err(|_| Error::ShutDown)?;
        directory.set_policy(&*self.shared.store, policy)
    }

    /// The durable state of an instance and its workflow.
    pub fn instance(&self, id: &str) -> Result<(Instance, Arc<Workflow>), Error> {
        load::instance(&*self.shared.store, &self.shared.definitions, &self.shared.agent_names, id)
    }

    /// Every event of an instance, in order.
    pub fn history(&self, id: &str) -> Result<Vec<Record>, Error> {
        load::history(&*self.shared.store, id)
    }

    /// What the tasks of instance `id` printed: of `task` (every task with a
    /// log when none is named), of `attempt` (the latest when none is named),
    /// from line `from` of each ([`task_logs`]).
    pub fn task_logs(&self, id: &str, task: Option<&str>, attempt: Option<u32>, from: usize) -> Result<Vec<task_logs::AttemptLog>, Error> {
        if self.shared.store.head(id)?.is_none() {
            return Err(Error::UnknownInstance(id.to_owned()));
        }
        task_logs::read(self.shared.logs.as_deref(), id, task, attempt, from)
    }

    /// The records of an instance after sequence number `after`; when there
    /// are none yet, waits up to `wait` for the next one to be made durable
    /// (a long poll: how `history --follow` and `status --watch` learn of
    /// changes without reading the store over and over).
    pub async fn history_after(&self, id: &str, after: u64, wait: Duration) -> Result<Vec<Record>, Error> {
        // Subscribe before reading, so nothing made durable in between is missed.
        let mut events = self.subscribe();
        let records = load::history_from(&*self.shared.store, id, after + 1)?;
        if !records.is_empty() || wait.is_zero() {
            return Ok(records);
        }
        // Another node of a cluster drives it: its events are not announced
        // here, so the store is read again every quarter second.
        if self.shared.store.cluster().is_some() && !self.shared.store.owns(id) {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(left.min(Duration::from_millis(250))).await;
                let records = load::history_from(&*self.shared.store, id, after + 1)?;
                if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                    return Ok(records);
                }
            }
        }
        let arrived = tokio::time::timeout(wait, async {
            loop {
                match events.recv().await {
                    Ok(note) if note.instance == id && note.record.seq() > after => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
        .await;
        match arrived {
            Ok(()) => load::history_from(&*self.shared.store, id, after + 1),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Checks the audit chain of instance `id` (and, when given, that it
    /// still holds the record `expect` names), naming the first record that
    /// does not match.
    pub fn audit(&self, id: &str, expect: Option<&audit::ChainHead>) -> Result<audit::Audit, Error> {
        audit::verify(&*self.shared.store, id, expect)
    }

    /// Instances with their summaries, optionally only those with `status`.
    pub fn list(&self, status: Option<crate::machine::EffectiveStatus>) -> Result<Vec<(String, Summary)>, Error> {
        let store = &self.shared.store;
        let quarantined: BTreeSet<String> = store.quarantined()?.into_iter().map(|(id, _)| id).collect();
        let mark = |id: &str, summary: Summary| match quarantined.contains(id) {
            true => Summary { status: crate::machine::EffectiveStatus::Quarantined, ..summary },
            false => summary,
        };
        let mut out = Vec::new();
        match status {
            None => {
                // Everything: one ordered scan of the summaries, not a lookup per instance.
                let mut corrupt = None;
                store.scan_summaries(&mut |id, bytes| match Summary::decode(id, bytes) {
                    Ok(summary) => {
                        out.push((id.to_owned(), mark(id, summary)));
                        true
                    }
                    Err(e) => {
                        corrupt = Some(Error::Corrupt(e.to_string()));
                        false
                    }
                })?;
                if let Some(error) = corrupt {
                    return Err(error);
                }
            }
            Some(status) => {
                for id in store.instances_with_status(status.as_str())? {
                    if let Some(bytes) = store.summary(&id)? {
                        let summary = Summary::decode(&id, &bytes).map_err(|e| Error::Corrupt(e.to_string()))?;
                        let summary = mark(&id, summary);
                        out.push((id, summary));
                    }
                }
            }
        }
        Ok(out)
    }

    /// One page of instances, in id order: `limit` rows after skipping
    /// `skip` of those with `status` and (when given) of `workflow`. Reads
    /// only as far as the page needs (the status index for a status, the
    /// summaries in order otherwise), so the first pages of a large store
    /// answer at once.
    pub fn list_page(
        &self,
        status: Option<crate::machine::EffectiveStatus>,
        workflow: Option<&str>,
        skip: usize,
        limit: usize,
    ) -> Result<Listing, Error> {
        let store = &self.shared.store;
        let quarantined: BTreeSet<String> = store.quarantined()?.into_iter().map(|(id, _)| id).collect();
        let mark = |id: &str, summary: Summary| match quarantined.contains(id) {
            true => Summary { status: crate::machine::EffectiveStatus::Quarantined, ..summary },
            false => summary,
        };
        let wanted = |summary: &Summary| workflow.is_none_or(|w| summary.workflow == w);
        let mut rows = Vec::new();
        let mut matched = 0usize;
        let mut more = false;
        match status {
            Some(status) => {
                for id in store.instances_with_status(status.as_str())? {
                    let Some(bytes) = store.summary(&id)? else { continue };
                    let summary = mark(&id, Summary::decode(&id, &bytes).map_err(|e| Error::Corrupt(e.to_string()))?);
                    if !wanted(&summary) {
                        continue;
                    }
                    matched += 1;
                    if matched <= skip {
                        continue;
                    }
                    if rows.len() == limit {
                        more = true;
                        break;
                    }
                    rows.push((id, summary));
                }
            }
            None => {
                let mut corrupt = None;
                store.scan_summaries(&mut |id, bytes| {
                    // Rows skipped without a workflow filter need not be decoded.
                    if workflow.is_none() && matched < skip {
                        matched += 1;
                        return true;
                    }
                    let summary = match Summary::decode(id, bytes) {
                        Ok(summary) => mark(id, summary),
                        Err(e) => {
                            corrupt = Some(Error::Corrupt(e.to_string()));
                            return false;
                        }
                    };
                    if !wanted(&summary) {
                        return true;
                    }
                    matched += 1;
                    if matched <= skip {
                        return true;
                    }
                    if rows.len() == limit {
                        more = true;
                        return false;
                    }
                    rows.push((id.to_owned(), summary));
                    true
                })?;
                if let Some(error) = corrupt {
                    return Err(error);
                }
            }
        }
        Ok(Listing { rows, more })
    }

    /// A stream of every event the engine makes durable from now on. The
    /// first call's stream starts when the engine did, so it also sees what
    /// recovery did before anyone could subscribe (a buffer of 4,096 events;
    /// a slower reader gets `Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        let first = self.from_start.lock().ok().and_then(|mut first| first.take());
        first.unwrap_or_else(|| self.shared.events.subscribe())
    }

    /// Waits until no instance has work to start or in flight: everything is
    /// done, failed, halted or waiting for people.
    pub async fn run_until_idle(&self) {
        let mut active = self.active.clone();
        // Let the driver take every message already sent before looking.
        let _ = self.request::<()>(|reply| Message::Barrier { reply }).await;
        let _ = active.wait_for(|count| *count == 0).await;
    }

    /// The time now, by the engine's clock.
    pub fn now(&self) -> crate::machine::Timestamp {
        self.shared.clock.now()
    }

    /// Makes the engine look at its timers now (after a [`ManualClock`]
    /// moved): due deadlines, retries, schedules and samples fire, and the
    /// call returns once the driver has handled everything sent before it.
    pub async fn wake(&self) {
        let _ = self.request::<()>(|reply| Message::Wake { reply }).await;
    }

    /// `Ok` while the engine works; otherwise why not: its driver task
    /// stopped, or its store refuses writes (a full disk, an I/O error, its
    /// data directory deleted or replaced). A server answers `/healthz`
    /// from this and refuses writes while it is an error.
    pub fn health(&self) -> Result<(), String> {
        if let Some(why) = self.shared.failure.borrow().clone() {
            return Err(why);
        }
        match self.shared.store.failure() {
            Some(why) => {
                let why = format!("the store refuses writes: {why}");
                self.shared.fail(why.clone());
                Err(why)
            }
            None => Ok(()),
        }
    }

    /// Resolves once the engine has failed (see [`Engine::health`]), with why.
    pub async fn failed(&self) -> String {
        let mut failure = self.shared.failure.subscribe();
        loop {
            if let Some(why) = failure.borrow_and_update().clone() {
                return why;
            }
            if failure.changed().await.is_err() {
                return std::future::pending::<String>().await;
            }
        }
    }

    /// Writes a consistent copy of the store into `dest` (a new directory):
    /// everything acknowledged before the call, while the engine runs.
    pub async fn backup(&self, dest: &std::path::Path) -> Result<phasegate_store::BackupReport, Error> {
        let store = Arc::clone(&self.shared.store);
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || store.backup(&dest)).await.map_err(|_| Error::ShutDown)?.map_err(Error::from)
    }

    /// Stops dispatching, lets every write in progress become durable and
    /// stops the runtime. Attempts in flight are abandoned, not recorded: they
    /// are dispatched again, with the same idempotency key, by the next engine
    /// that opens the store. Everything stays resumable.
    pub async fn shutdown(&self) {
        let _ = self.request::<()>(|reply| Message::Shutdown { reply }).await;
        if let Some(handle) = self.driver.lock().await.take() {
            let _ = handle.await;
        }
    }
}

/// How long [`Engine::shutdown`] waits for writes in progress.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

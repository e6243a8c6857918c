//! Recovery and loading: which instances a driving engine resumes when it
//! opens the store, and loading an instance (snapshot plus the events after
//! it) when a command or a timer needs it.

use super::*;
use crate::machine::payload;

impl Driver {
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
        // On a shared store, only what this node owns (the rest is its owners').
        ids.retain(|id| store.owns(id) && !self.cells.contains_key(id));
        self.refresh_stored_timer();
        let count = ids.len();
        for id in ids {
            self.resume_instance(&id);
        }
        info!(instances = count, "recovered");
    }

    pub(super) fn resume_instance(&mut self, id: &str) {
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
                events.push(Event::CompensationFailed(payload::CompensationFailed {
                    step,
                    id: rollback.steps[step].state.id.clone(),
                    attempt,
                    error: "cancelled while the engine was down".to_owned(),
                    retryable: true,
                }));
            }
        }
        for (p, t, attempt, key) in in_flight {
            if redispatch {
                effects.push(Effect::Dispatch { phase: p, task: t, attempt, key });
            } else {
                let phase = &cell.instance.phases[p];
                events.push(Event::TaskCancelled(payload::TaskCancelled {
                    phase: phase.id.clone(),
                    task: phase.tasks[t].id.clone(),
                    attempt,
                    reason: "cancelled while the engine was down".to_owned(),
                }));
            }
        }
        // Notifications not yet delivered are sent again, with their key.
        let notices: Vec<crate::runtime::notices::Notice> =
            outbox.iter().filter_map(|(_, value)| crate::runtime::notices::Notice::decode(value)).collect();
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
    pub(super) fn ensure_loaded(&mut self, id: &str) -> bool {
        if self.cells.contains_key(id) {
            return true;
        }
        // Another node's instance is driven there, never loaded here.
        if !self.shared.store.owns(id) {
            return false;
        }
        match load::instance(&*self.shared.store, &self.shared.definitions, &self.shared.agent_names, id) {
            Ok((instance, workflow)) => {
                let summary = self.shared.store.summary(id).ok().flatten().and_then(|bytes| Summary::decode(id, &bytes).ok());
                let cell = Cell {
                    written_seq: instance.seq,
                    written_status: Some(instance.effective_status()),
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

    pub(super) fn load_error(&self, id: &str) -> Error {
        match load::instance(&*self.shared.store, &self.shared.definitions, &self.shared.agent_names, id) {
            Err(error) => error,
            Ok(_) => Error::UnknownInstance(id.to_owned()),
        }
    }
}

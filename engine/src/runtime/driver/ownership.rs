//! A cluster node's share of the instances: what it drops when a shard
//! leaves it and what it recovers when one comes to it.

use super::*;

impl Driver {
    /// Stops the attempts of an instance this node no longer drives: the
    /// owner runs them again with the same key, and a late result from here
    /// would be refused by the store anyway.
    pub(super) fn abandon_attempts(&mut self, id: &str) {
        let prefix = format!("{id}/");
        let keys: Vec<String> = self.running.keys().filter(|key| key.starts_with(&prefix)).cloned().collect();
        for key in keys {
            if let Some(running) = self.running.remove(&key) {
                running.abort.abort();
            }
        }
        self.sampling.retain(|key| !key.starts_with(&prefix));
    }

    /// Drops the instances this node no longer owns (without writing
    /// anything: their new owner recovers them from the store) and recovers
    /// the ones it now owns.
    pub(super) fn ownership_changed(&mut self) {
        let store = Arc::clone(&self.shared.store);
        let gone: Vec<String> = self.cells.keys().filter(|id| !store.owns(id)).cloned().collect();
        for id in &gone {
            if let Some(cell) = self.cells.remove(id) {
                if let Some(wake) = cell.wake {
                    self.timers.remove(&(wake, id.clone()));
                }
            }
            self.abandon_attempts(id);
        }
        if !gone.is_empty() {
            info!(instances = gone.len(), "handed instances over to the nodes that own them now");
        }
        if self.mode == Mode::Drive && self.shutdown.is_none() {
            self.recover();
        }
    }
}

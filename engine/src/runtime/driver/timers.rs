//! Wake-ups: the in-memory timers of loaded instances and the store's
//! due-timer index for the rest.

use super::*;

impl Driver {
    pub(super) fn next_wake(&self) -> Option<Timestamp> {
        if self.mode == Mode::Passive || self.shutdown.is_some() {
            return None;
        }
        let memory = self.timers.first().map(|(at, _)| *at);
        match (memory, self.stored_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn refresh_stored_timer(&mut self) {
        let now = self.shared.clock.now();
        // Due timers of instances not in memory: load and drive them.
        let due = self.shared.store.index_range(TIMER_INDEX, &0u64.to_be_bytes(), &(now.0 + 1).to_be_bytes(), 1024).unwrap_or_default();
        let ids: Vec<String> =
            due.into_iter().map(|(key, _)| String::from_utf8_lossy(key.get(8..).unwrap_or_default()).into_owned()).collect();
        let store = Arc::clone(&self.shared.store);
        for id in ids {
            if !self.cells.contains_key(&id) && store.owns(&id) {
                self.resume_instance(&id);
            }
        }
        // The next timer of an instance this node owns (on a shared store,
        // the index holds every node's, and the others' fire there; if the
        // next 4,096 are all theirs, look again in a second).
        let shared = store.cluster().is_some();
        let ahead = store
            .index_range(TIMER_INDEX, &(now.0 + 1).to_be_bytes(), &u64::MAX.to_be_bytes(), if shared { 4096 } else { 1 })
            .unwrap_or_default();
        let at = |key: &[u8]| key.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(|b| Timestamp(u64::from_be_bytes(b)));
        let mine = ahead.iter().find(|(key, _)| store.owns(&String::from_utf8_lossy(key.get(8..).unwrap_or_default())));
        let next = match mine {
            Some((key, _)) => at(key),
            None if ahead.len() >= 4096 => Some(Timestamp(now.0 + 1_000)),
            None => None,
        };
        self.stored_timer = next;
    }

    pub(super) fn fire_timers(&mut self) {
        let now = self.shared.clock.now();
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
}

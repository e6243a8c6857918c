//! Where the runtime reads the time.
//!
//! The machine never reads a clock: time is an input to `step` and
//! `decide`. This is the one place the runtime gets it from, injected into
//! the builder, so a test can hold time still and move it on
//! ([`ManualClock`]) instead of sleeping and hoping, and deadlines,
//! schedules and watch windows behave the same under any load.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::machine::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The time now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock: what a running engine uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
    }
}

/// The system clock's time now, for code outside an engine (the CLI's
/// displays, the demo target).
pub fn system_now() -> Timestamp {
    SystemClock.now()
}

/// A clock that moves only when told: for tests of deadlines, schedules
/// and watch windows. After moving it, call [`crate::Engine::wake`] so the
/// engine looks at its timers again.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn at(start: Timestamp) -> Self {
        Self { now: AtomicU64::new(start.0) }
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        self.now.store(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

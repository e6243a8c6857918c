//! # phasegate-store
//!
//! The durable layer: per-instance append-only event logs with contiguous
//! sequence numbers, snapshots, named indexes (instances by status, pending
//! approvals, due timers, ...), an outbox of effects, pinned definitions and a
//! format-version key, on sled 0.34 (or in memory, for tests).
//!
//! This crate must never know about workflows, phases, tasks or gates: it
//! stores opaque, versioned records by instance and sequence number, and the
//! engine owns their encoding. What it promises is in [`Store`]: a batch is
//! applied atomically, in order, and acknowledged only after it is flushed;
//! batches from many instances share one flush (group commit).

mod backend;
mod keys;
mod log;
pub mod marker;
pub mod postgres;

use std::fmt;

pub use backend::{MemoryBackend, OpenMode, SledBackend};
pub use log::{BackupReport, LogStore, MemoryStore, SledStore};
pub use postgres::{ClusterStatus, NodeAddress, PostgresBackend, PostgresOptions, PostgresStore};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// What can go wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Another process holds the database (sled allows one).
    #[error("the store at {path} is in use by another phasegate process; stop it, or use the running server (phasegate serve)")]
    InUse {
        /// The data directory.
        path: String,
    },
    /// The data directory holds no store.
    #[error("no store at {path} (create one with `phasegate start`, or give the right --db)")]
    NoStore {
        /// The data directory.
        path: String,
    },
    /// The directory has a store marker, but sled's data is missing or unreadable.
    #[error(
        "the store at {path} has lost its data: {detail}. It was not opened and nothing was changed. \
         Restore it from a backup (`phasegate restore BACKUP --db NEW_PATH`), or move the directory aside to start afresh"
    )]
    LostData {
        /// The data directory.
        path: String,
        /// What is missing.
        detail: String,
    },
    /// The store was written by a newer phasegate.
    #[error("the store at {path} has format version {found}, newer than this phasegate understands ({supported}); upgrade phasegate")]
    NewerFormat {
        /// The data directory.
        path: String,
        /// The version found.
        found: u32,
        /// The version this build supports.
        supported: u32,
    },
    /// A batch expected a different last sequence number (a concurrent writer, or a bug).
    #[error("instance {instance}: expected the log to end at {expected}, but it ends at {found}")]
    SequenceConflict {
        /// The instance.
        instance: String,
        /// What the batch expected.
        expected: u64,
        /// What the log holds.
        found: u64,
    },
    /// A head changed between the writer's read and its write: another
    /// node wrote the instance. The writer retries each batch on its own,
    /// and a batch that really conflicts gets [`Error::SequenceConflict`].
    #[error("instance {instance} was written by another node meanwhile")]
    Stale {
        /// The instance.
        instance: String,
    },
    /// The instance's shard is leased to another node (this one never held
    /// it, or lost its lease): the database refused the write.
    #[error(
        "instance {instance} is driven by another node now (this node does not hold the lease of its shard {shard}); nothing was written"
    )]
    NotOwner {
        /// The instance.
        instance: String,
        /// Its shard.
        shard: u32,
    },
    /// The database's schema is older than this build's.
    #[error("the store at {location} has schema version {found}, older than this phasegate's ({supported}); run `phasegate store migrate --store URL` once, then start the nodes")]
    OldSchema {
        /// The database, without its password.
        location: String,
        /// The version found.
        found: u32,
        /// The version this build writes.
        supported: u32,
    },
    /// An instance id the key layout cannot hold.
    #[error("`{0}` is not a valid instance id: use 1 to 128 letters, digits, `.`, `-` or `_`, starting with a letter or digit")]
    InvalidId(String),
    /// Stored bytes that do not have the layout this crate wrote.
    #[error("corrupt store record {key}: {detail}")]
    Corrupt {
        /// The key, printed.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// An I/O or sled error.
    #[error("store I/O error: {0}")]
    Io(String),
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The last sequence number and status of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the last event (events are numbered from 1).
    pub seq: u64,
    /// The instance's status as the engine last wrote it (drives the status index).
    pub status: String,
}

/// A change to a named index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexOp {
    /// Sets `key` in `index` to `value`.
    Put {
        /// The index name.
        index: String,
        /// The key (ordered bytewise).
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Removes `key` from `index`.
    Delete {
        /// The index name.
        index: String,
        /// The key.
        key: Vec<u8>,
    },
}

/// A change to an instance's outbox of effects not yet carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxOp {
    /// Records an effect under `key`.
    Put {
        /// The key, unique within the instance.
        key: Vec<u8>,
        /// The encoded effect.
        value: Vec<u8>,
    },
    /// The effect under `key` is done.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

/// Everything one state change writes, applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The instance.
    pub instance: String,
    /// The sequence number the log must end at before this batch (0 for a new instance).
    pub expected_seq: u64,
    /// Events appended as `expected_seq + 1`, `+ 2`, ...
    pub events: Vec<Vec<u8>>,
    /// The instance's new status, if it changed (or for a new instance).
    pub status: Option<String>,
    /// A new summary of the instance (what listings show without loading it).
    pub summary: Option<Vec<u8>>,
    /// A snapshot of the state after the last event of this batch.
    pub snapshot: Option<Vec<u8>>,
    /// Index changes.
    pub index: Vec<IndexOp>,
    /// Outbox changes.
    pub outbox: Vec<OutboxOp>,
}

/// An instance as stored: its head, summary, latest snapshot and the events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Last sequence number and status.
    pub head: Head,
    /// The latest summary.
    pub summary: Option<Vec<u8>>,
    /// The latest snapshot and the sequence number it was taken at.
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// Events after the snapshot (all events when there is none), in order.
    pub events: Vec<(u64, Vec<u8>)>,
}

/// Called on the writer thread once a batch is durable (or refused).
pub type Done = Box<dyn FnOnce(Result<()>) + Send + 'static>;

/// The durable log-and-index layer the engine writes through.
///
/// Contract: batches are applied in submission order; each atomically (its
/// events, status, summary, snapshot, index and outbox changes all or none);
/// `done` is called only after the batch is flushed to disk (for the sled
/// store), so an acknowledged batch survives a process crash.
pub trait Store: Send + Sync + fmt::Debug {
    /// Submits a batch; `done` is called once it is durable or refused.
    fn submit(&self, batch: Batch, done: Done);

    /// The writer's counters (batches, events, flushes and their time), if
    /// the store keeps them.
    fn stats(&self) -> Option<&log::Stats> {
        None
    }

    /// Why the store refuses writes, if it does: a write or flush failed
    /// (a full disk, an I/O error), or its directory was deleted or
    /// replaced. A failed store stays failed until it is reopened.
    fn failure(&self) -> Option<String> {
        None
    }

    /// Writes a consistent copy of the whole store (everything acknowledged
    /// before the call, nothing after) into `dest`, a new directory that
    /// opens as a store of its own.
    fn backup(&self, dest: &std::path::Path) -> Result<BackupReport> {
        let _ = dest;
        Err(Error::Io("this store cannot make backups".to_owned()))
    }

    /// Submits a batch and waits until it is durable.
    fn append(&self, batch: Batch) -> Result<()> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.submit(
            batch,
            Box::new(move |result| {
                let _ = sender.send(result);
            }),
        );
        receiver.recv().map_err(|_| Error::Closed)?
    }

    /// The head of an instance, if it exists.
    fn head(&self, instance: &str) -> Result<Option<Head>>;

    /// The instance's snapshot and the events after it.
    fn load(&self, instance: &str) -> Result<Option<Loaded>>;

    /// Events with sequence numbers from `from` (inclusive), in order.
    fn events(&self, instance: &str, from: u64) -> Result<Vec<(u64, Vec<u8>)>>;

    /// Every instance with its head, ordered by id.
    fn instances(&self) -> Result<Vec<(String, Head)>>;

    /// Ids of the instances whose status is `status`, ordered by id (an index lookup).
    fn instances_with_status(&self, status: &str) -> Result<Vec<String>>;

    /// The summary of an instance.
    fn summary(&self, instance: &str) -> Result<Option<Vec<u8>>>;

    /// At most `limit` entries of a named index whose keys lie in `[start, end)`, in key order.
    fn index_range(&self, index: &str, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Entries of a named index whose keys start with `prefix`, in key order.
    fn index_prefix(&self, index: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Shows the entries of a named index whose keys start with `prefix`
    /// (keys without the index's name) to `visit`, in key order, without
    /// copying them, until `visit` returns false. For listings over a large
    /// index; `visit` must not use the store.
    fn scan_index(&self, index: &str, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;

    /// Shows every instance's id and summary to `visit`, in id order, without
    /// copying them, until `visit` returns false: one ordered scan instead of
    /// a lookup per instance. `visit` must not use the store.
    fn scan_summaries(&self, visit: &mut dyn FnMut(&str, &[u8]) -> bool) -> Result<()>;

    /// Every quarantined instance with the reason, in id order.
    fn quarantined(&self) -> Result<Vec<(String, String)>>;

    /// The instance's outbox, in key order.
    fn outbox(&self, instance: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// The instances that have outbox entries (effects not yet carried out).
    fn outbox_instances(&self) -> Result<Vec<String>>;

    /// Stores a definition under its content hash (durably; idempotent).
    fn put_definition(&self, hash: &str, bytes: &[u8]) -> Result<()>;

    /// The definition stored under `hash`.
    fn definition(&self, hash: &str) -> Result<Option<Vec<u8>>>;

    /// Sets an instance apart: its status becomes `quarantined` and `reason`
    /// is kept for operators; nothing else about it changes.
    fn quarantine(&self, instance: &str, reason: &str) -> Result<()>;

    /// Why an instance was quarantined, if it was.
    fn quarantine_reason(&self, instance: &str) -> Result<Option<String>>;

    /// Sets `key` of the store's settings to `value` (or removes it, with
    /// `None`), durably: records that belong to the store rather than to an
    /// instance, such as its users and its policy.
    fn put_setting(&self, key: &str, value: Option<&[u8]>) -> Result<()>;

    /// The settings whose keys start with `prefix`, in key order.
    fn settings(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Whether this process may write `instance` now. A store shared by
    /// several nodes leases each instance to one of them; every other
    /// store owns all its instances.
    fn owns(&self, instance: &str) -> bool {
        let _ = instance;
        true
    }

    /// Moves on whenever what this process owns changes (a shard gained,
    /// given up or lost), so the engine knows when to load or drop instances.
    fn ownership_epoch(&self) -> u64 {
        0
    }

    /// The node that owns `instance` now and where it answers, when this
    /// process does not; none while nobody holds it (a takeover under way).
    fn owner(&self, instance: &str) -> Result<Option<postgres::NodeAddress>> {
        let _ = instance;
        Ok(None)
    }

    /// What nodes sharing this store prove to each other that they do,
    /// when they forward commands (none for a store only one process opens).
    fn cluster_secret(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Tells the other nodes where this process's control API answers.
    fn advertise(&self, address: &str) {
        let _ = address;
    }

    /// This node's part in a cluster (shards held, renewals, takeovers), if
    /// its store is shared.
    fn cluster(&self) -> Option<postgres::ClusterStatus> {
        None
    }
}

/// The status the store gives quarantined instances.
pub const QUARANTINED: &str = "quarantined";

/// Checks that an id fits the key layout: 1 to 128 letters, digits, `.`,
/// `-` or `_`, and not `.` or `..` (which read as paths). The engine gives
/// new instances a stricter rule (a letter or digit first); this one also
/// admits ids that older versions generated.
pub fn check_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_owned()))
    }
}

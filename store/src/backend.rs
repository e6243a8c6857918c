//! Ordered key-value backends: sled on disk, a B-tree in memory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::{Error, Result};

/// One write of a batch: a key and its new value, or `None` to delete it.
pub(crate) type Write = (Vec<u8>, Option<Vec<u8>>);

/// What a guarded write expects of one instance's head: the bytes it had
/// when the writer read it, and the bytes the write leaves there (by which
/// a retried write whose first commit was lost in transit is recognised).
#[derive(Debug, Clone)]
pub struct Guard {
    /// The instance.
    pub instance: String,
    /// The head's key.
    pub key: Vec<u8>,
    /// The head as read (none for a new instance).
    pub before: Option<Vec<u8>>,
    /// The head as written.
    pub after: Option<Vec<u8>>,
}

/// What the log layer needs from a key-value store.
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// The value of a key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Entries with keys in `[start, end)`, ordered.
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.range_limit(start, end, usize::MAX)
    }
    /// At most `limit` entries with keys in `[start, end)`, ordered.
    fn range_limit(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        if limit > 0 {
            self.scan(start, end, &mut |key, value| {
                out.push((key.to_vec(), value.to_vec()));
                out.len() < limit
            })?;
        }
        Ok(out)
    }
    /// Shows each entry with a key in `[start, end)` to `visit`, in order,
    /// without copying it, until `visit` returns false: listings over many
    /// entries pay for decoding, not for copies. `visit` must not use the
    /// backend.
    fn scan(&self, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;
    /// Applies writes atomically (visible to readers at once, durable after `flush`).
    fn apply(&self, writes: Vec<Write>) -> Result<()>;
    /// Applies writes atomically only if every guarded key still holds the
    /// value it held when the writer read it, and (on a shared database)
    /// only while this node holds the lease of each guarded instance; fails
    /// with [`Error::Stale`] or [`Error::NotOwner`] and writes nothing
    /// otherwise. A backend only this process writes (sled, memory) has
    /// nothing to check.
    fn apply_guarded(&self, writes: Vec<Write>, guards: &[Guard]) -> Result<()> {
        let _ = guards;
        self.apply(writes)
    }
    /// Makes everything applied so far durable.
    fn flush(&self) -> Result<()>;
    /// Whether other processes write the same data (a shared database), so
    /// the writer's reads may be stale by the time it writes.
    fn is_shared(&self) -> bool {
        false
    }
    /// Whether this process may write `instance` now (a shared database
    /// leases each instance to one node; a private store owns them all).
    fn owns(&self, instance: &str) -> bool {
        let _ = instance;
        true
    }
    /// Moves on whenever what this process owns changes.
    fn ownership_epoch(&self) -> u64 {
        0
    }
    /// The node that owns `instance` now, if another does.
    fn owner(&self, instance: &str) -> Result<Option<crate::postgres::NodeAddress>> {
        let _ = instance;
        Ok(None)
    }
    /// What nodes sharing this database prove to each other that they do
    /// (none for a store only this process opens).
    fn cluster_secret(&self) -> Result<Option<String>> {
        Ok(None)
    }
    /// Where this process's control API answers, for other nodes.
    fn advertise(&self, address: &str) {
        let _ = address;
    }
    /// This node's part in a cluster, if it is in one.
    fn cluster(&self) -> Option<crate::postgres::ClusterStatus> {
        None
    }
    /// Gives up what the backend holds for this process (a shared
    /// database's leases), after the writer's last write.
    fn close(&self) {}
    /// Fails if the storage under the backend is gone or replaced.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

fn io(error: sled::Error) -> Error {
    Error::Io(error.to_string())
}

/// Whether opening may create a store where there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the store if the directory holds none (`start`, `run`, `serve`).
    Create,
    /// Refuse with [`Error::NoStore`] if the directory holds none (every
    /// command that reads, or acts on instances that must already exist).
    Existing,
}

/// sled 0.34: one tree, atomic batches, and a `flush` that ends in a real
/// `fdatasync` of every file holding what it flushed.
///
/// sled's own `flush` writes its log with `sync_file_range`, which neither
/// flushes the device's write cache nor the file's metadata, and it writes a
/// page larger than a quarter of a segment as a separate file under
/// `blobs/` that it never syncs. So after sled's flush this backend
/// `fdatasync`s every blob file created since the last flush, the `blobs`
/// directory, and sled's log file, before anything is acknowledged.
#[derive(Debug)]
pub struct SledBackend {
    db: sled::Db,
    dir: std::path::PathBuf,
    /// sled's log file, kept open to `fdatasync` it.
    log: std::fs::File,
    /// What the last look at `blobs/` found.
    blobs: Mutex<BlobScan>,
    /// The marker as opened: writes fail once it is gone or replaced.
    marker: crate::marker::Identity,
}

/// Removes the snapshot files sled did not finish (`snap.*.generating`);
/// returns how many it removed.
fn remove_unfinished_snapshots(path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") && std::fs::remove_file(entry.path()).is_ok() {
            tracing::warn!(file = %entry.path().display(), "removed a snapshot file sled had not finished writing (a kill during a snapshot)");
            removed += 1;
        }
    }
    removed
}

/// The blob files already synced, the `blobs` directory's mtime when they
/// were listed, and when that was.
#[derive(Debug, Default)]
struct BlobScan {
    synced: std::collections::HashSet<std::ffi::OsString>,
    mtime: Option<std::time::SystemTime>,
    listed_at: Option<std::time::SystemTime>,
}

/// How far a directory's mtime may lag the clock: file timestamps come from
/// a coarse kernel clock (a few milliseconds), so an unchanged mtime proves
/// nothing new was created only when it is older than the last listing by
/// more than this.
const MTIME_GRANULARITY: std::time::Duration = std::time::Duration::from_millis(50);

/// sled's files in a data directory: a store exists there if any does.
fn has_sled_files(path: &Path) -> bool {
    ["db", "conf", "blobs"].iter().any(|name| path.join(name).exists())
}

impl SledBackend {
    /// Opens the store in `path`; with [`OpenMode::Create`], creates it
    /// (and its marker) when the directory holds none. A marker whose
    /// database is missing, empty or unreadable is refused with
    /// [`Error::LostData`]: it is never opened as a new, empty store.
    pub fn open(path: &Path, mode: OpenMode) -> Result<Self> {
        let shown = path.display().to_string();
        let marker = if path.is_dir() { crate::marker::read(path)? } else { None };
        let exists = marker.is_some() || (path.is_dir() && has_sled_files(path));
        if !exists {
            if mode == OpenMode::Existing {
                return Err(Error::NoStore { path: shown });
            }
            std::fs::create_dir_all(path).map_err(|error| Error::Io(format!("cannot create {}: {error}", path.display())))?;
        }
        if marker.is_some() && !path.join("db").is_file() {
            return Err(Error::LostData { path: shown, detail: "sled's database file `db` is missing".to_owned() });
        }
        // sled's background flusher stays on (its default). Turning it off
        // looked harmless, since the log layer flushes before every
        // acknowledgement, but the crash test then found a store that sled
        // could not reopen after a kill.
        let config = sled::Config::new().path(path).mode(sled::Mode::HighThroughput);
        // A store just closed by this process may release its lock a moment
        // late (sled's last I/O threads finishing); a short, bounded wait
        // separates that from a store another process holds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        let mut cleared_snapshots = false;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                // sled 0.34 reads the newest `snap.*` file, counting one a
                // kill left half-written as `snap.*.generating`, and refuses
                // the store as corrupt (sled issues 1527, 1533). Such a file is
                // by construction incomplete (sled renames a snapshot only
                // once it is written and synced) and sled had the lock when it
                // failed, so no other process is writing it: remove it and
                // open again, once.
                Err(sled::Error::Corruption { .. }) if !cleared_snapshots && remove_unfinished_snapshots(path) > 0 => {
                    cleared_snapshots = true;
                }
                // sled reports a held lock as an I/O error from its file lock.
                Err(sled::Error::Io(error)) if is_lock_error(&error) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::InUse { path: shown });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(error) if marker.is_some() => {
                    return Err(Error::LostData { path: shown, detail: format!("sled cannot open its files ({error})") })
                }
                Err(error) => return Err(io(error)),
            }
        };
        let formatted = db.get(crate::keys::FORMAT).map_err(io)?.is_some();
        match (&marker, formatted) {
            (Some(_), false) => {
                return Err(Error::LostData {
                    path: shown,
                    detail: "its database is empty (sled's files were deleted, truncated or damaged)".to_owned(),
                })
            }
            // A store from before markers existed, or one just created: mark
            // it, after its format key is durable (a crash in between leaves
            // an unmarked store, which the next open marks).
            (None, _) => {
                if !formatted {
                    if mode == OpenMode::Existing {
                        return Err(Error::NoStore { path: shown });
                    }
                    db.insert(crate::keys::FORMAT, crate::FORMAT_VERSION.to_be_bytes().to_vec()).map_err(io)?;
                    db.flush().map_err(io)?;
                    std::fs::File::open(path.join("db")).and_then(|log| log.sync_data()).map_err(|error| Error::Io(error.to_string()))?;
                    crate::marker::sync_dir(path)?;
                }
                crate::marker::write(path, &crate::marker::Marker::new())?;
            }
            (Some(_), true) => {}
        }
        let log = std::fs::File::open(path.join("db")).map_err(|error| Error::Io(format!("cannot open sled's log in {shown}: {error}")))?;
        let marker = crate::marker::Identity::of(path)?;
        Ok(Self { db, dir: path.to_path_buf(), log, blobs: Mutex::new(Default::default()), marker })
    }

    /// `fdatasync`s the blob files sled created since the last call, and
    /// their directory. The directory's mtime moves whenever a file is
    /// created in it, so a flush that wrote no blob costs one `stat`; the
    /// directory is listed again whenever its mtime is too recent to tell.
    fn sync_blobs(&self) -> Result<()> {
        let dir = self.dir.join("blobs");
        let Ok(metadata) = std::fs::metadata(&dir) else {
            return Ok(());
        };
        let modified = metadata.modified().ok();
        let mut blobs = self.blobs.lock().map_err(|_| Error::Io("the blob list was poisoned by a panic".to_owned()))?;
        let settled = match (modified, blobs.mtime, blobs.listed_at) {
            (Some(now), Some(seen), Some(listed)) => now == seen && listed.duration_since(seen).is_ok_and(|lag| lag > MTIME_GRANULARITY),
            _ => false,
        };
        if settled {
            return Ok(());
        }
        let listed_at = std::time::SystemTime::now();
        let entries = std::fs::read_dir(&dir).map_err(|error| Error::Io(format!("cannot list {}: {error}", dir.display())))?;
        let mut present = std::collections::HashSet::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !blobs.synced.contains(&name) {
                // A blob sled removed meanwhile no longer needs syncing.
                if let Ok(file) = std::fs::File::open(entry.path()) {
                    file.sync_data().map_err(|error| Error::Io(format!("cannot sync {}: {error}", entry.path().display())))?;
                }
            }
            present.insert(name);
        }
        crate::marker::sync_dir(&dir)?;
        *blobs = BlobScan { synced: present, mtime: modified, listed_at: Some(listed_at) };
        Ok(())
    }
}

fn is_lock_error(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock
        || error.raw_os_error() == Some(11)
        || error.to_string().contains("could not acquire lock")
}

impl Backend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map(|value| value.map(|v| v.to_vec())).map_err(io)
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let iter = match end {
            Some(end) => self.db.range::<&[u8], _>(start..end),
            None => self.db.range::<&[u8], _>(start..),
        };
        for entry in iter {
            let (key, value) = entry.map_err(io)?;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, writes: Vec<Write>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.db.apply_batch(batch).map_err(io)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(io)?;
        self.sync_blobs()?;
        self.log.sync_data().map_err(|error| Error::Io(format!("cannot sync sled's log in {}: {error}", self.dir.display())))?;
        self.marker.check(&self.dir)
    }

    fn check(&self) -> Result<()> {
        self.marker.check(&self.dir)
    }
}

/// A B-tree behind a mutex: the same layout and semantics as sled, without
/// the disk, for fast tests of everything above the store.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    tree: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryBackend {
    fn tree(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>>> {
        self.tree.lock().map_err(|_| Error::Io("the in-memory store was poisoned by a panic".to_owned()))
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree()?.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let tree = self.tree()?;
        let iter: Box<dyn Iterator<Item = (&Vec<u8>, &Vec<u8>)>> = match end {
            Some(end) => Box::new(tree.range(start.to_vec()..end.to_vec())),
            None => Box::new(tree.range(start.to_vec()..)),
        };
        for (key, value) in iter {
            if !visit(key, value) {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, writes: Vec<Write>) -> Result<()> {
        let mut tree = self.tree()?;
        for (key, value) in writes {
            match value {
                Some(value) => tree.insert(key, value),
                None => tree.remove(&key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

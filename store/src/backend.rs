//! Ordered key-value backends: sled on disk, a B-tree in memory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::{Error, Result};

/// One write of a batch: a key and its new value, or `None` to delete it.
pub(crate) type Write = (Vec<u8>, Option<Vec<u8>>);

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
    /// Makes everything applied so far durable.
    fn flush(&self) -> Result<()>;
}

fn io(error: sled::Error) -> Error {
    Error::Io(error.to_string())
}

/// sled 0.34: one tree, atomic batches, `flush` before acknowledging.
#[derive(Debug)]
pub struct SledBackend {
    db: sled::Db,
}

impl SledBackend {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|error| Error::Io(format!("cannot create {}: {error}", path.display())))?;
        // sled's background flusher stays on (its default). Turning it off
        // looked harmless, since the log layer flushes before every
        // acknowledgement, but the crash test then found a store that sled
        // could not reopen after a kill.
        let config = sled::Config::new().path(path).mode(sled::Mode::HighThroughput);
        // A store just closed by this process may release its lock a moment
        // late (sled's last I/O threads finishing); a short, bounded wait
        // separates that from a store another process holds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        loop {
            match config.open() {
                Ok(db) => return Ok(Self { db }),
                // sled reports a held lock as an I/O error from its file lock.
                Err(sled::Error::Io(error)) if is_lock_error(&error) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::InUse { path: path.display().to_string() });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(error) => return Err(io(error)),
            }
        }
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
        self.db.flush().map(|_| ()).map_err(io)
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

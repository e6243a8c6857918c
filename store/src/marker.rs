//! The store's marker: a small file beside sled's, outside sled, saying that
//! a store exists here, which one, and in what format.
//!
//! sled cannot tell "a new, empty database" from "a database whose files
//! were lost or damaged": it opens both as empty. The marker can. It is
//! written once, when the store is created (atomically: a temporary file,
//! `fsync`, rename, `fsync` of the directory), and checked at every open:
//! a marker with an empty or unreadable database is refused, never opened
//! as a new store. While the store is open, the writer checks before each
//! acknowledgement that the marker is still the file it opened (same
//! device and inode), so a data directory deleted or replaced under a
//! running process fails its writes instead of acknowledging into files
//! that no longer exist.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result, FORMAT_VERSION};

/// The marker's file name in the data directory.
pub const MARKER_FILE: &str = "phasegate-store.json";

/// What the marker records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// What this file is, for a person who finds it.
    pub about: String,
    /// The store format version that created it.
    pub format: u32,
    /// A random id, unique to this store (a restored copy keeps it).
    pub store_id: String,
    /// When the store was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

impl Marker {
    /// A marker for a store created now.
    pub fn new() -> Self {
        let created_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Self {
            about: "a phasegate store lives in this directory; do not delete sled's files beside it (use phasegate backup)".to_owned(),
            format: FORMAT_VERSION,
            store_id: uuid::Uuid::now_v7().to_string(),
            created_ms,
        }
    }
}

impl Default for Marker {
    fn default() -> Self {
        Self::new()
    }
}

/// The marker's path in a data directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(MARKER_FILE)
}

/// Reads the marker of `dir`: `None` if there is none.
pub fn read(dir: &Path) -> Result<Option<Marker>> {
    let file = path(dir);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| Error::LostData {
            path: dir.display().to_string(),
            detail: format!("its marker {} does not decode ({error})", file.display()),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::Io(format!("cannot read {}: {error}", file.display()))),
    }
}

/// Writes the marker of `dir` durably and atomically.
pub fn write(dir: &Path, marker: &Marker) -> Result<()> {
    let io = |what: &str, error: std::io::Error| Error::Io(format!("cannot {what} in {}: {error}", dir.display()));
    let temporary = dir.join(format!("{MARKER_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(marker).map_err(|error| Error::Io(error.to_string()))?;
    let mut file = File::create(&temporary).map_err(|e| io("create the store marker", e))?;
    file.write_all(&bytes).and_then(|()| file.write_all(b"\n")).map_err(|e| io("write the store marker", e))?;
    file.sync_all().map_err(|e| io("sync the store marker", e))?;
    std::fs::rename(&temporary, path(dir)).map_err(|e| io("rename the store marker", e))?;
    sync_dir(dir)
}

/// `fsync`s a directory, so the names created in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|error| Error::Io(format!("cannot sync the directory {}: {error}", dir.display())))
}

/// The identity of the marker file as opened, to notice it being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    device: u64,
    inode: u64,
}

impl Identity {
    /// The identity of the marker in `dir` now.
    pub(crate) fn of(dir: &Path) -> Result<Self> {
        let file = path(dir);
        let metadata = std::fs::metadata(&file).map_err(|error| Error::Io(format!("cannot stat {}: {error}", file.display())))?;
        Ok(Self { device: metadata.dev(), inode: metadata.ino() })
    }

    /// Fails if the marker in `dir` is gone or is another file.
    pub(crate) fn check(&self, dir: &Path) -> Result<()> {
        match Self::of(dir) {
            Ok(now) if now == *self => Ok(()),
            Ok(_) => Err(Error::Io(format!(
                "the data directory {} was replaced while this process had it open; nothing more is acknowledged (restart phasegate)",
                dir.display()
            ))),
            Err(_) => Err(Error::Io(format!(
                "the data directory {} (or its store marker) was deleted while this process had it open; nothing more is acknowledged (restore it from a backup and restart phasegate)",
                dir.display()
            ))),
        }
    }
}

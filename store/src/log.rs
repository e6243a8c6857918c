//! The log layer over a [`Backend`]: key layout, sequence checks, indexes,
//! and a writer thread that commits batches in groups.
//!
//! Group commit: callers submit batches to one writer thread. It takes every
//! batch waiting in its queue, checks each against its instance's head as the
//! group has left it, applies the group as one atomic write (each key once,
//! with its last value), flushes **once**, then acknowledges them all. Under
//! load many instances' batches share a flush; a lone batch is flushed at
//! once. Nothing is acknowledged before its flush.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::backend::{Backend, Guard, MemoryBackend, OpenMode, SledBackend, Write};
use crate::{check_id, keys, Batch, Done, Error, Head, IndexOp, Loaded, OutboxOp, Result, Store, FORMAT_VERSION, QUARANTINED};

/// Most batches one flush covers; bounds the latency of the first in a group.
const MAX_GROUP: usize = 4096;

/// The store on sled.
pub type SledStore = LogStore<SledBackend>;
/// The store in memory.
pub type MemoryStore = LogStore<MemoryBackend>;

enum Job {
    Batch(Batch, Done),
    /// Writes outside an instance's log (a pinned definition, a quarantine),
    /// applied and flushed by the writer like a batch, so the writer stays
    /// the only thread that writes.
    Raw(Vec<Write>, Done),
    /// A consistent copy of the whole store into a new directory, taken
    /// between two groups.
    Backup(std::path::PathBuf, Box<dyn FnOnce(Result<BackupReport>) + Send>),
}

/// What a backup copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// The directory written.
    pub path: String,
    /// Records copied.
    pub records: u64,
    /// Instances copied.
    pub instances: u64,
    /// Bytes of keys and values copied.
    pub bytes: u64,
}

/// Counters of the writer, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Batches acknowledged.
    pub batches: AtomicU64,
    /// Events appended.
    pub events: AtomicU64,
    /// Flushes performed.
    pub flushes: AtomicU64,
    /// Total time spent flushing, in microseconds.
    pub flush_micros: AtomicU64,
}

/// The [`Store`] implementation over any backend (sled, or a B-tree in memory).
pub struct LogStore<B: Backend> {
    backend: Arc<B>,
    stats: Arc<Stats>,
    /// Set once a write or flush failed: every later write is refused with
    /// it, since what sled holds in memory may no longer match the disk.
    failure: Arc<Mutex<Option<Error>>>,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    location: String,
}

impl<B: Backend> std::fmt::Debug for LogStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("location", &self.location).finish()
    }
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`. Fails with
    /// [`Error::InUse`] when another process holds it and
    /// [`Error::NewerFormat`] when a newer phasegate wrote it.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, OpenMode::Create)
    }

    /// Opens the store in `path`, creating it only with [`OpenMode::Create`];
    /// fails with [`Error::NoStore`] when there is none to open and with
    /// [`Error::LostData`] when its marker survives but its data does not.
    pub fn open_with(path: &Path, mode: OpenMode) -> Result<Self> {
        let backend = SledBackend::open(path, mode)?;
        Self::start(backend, path.display().to_string())
    }

    /// Copies the store in `source` (which must exist and not be in use)
    /// into `dest`, which must not hold a store or anything else.
    pub fn restore(source: &Path, dest: &Path) -> Result<BackupReport> {
        let store = Self::open_with(source, OpenMode::Existing)?;
        let report = store.backup(dest);
        store.close();
        report
    }
}

impl MemoryStore {
    /// An empty store in memory.
    pub fn in_memory() -> Self {
        // A fresh memory backend always accepts the format key.
        match Self::start(MemoryBackend::default(), "memory".to_owned()) {
            Ok(store) => store,
            Err(error) => unreachable!("a new in-memory store cannot fail to start: {error}"),
        }
    }
}

impl<B: Backend> LogStore<B> {
    pub(crate) fn start(backend: B, location: String) -> Result<Self> {
        match backend.get(keys::FORMAT)? {
            None => {
                backend.apply(vec![(keys::FORMAT.to_vec(), Some(FORMAT_VERSION.to_be_bytes().to_vec()))])?;
                backend.flush()?;
            }
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| Error::Corrupt { key: "m:format".to_owned(), detail: format!("{} bytes, expected 4", bytes.len()) })?;
                if found > FORMAT_VERSION {
                    return Err(Error::NewerFormat { path: location, found, supported: FORMAT_VERSION });
                }
            }
        }
        let backend = Arc::new(backend);
        let stats = Arc::new(Stats::default());
        let failure = Arc::new(Mutex::new(None));
        let (sender, receiver) = mpsc::channel();
        let writer = {
            let backend = Arc::clone(&backend);
            let stats = Arc::clone(&stats);
            let failure = Arc::clone(&failure);
            std::thread::Builder::new()
                .name("phasegate-store-writer".to_owned())
                .spawn(move || write_loop(&*backend, &stats, &failure, &receiver))
                .map_err(|error| Error::Io(format!("cannot start the writer thread: {error}")))?
        };
        Ok(Self { backend, stats, failure, sender: Mutex::new(Some(sender)), writer: Mutex::new(Some(writer)), location })
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops the writer after it has committed everything submitted so far.
    pub fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = writer.join();
            self.backend.close();
        }
    }

    fn read_head(&self, id: &str) -> Result<Option<Head>> {
        read_head(&*self.backend, id)
    }

    fn send(&self, job: Job) {
        let sender = self.sender.lock().ok().and_then(|sender| sender.clone());
        let job = match sender {
            Some(sender) => match sender.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        match job {
            Job::Batch(_, done) | Job::Raw(_, done) => done(Err(Error::Closed)),
            Job::Backup(_, done) => done(Err(Error::Closed)),
        }
    }

    fn write_raw(&self, writes: Vec<Write>) -> Result<()> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.send(Job::Raw(
            writes,
            Box::new(move |result| {
                let _ = sender.send(result);
            }),
        ));
        receiver.recv().map_err(|_| Error::Closed)?
    }
}

impl<B: Backend> Drop for LogStore<B> {
    fn drop(&mut self) {
        self.close();
    }
}

fn read_head<B: Backend + ?Sized>(backend: &B, id: &str) -> Result<Option<Head>> {
    let key = keys::head(id);
    match backend.get(&key)? {
        None => Ok(None),
        Some(bytes) => {
            let (seq, status) = keys::split_seq(&key, &bytes)?;
            let status = String::from_utf8(status)
                .map_err(|_| Error::Corrupt { key: keys::printable(&key), detail: "status is not UTF-8".to_owned() })?;
            Ok(Some(Head { seq, status }))
        }
    }
}

fn write_loop<B: Backend + ?Sized>(backend: &B, stats: &Stats, failure: &Mutex<Option<Error>>, receiver: &mpsc::Receiver<Job>) {
    let failed = || failure.lock().ok().and_then(|f| f.clone());
    let fail = |error: &Error| {
        if let Ok(mut failure) = failure.lock() {
            if failure.is_none() {
                tracing::error!(%error, "the store failed; every later write is refused until phasegate restarts");
                *failure = Some(error.clone());
            }
        }
    };
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // The group becomes one atomic write: a key written by several of
        // its batches (an instance's head and summary, an outbox entry put
        // and deleted again) is written once, with its last value.
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut backups = Vec::new();
        let mut events = 0u64;
        let mut heads: HashMap<String, Option<Head>> = HashMap::new();
        let mut group: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        // The heads the group expects to find and leaves, by instance.
        let mut guards: BTreeMap<String, Guard> = BTreeMap::new();
        // On a shared database, each job's own writes and guard, to write
        // them one by one when the group as a whole is refused.
        let shared = backend.is_shared();
        let mut alone: Vec<Option<(Vec<Write>, Option<Guard>)>> = Vec::new();
        let refused = failed();
        for job in jobs {
            match job {
                Job::Batch(batch, done) => {
                    let count = batch.events.len() as u64;
                    let result = match &refused {
                        Some(error) => Err(error.clone()),
                        None => prepare_batch(backend, batch, &mut heads).map(|(writes, guard)| {
                            if shared {
                                alone.push(Some((writes.clone(), Some(guard.clone()))));
                            }
                            guards.entry(guard.instance.clone()).and_modify(|first| first.after.clone_from(&guard.after)).or_insert(guard);
                            group.extend(writes);
                        }),
                    };
                    if result.is_ok() {
                        events += count;
                    } else if shared {
                        alone.push(None);
                    }
                    outcomes.push((done, result));
                }
                Job::Raw(writes, done) => {
                    let result = match &refused {
                        Some(error) => Err(error.clone()),
                        None => {
                            if shared {
                                alone.push(Some((writes.clone(), None)));
                            }
                            group.extend(writes);
                            Ok(())
                        }
                    };
                    if result.is_err() && shared {
                        alone.push(None);
                    }
                    outcomes.push((done, result));
                }
                Job::Backup(dest, done) => backups.push((dest, done)),
            }
        }
        if !group.is_empty() {
            let guards: Vec<Guard> = guards.into_values().collect();
            match backend.apply_guarded(group.into_iter().collect(), &guards) {
                Ok(()) => {}
                // Another node wrote one of the instances, or holds its
                // lease: only the jobs it concerns are refused.
                Err(Error::Stale { .. } | Error::NotOwner { .. }) => {
                    for ((_, result), job) in outcomes.iter_mut().zip(alone) {
                        if let (Ok(()), Some((writes, guard))) = (&*result, job) {
                            *result = apply_alone(backend, writes, guard);
                            if let Err(error) = result {
                                if !matches!(error, Error::SequenceConflict { .. } | Error::NotOwner { .. }) {
                                    fail(error);
                                }
                            }
                        }
                    }
                }
                Err(error) => {
                    fail(&error);
                    for (_, result) in &mut outcomes {
                        if result.is_ok() {
                            *result = Err(error.clone());
                        }
                    }
                }
            }
        }
        let flushed = if outcomes.iter().any(|(_, result)| result.is_ok()) {
            let started = std::time::Instant::now();
            let flushed = backend.flush();
            stats.flushes.fetch_add(1, Ordering::Relaxed);
            stats.flush_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            if let Err(error) = &flushed {
                fail(error);
            }
            flushed
        } else {
            Ok(())
        };
        if flushed.is_ok() {
            stats.events.fetch_add(events, Ordering::Relaxed);
        }
        for (done, result) in outcomes {
            let result = result.and_then(|()| flushed.clone());
            if result.is_ok() {
                stats.batches.fetch_add(1, Ordering::Relaxed);
            }
            done(result);
        }
        // Everything before the backup request is applied and flushed, and
        // nothing after it is: the copy is one consistent state.
        for (dest, done) in backups {
            done(match failed() {
                Some(error) => Err(error),
                None => copy_into(backend, &dest),
            });
        }
    }
}

/// Copies every record of `backend` into a new sled store in `dest`.
fn copy_into<B: Backend + ?Sized>(backend: &B, dest: &Path) -> Result<BackupReport> {
    if dest.exists() && std::fs::read_dir(dest).map_or(true, |mut entries| entries.next().is_some()) {
        return Err(Error::Io(format!(
            "{} already exists and is not empty; a backup or restore goes into a new directory, never over a store",
            dest.display()
        )));
    }
    let target = SledBackend::open(dest, OpenMode::Create)?;
    copy_records(backend, &target, dest.display().to_string())
}

/// Copies every record of `backend` into `target`, in chunks, and makes
/// the copy durable.
pub(crate) fn copy_records<B: Backend + ?Sized, T: Backend + ?Sized>(backend: &B, target: &T, path: String) -> Result<BackupReport> {
    let mut report = BackupReport { path, ..BackupReport::default() };
    let mut chunk: Vec<Write> = Vec::new();
    let mut chunk_bytes = 0usize;
    let mut failed = None;
    backend.scan(b"", None, &mut |key, value| {
        report.records += 1;
        report.bytes += (key.len() + value.len()) as u64;
        if key.starts_with(b"i:") {
            report.instances += 1;
        }
        chunk_bytes += key.len() + value.len();
        chunk.push((key.to_vec(), Some(value.to_vec())));
        if chunk.len() >= 4096 || chunk_bytes >= 8 << 20 {
            if let Err(error) = target.apply(std::mem::take(&mut chunk)) {
                failed = Some(error);
                return false;
            }
            chunk_bytes = 0;
        }
        true
    })?;
    if let Some(error) = failed {
        return Err(error);
    }
    target.apply(chunk)?;
    target.flush()?;
    Ok(report)
}

/// Writes one job of a refused group by itself: a head another node moved
/// is this batch's sequence conflict.
fn apply_alone<B: Backend + ?Sized>(backend: &B, writes: Vec<Write>, guard: Option<Guard>) -> Result<()> {
    let guards: Vec<Guard> = guard.into_iter().collect();
    match backend.apply_guarded(writes, &guards) {
        Err(Error::Stale { instance }) => {
            let expected =
                guards.first().and_then(|g| g.before.as_deref()).and_then(|b| b.first_chunk::<8>()).map_or(0, |s| u64::from_be_bytes(*s));
            let found = read_head(backend, &instance)?.map_or(0, |h| h.seq);
            Err(Error::SequenceConflict { instance, expected, found })
        }
        other => other,
    }
}

/// Checks a batch against its instance's head (as the group has left it so
/// far) and returns its writes, in order, with the head it expects and
/// leaves; moves that head on.
fn prepare_batch<B: Backend + ?Sized>(backend: &B, batch: Batch, heads: &mut HashMap<String, Option<Head>>) -> Result<(Vec<Write>, Guard)> {
    let id = batch.instance.as_str();
    check_id(id)?;
    let head = match heads.get(id) {
        Some(head) => head.clone(),
        None => read_head(backend, id)?,
    };
    let found = head.as_ref().map_or(0, |h| h.seq);
    if found != batch.expected_seq {
        return Err(Error::SequenceConflict { instance: id.to_owned(), expected: batch.expected_seq, found });
    }
    let mut writes: Vec<Write> = Vec::with_capacity(batch.events.len() + batch.index.len() + batch.outbox.len() + 4);
    let mut seq = found;
    for event in batch.events {
        seq += 1;
        writes.push((keys::event(id, seq), Some(event)));
    }
    let old_status = head.map(|h| h.status);
    let status = match (batch.status, &old_status) {
        (Some(status), _) => status,
        (None, Some(old)) => old.clone(),
        (None, None) => String::new(),
    };
    if old_status.as_deref() != Some(status.as_str()) {
        if let Some(old) = &old_status {
            writes.push((keys::status_entry(old, id), None));
        }
        writes.push((keys::status_entry(&status, id), Some(Vec::new())));
    }
    let after = keys::encode_head(seq, &status);
    let guard = Guard {
        instance: id.to_owned(),
        key: keys::head(id),
        before: old_status.as_deref().map(|old| keys::encode_head(found, old)),
        after: Some(after.clone()),
    };
    writes.push((keys::head(id), Some(after)));
    heads.insert(id.to_owned(), Some(Head { seq, status }));
    if let Some(summary) = batch.summary {
        writes.push((keys::summary(id), Some(summary)));
    }
    if let Some(snapshot) = batch.snapshot {
        let mut bytes = seq.to_be_bytes().to_vec();
        bytes.extend_from_slice(&snapshot);
        writes.push((keys::snapshot(id), Some(bytes)));
    }
    for op in batch.index {
        match op {
            IndexOp::Put { index, key, value } => writes.push((keys::index(&index, &key), Some(value))),
            IndexOp::Delete { index, key } => writes.push((keys::index(&index, &key), None)),
        }
    }
    for op in batch.outbox {
        match op {
            OutboxOp::Put { key, value } => writes.push((keys::outbox(id, &key), Some(value))),
            OutboxOp::Delete { key } => writes.push((keys::outbox(id, &key), None)),
        }
    }
    Ok((writes, guard))
}

fn strip<'k>(key: &'k [u8], prefix: &[u8]) -> &'k [u8] {
    key.strip_prefix(prefix).unwrap_or(key)
}

/// How often [`Store::load`] reads an instance again when a batch landed
/// between its reads before it gives up.
const LOAD_ATTEMPTS: usize = 64;

impl<B: Backend> Store for LogStore<B> {
    fn stats(&self) -> Option<&Stats> {
        Some(&self.stats)
    }

    fn submit(&self, batch: Batch, done: Done) {
        self.send(Job::Batch(batch, done));
    }

    fn failure(&self) -> Option<String> {
        let failed = self.failure.lock().ok().and_then(|f| f.as_ref().map(ToString::to_string));
        failed.or_else(|| self.backend.check().err().map(|error| error.to_string()))
    }

    fn backup(&self, dest: &Path) -> Result<BackupReport> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.send(Job::Backup(
            dest.to_path_buf(),
            Box::new(move |result| {
                let _ = sender.send(result);
            }),
        ));
        receiver.recv().map_err(|_| Error::Closed)?
    }

    fn head(&self, instance: &str) -> Result<Option<Head>> {
        self.read_head(instance)
    }

    fn load(&self, instance: &str) -> Result<Option<Loaded>> {
        // The reads below are separate, and a batch may commit between them:
        // a head read before it with a snapshot read after it is a view no
        // batch ever made. Every batch that touches the snapshot or the
        // events moves the head, so a head that reads the same before and
        // after is one consistent state; otherwise read again.
        let mut last = None;
        for _ in 0..LOAD_ATTEMPTS {
            let Some(head) = self.read_head(instance)? else {
                return Ok(None);
            };
            let snapshot_key = keys::snapshot(instance);
            let snapshot = match self.backend.get(&snapshot_key)? {
                Some(bytes) => Some(keys::split_seq(&snapshot_key, &bytes)?),
                None => None,
            };
            let from = snapshot.as_ref().map_or(1, |(seq, _)| seq + 1);
            let events = self.events(instance, from)?;
            let summary = self.backend.get(&keys::summary(instance))?;
            let after = self.read_head(instance)?;
            if after.as_ref() == Some(&head) {
                return Ok(Some(Loaded { head, summary, snapshot, events }));
            }
            last = after;
        }
        Err(Error::Io(format!(
            "instance {instance} changed under {LOAD_ATTEMPTS} reads in a row (now at event {}); read it again",
            last.map_or(0, |h| h.seq)
        )))
    }

    fn events(&self, instance: &str, from: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let start = keys::event(instance, from.max(1));
        let end = keys::events_end(instance);
        let prefix = keys::events_start(instance);
        self.backend
            .range(&start, Some(&end))?
            .into_iter()
            .map(|(key, value)| {
                let seq_bytes = strip(&key, &prefix);
                let seq = <[u8; 8]>::try_from(seq_bytes)
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Corrupt { key: keys::printable(&key), detail: "bad event key".to_owned() })?;
                Ok((seq, value))
            })
            .collect()
    }

    fn instances(&self) -> Result<Vec<(String, Head)>> {
        let start = b"i:".to_vec();
        let end = keys::prefix_end(&start);
        self.backend
            .range(&start, end.as_deref())?
            .into_iter()
            .map(|(key, bytes)| {
                let id = String::from_utf8_lossy(strip(&key, &start)).into_owned();
                let (seq, status) = keys::split_seq(&key, &bytes)?;
                Ok((id, Head { seq, status: String::from_utf8_lossy(&status).into_owned() }))
            })
            .collect()
    }

    fn instances_with_status(&self, status: &str) -> Result<Vec<String>> {
        let mut prefix = status.as_bytes().to_vec();
        prefix.push(0);
        Ok(self
            .index_prefix(keys::STATUS_INDEX, &prefix)?
            .into_iter()
            .map(|(key, _)| String::from_utf8_lossy(strip(&key, &prefix)).into_owned())
            .collect())
    }

    fn summary(&self, instance: &str) -> Result<Option<Vec<u8>>> {
        self.backend.get(&keys::summary(instance))
    }

    fn index_range(&self, index: &str, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let base = keys::index(index, b"");
        let entries = self.backend.range_limit(&keys::index(index, start), Some(&keys::index(index, end)), limit)?;
        Ok(entries.into_iter().map(|(key, value)| (strip(&key, &base).to_vec(), value)).collect())
    }

    fn index_prefix(&self, index: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan_index(index, prefix, &mut |key, value| {
            out.push((key.to_vec(), value.to_vec()));
            true
        })?;
        Ok(out)
    }

    fn scan_index(&self, index: &str, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let base = keys::index(index, b"");
        let start = keys::index(index, prefix);
        let end = keys::prefix_end(&start);
        self.backend.scan(&start, end.as_deref(), &mut |key, value| visit(strip(key, &base), value))
    }

    fn scan_summaries(&self, visit: &mut dyn FnMut(&str, &[u8]) -> bool) -> Result<()> {
        let start = keys::summary("");
        let end = keys::prefix_end(&start);
        self.backend.scan(&start, end.as_deref(), &mut |key, value| match std::str::from_utf8(strip(key, &start)) {
            Ok(id) => visit(id, value),
            Err(_) => visit(&String::from_utf8_lossy(strip(key, &start)), value),
        })
    }

    fn quarantined(&self) -> Result<Vec<(String, String)>> {
        let start = keys::quarantine("");
        let end = keys::prefix_end(&start);
        Ok(self
            .backend
            .range(&start, end.as_deref())?
            .into_iter()
            .map(|(key, reason)| (String::from_utf8_lossy(strip(&key, &start)).into_owned(), String::from_utf8_lossy(&reason).into_owned()))
            .collect())
    }

    fn outbox(&self, instance: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let base = keys::outbox(instance, b"");
        let end = keys::prefix_end(&base);
        let entries = self.backend.range(&base, end.as_deref())?;
        Ok(entries.into_iter().map(|(key, value)| (strip(&key, &base).to_vec(), value)).collect())
    }

    fn outbox_instances(&self) -> Result<Vec<String>> {
        let start = b"o:".to_vec();
        let end = keys::prefix_end(&start);
        let mut ids: Vec<String> = Vec::new();
        for (key, _) in self.backend.range(&start, end.as_deref())? {
            let rest = strip(&key, &start);
            let id = rest.split(|&b| b == 0).next().unwrap_or_default();
            let id = String::from_utf8_lossy(id).into_owned();
            if ids.last() != Some(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn put_definition(&self, hash: &str, bytes: &[u8]) -> Result<()> {
        let key = keys::definition(hash);
        if self.backend.get(&key)?.is_none() {
            self.write_raw(vec![(key, Some(bytes.to_vec()))])?;
        }
        Ok(())
    }

    fn definition(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        self.backend.get(&keys::definition(hash))
    }

    fn quarantine(&self, instance: &str, reason: &str) -> Result<()> {
        let head = self.read_head(instance)?;
        let mut writes: Vec<Write> = vec![(keys::quarantine(instance), Some(reason.as_bytes().to_vec()))];
        let seq = head.as_ref().map_or(0, |h| h.seq);
        if let Some(head) = &head {
            writes.push((keys::status_entry(&head.status, instance), None));
        }
        writes.push((keys::status_entry(QUARANTINED, instance), Some(Vec::new())));
        writes.push((keys::head(instance), Some(keys::encode_head(seq, QUARANTINED))));
        self.write_raw(writes)
    }

    fn quarantine_reason(&self, instance: &str) -> Result<Option<String>> {
        Ok(self.backend.get(&keys::quarantine(instance))?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn put_setting(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        if key.is_empty() || key.contains('\0') {
            return Err(Error::Io(format!("`{key}` is not a setting key: use non-empty text without NUL")));
        }
        self.write_raw(vec![(keys::setting(key), value.map(<[u8]>::to_vec))])
    }

    fn owns(&self, instance: &str) -> bool {
        self.backend.owns(instance)
    }

    fn ownership_epoch(&self) -> u64 {
        self.backend.ownership_epoch()
    }

    fn owner(&self, instance: &str) -> Result<Option<crate::NodeAddress>> {
        self.backend.owner(instance)
    }

    fn advertise(&self, address: &str) {
        self.backend.advertise(address);
    }

    fn cluster_secret(&self) -> Result<Option<String>> {
        self.backend.cluster_secret()
    }

    fn cluster(&self) -> Option<crate::ClusterStatus> {
        self.backend.cluster()
    }

    fn settings(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let start = keys::setting(prefix);
        let end = keys::prefix_end(&start);
        let rows = self.backend.range(&start, end.as_deref())?;
        Ok(rows.into_iter().map(|(key, value)| (String::from_utf8_lossy(&key[2..]).into_owned(), value)).collect())
    }
}

//! The audit chain: each stored event record carries the SHA-256 of the
//! record before it (event 1, of the instance's id), so the log of an
//! instance is a hash chain. Changing, inserting or deleting a stored
//! record breaks the link of the record after it; changing the last one
//! breaks the chain head that snapshots, certificates and gate reports
//! carry. [`verify`] walks the chain and names the first record that does
//! not match.
//!
//! What it proves: that the records are the ones written, in order, as long
//! as the head being compared with (a certificate's, or one kept outside the
//! data directory) is genuine. Anyone who can write the data directory can
//! rewrite the whole chain consistently; comparing with a head kept
//! elsewhere is what catches that (docs/audit.md).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::codec;
use super::error::Error;
use phasegate_store::Store;

/// The hash of stored bytes, as the chain writes it (hex).
pub fn hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What event 1 of instance `id` links to: binds the chain to the id, so
/// records moved from another instance do not fit.
pub fn genesis(id: &str) -> String {
    hash(format!("phasegate audit chain of instance {id}").as_bytes())
}

/// Where a chain ends: the last record's sequence number and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The record's sequence number.
    pub seq: u64,
    /// Its hash (SHA-256, hex).
    pub hash: String,
}

impl ChainHead {
    /// Parses `SEQ:HASH`, as `audit verify --head` and certificates write it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (seq, hash) = text.trim().split_once(':').ok_or_else(|| format!("`{text}` is not SEQ:HASH (e.g. 42:9f86d0…)"))?;
        let seq = seq.parse().map_err(|_| format!("`{seq}` in `{text}` is not an event number"))?;
        let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(format!("`{hash}` in `{text}` is not a SHA-256 in hex (64 characters)"));
        }
        Ok(ChainHead { seq, hash: hash.to_ascii_lowercase() })
    }
}

impl std::fmt::Display for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// The outcome of checking one instance's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// The instance.
    pub instance: String,
    /// Records checked.
    pub events: u64,
    /// Records at the start of the log written before the chain existed
    /// (no link of their own; the first linked record commits to them).
    pub unlinked: u64,
    /// Where the chain ends.
    pub head: Option<ChainHead>,
    /// The first thing that does not match, naming its record; none when
    /// the chain holds.
    pub broken: Option<String>,
}

impl Audit {
    /// True when the chain holds.
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks the chain of instance `id`: every record's link against the hash
/// of the record before it, the sequence numbers against the head, the
/// latest snapshot's recorded chain head against the record it was taken
/// at, and, when given, `expect` (a head from a certificate) against the
/// record at its sequence number.
pub(crate) fn verify(store: &dyn Store, id: &str, expect: Option<&ChainHead>) -> Result<Audit, Error> {
    let head = store.head(id)?.ok_or_else(|| Error::UnknownInstance(id.to_owned()))?;
    let records = store.events(id, 1)?;
    let mut audit = Audit { instance: id.to_owned(), events: records.len() as u64, unlinked: 0, head: None, broken: None };
    let mut hashes: Vec<String> = Vec::with_capacity(records.len());
    let mut previous = genesis(id);
    let mut linked_seen = false;
    for (i, (seq, bytes)) in records.iter().enumerate() {
        let expected_seq = i as u64 + 1;
        if *seq != expected_seq {
            audit.broken = Some(format!("event {expected_seq} is missing: the log goes from event {} to event {seq}", expected_seq - 1));
            return Ok(audit);
        }
        let record = match codec::decode_record(id, *seq, bytes) {
            Ok(record) => record,
            Err(error) => {
                audit.broken = Some(format!("event {seq} does not decode: {}", error.detail));
                return Ok(audit);
            }
        };
        if record.seq() != *seq {
            audit.broken = Some(format!("event {seq} says it is event {}", record.seq()));
            return Ok(audit);
        }
        match record.prev() {
            Some(link) if link == previous => linked_seen = true,
            Some(link) => {
                let before = if *seq == 1 { "the instance's id".to_owned() } else { format!("event {}", seq - 1) };
                audit.broken = Some(format!(
                    "event {seq} does not match the chain: it links to {}, but {before} hashes to {} (that record or this link was changed)",
                    short(link),
                    short(&previous)
                ));
                return Ok(audit);
            }
            None if linked_seen => {
                audit.broken = Some(format!("event {seq} has no link, though the records before it are linked (it was replaced)"));
                return Ok(audit);
            }
            None => audit.unlinked += 1,
        }
        previous = hash(bytes);
        hashes.push(previous.clone());
    }
    if audit.events != head.seq {
        audit.broken = Some(format!(
            "the log ends at event {} but the instance's head says {}: records were deleted or added",
            audit.events, head.seq
        ));
        return Ok(audit);
    }
    audit.head = hashes.last().map(|hash| ChainHead { seq: audit.events, hash: hash.clone() });
    // The snapshot records the chain head at its sequence number.
    if let Some((at, bytes)) = store.load(id)?.and_then(|loaded| loaded.snapshot) {
        let recorded = codec::decode_snapshot(id, &bytes).map(|state| state.chain).unwrap_or_default();
        let actual = usize::try_from(at).ok().and_then(|at| at.checked_sub(1)).and_then(|i| hashes.get(i));
        if let Some(actual) = actual.filter(|actual| !recorded.is_empty() && **actual != recorded) {
            audit.broken = Some(format!(
                "event {at} does not match the chain head its snapshot recorded ({} there, {} now): the record was changed",
                short(&recorded),
                short(actual)
            ));
            return Ok(audit);
        }
    }
    if let Some(expect) = expect {
        let actual = usize::try_from(expect.seq).ok().and_then(|s| s.checked_sub(1)).and_then(|i| hashes.get(i));
        match actual {
            None => audit.broken = Some(format!("the log has no event {} that the head {expect} names", expect.seq)),
            Some(actual) if *actual != expect.hash => {
                audit.broken = Some(format!(
                    "event {} does not match the head given ({} given, {} stored): the log was changed after that head was taken",
                    expect.seq,
                    short(&expect.hash),
                    short(actual)
                ));
            }
            Some(_) => {}
        }
    }
    Ok(audit)
}

/// A hash's first 12 characters, for messages.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

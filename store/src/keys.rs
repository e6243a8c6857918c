//! The key layout: one ordered keyspace, a one-letter prefix per kind of record,
//! so that a whole state change is one atomic batch on one tree.
//!
//! ```text
//! m:format                    format version (u32 BE)
//! i:<id>                      head: seq (u64 BE) + status
//! u:<id>                      summary
//! e:<id> 0x00 <seq u64 BE>    event
//! s:<id>                      snapshot: seq (u64 BE) + bytes
//! x:<index> 0x00 <key>        named index entry
//! o:<id> 0x00 <key>           outbox entry
//! d:<hash>                    definition
//! q:<id>                      quarantine reason
//! c:<key>                     setting (users, policy)
//! ```
//! Ids and index names never contain 0x00, so prefixes never collide.

pub(crate) const FORMAT: &[u8] = b"m:format";
/// The index of instances by status: key `<status> 0x00 <id>`.
pub(crate) const STATUS_INDEX: &str = "status";

fn join(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    key.extend_from_slice(prefix);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

pub(crate) fn head(id: &str) -> Vec<u8> {
    join(b"i:", &[id.as_bytes()])
}
pub(crate) fn summary(id: &str) -> Vec<u8> {
    join(b"u:", &[id.as_bytes()])
}
pub(crate) fn event(id: &str, seq: u64) -> Vec<u8> {
    join(b"e:", &[id.as_bytes(), &seq.to_be_bytes()])
}
/// All events of `id` are in `[events_start(id), events_end(id))`.
pub(crate) fn events_start(id: &str) -> Vec<u8> {
    join(b"e:", &[id.as_bytes(), b""])
}
pub(crate) fn events_end(id: &str) -> Vec<u8> {
    let mut key = join(b"e:", &[id.as_bytes()]);
    key.push(1);
    key
}
pub(crate) fn snapshot(id: &str) -> Vec<u8> {
    join(b"s:", &[id.as_bytes()])
}
pub(crate) fn index(name: &str, key: &[u8]) -> Vec<u8> {
    join(b"x:", &[name.as_bytes(), key])
}
pub(crate) fn status_entry(status: &str, id: &str) -> Vec<u8> {
    index(STATUS_INDEX, &join(b"", &[status.as_bytes(), id.as_bytes()]))
}
pub(crate) fn outbox(id: &str, key: &[u8]) -> Vec<u8> {
    join(b"o:", &[id.as_bytes(), key])
}
pub(crate) fn definition(hash: &str) -> Vec<u8> {
    join(b"d:", &[hash.as_bytes()])
}
pub(crate) fn quarantine(id: &str) -> Vec<u8> {
    join(b"q:", &[id.as_bytes()])
}
pub(crate) fn setting(key: &str) -> Vec<u8> {
    join(b"c:", &[key.as_bytes()])
}

/// The smallest key greater than every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

pub(crate) fn encode_head(seq: u64, status: &str) -> Vec<u8> {
    let mut bytes = seq.to_be_bytes().to_vec();
    bytes.extend_from_slice(status.as_bytes());
    bytes
}

pub(crate) fn split_seq(key: &[u8], bytes: &[u8]) -> crate::Result<(u64, Vec<u8>)> {
    let Some((seq, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(crate::Error::Corrupt { key: printable(key), detail: format!("{} bytes, expected at least 8", bytes.len()) });
    };
    Ok((u64::from_be_bytes(*seq), rest.to_vec()))
}

pub(crate) fn printable(key: &[u8]) -> String {
    key.iter().map(|&b| if b.is_ascii_graphic() { (b as char).to_string() } else { format!("\\x{b:02x}") }).collect()
}

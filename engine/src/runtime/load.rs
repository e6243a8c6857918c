//! Loading definitions and instances back from the store.

use crate::machine::payload;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::codec::{self, DecodeError};
use super::Error;
use crate::machine::{self, Instance, Record};
use crate::model::{Format, Source, WorkflowDef};
use crate::plan::{self, AgentNames, Workflow};
use phasegate_store::Store;

/// Definitions by content hash, validated once per process.
#[derive(Debug, Default)]
pub(crate) struct Definitions {
    cache: Mutex<HashMap<String, Arc<Workflow>>>,
}

/// The content hash that pins a definition: SHA-256 of its canonical JSON.
pub(crate) fn content_hash(definition: &WorkflowDef) -> (String, Vec<u8>) {
    let bytes = serde_json::to_vec(definition).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let hash = digest.iter().map(|b| format!("{b:02x}")).collect::<String>();
    (hash, bytes)
}

impl Definitions {
    /// Pins a workflow's definition in the store and caches it.
    pub(crate) fn pin(&self, store: &dyn Store, workflow: Workflow) -> Result<(String, Arc<Workflow>), Error> {
        let (hash, bytes) = content_hash(&workflow.definition);
        store.put_definition(&hash, &bytes)?;
        let workflow = Arc::new(workflow);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(hash.clone(), Arc::clone(&workflow));
        }
        Ok((hash, workflow))
    }

    /// The workflow pinned under `hash`.
    pub(crate) fn get(&self, store: &dyn Store, agents: &AgentNames, hash: &str) -> Result<Arc<Workflow>, Error> {
        if let Some(workflow) = self.cache.lock().ok().and_then(|cache| cache.get(hash).cloned()) {
            return Ok(workflow);
        }
        let bytes =
            store.definition(hash)?.ok_or_else(|| Error::Corrupt(format!("the pinned definition {hash} is missing from the store")))?;
        let text = String::from_utf8_lossy(&bytes);
        let workflow = plan::load_source(&Source::from_text(text.as_ref(), Format::Json), agents)
            .map_err(|problems| Error::Corrupt(format!("the pinned definition {hash} no longer validates:\n{problems}")))?;
        let workflow = Arc::new(workflow);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(hash.to_owned(), Arc::clone(&workflow));
        }
        Ok(workflow)
    }
}

/// Loads an instance: its snapshot, then the events after it through `step`.
/// A record that does not decode or does not apply is reported as
/// [`Error::Corrupt`] for the caller to quarantine.
pub(crate) fn instance(
    store: &dyn Store,
    definitions: &Definitions,
    agents: &AgentNames,
    id: &str,
) -> Result<(Instance, Arc<Workflow>), Error> {
    if let Some(reason) = store.quarantine_reason(id)? {
        return Err(Error::Quarantined { id: id.to_owned(), reason });
    }
    let loaded = store.load(id)?.ok_or_else(|| Error::UnknownInstance(id.to_owned()))?;
    let corrupt = |error: DecodeError| Error::Corrupt(error.to_string());
    let records: Vec<Record> =
        loaded.events.iter().map(|(seq, bytes)| codec::decode_record(id, *seq, bytes)).collect::<Result<_, _>>().map_err(corrupt)?;
    let (mut instance, workflow, rest) = match &loaded.snapshot {
        Some((_, bytes)) => {
            let instance = codec::decode_snapshot(id, bytes).map_err(corrupt)?;
            let workflow = definitions.get(store, agents, &instance.definition_hash)?;
            (instance, workflow, &records[..])
        }
        None => {
            let Some(first) = records.first() else {
                return Err(Error::Corrupt(format!("instance {id} has no events")));
            };
            let hash = match first.event() {
                machine::Event::InstanceStarted(payload::InstanceStarted { definition_hash, .. }) => definition_hash.clone(),
                other => return Err(Error::Corrupt(format!("instance {id} starts with {} instead of InstanceStarted", other.kind()))),
            };
            let workflow = definitions.get(store, agents, &hash)?;
            let instance =
                machine::replay(id, &workflow, &records[..1]).map_err(|r| Error::Corrupt(format!("event 1 of instance {id}: {r}")))?;
            (instance, workflow, &records[1..])
        }
    };
    for record in rest {
        if record.seq() != instance.seq + 1 {
            return Err(Error::Corrupt(format!("instance {id}: event {} follows {}; the log has a gap", record.seq(), instance.seq)));
        }
        machine::step(&mut instance, &workflow, record.event(), record.at())
            .map_err(|r| Error::Corrupt(format!("event {} of instance {id}: {r}", record.seq())))?;
        instance.seq = record.seq();
    }
    if instance.seq != loaded.head.seq {
        return Err(Error::Corrupt(format!("instance {id}: state at event {} but the log ends at {}", instance.seq, loaded.head.seq)));
    }
    // The end of the audit chain: the hash of the last record as stored.
    let last = match loaded.events.last() {
        Some((_, bytes)) => Some(super::audit::hash(bytes)),
        None => store.events(id, instance.seq)?.first().map(|(_, bytes)| super::audit::hash(bytes)),
    };
    instance.chain = last.unwrap_or_default();
    Ok((instance, workflow))
}

/// Every record of an instance, decoded.
pub(crate) fn history(store: &dyn Store, id: &str) -> Result<Vec<Record>, Error> {
    history_from(store, id, 1)
}

/// The records of instance `id` from sequence number `from` on.
pub(crate) fn history_from(store: &dyn Store, id: &str, from: u64) -> Result<Vec<Record>, Error> {
    if store.head(id)?.is_none() {
        return Err(Error::UnknownInstance(id.to_owned()));
    }
    store
        .events(id, from.max(1))?
        .iter()
        .map(|(seq, bytes)| codec::decode_record(id, *seq, bytes).map_err(|e| Error::Corrupt(e.to_string())))
        .collect()
}

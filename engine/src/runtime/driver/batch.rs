//! What one change writes: the events, the status, summary and snapshot,
//! and the index and outbox entries the change implies.

use super::*;

impl Driver {
    /// The batch for `records`: the writes the machine asked for with them
    /// (outbox entries, baselines), stale outbox entries recovery found, and
    /// what the driver keeps for the instance (status, summary, snapshot,
    /// its timer and pending approvals, the request ids decisions used).
    pub(super) fn batch(&mut self, id: &str, records: &[Record], effects: &[Effect], stale_outbox: Vec<Vec<u8>>) -> Batch {
        let Some(cell) = self.cells.get_mut(id) else {
            return Batch::default();
        };
        let instance = &cell.instance;
        let mut outbox: Vec<OutboxOp> = stale_outbox.into_iter().map(|key| OutboxOp::Delete { key }).collect();
        let mut index = Vec::new();
        for effect in effects {
            match effect {
                Effect::WriteOutbox { key, entry } => {
                    outbox.push(OutboxOp::Put { key: key.as_bytes().to_vec(), value: serde_json::to_vec(entry).unwrap_or_default() });
                }
                Effect::DeleteOutbox { key } => outbox.push(OutboxOp::Delete { key: key.as_bytes().to_vec() }),
                // A passed gate's baseline: the workflow's latest, and this instance's own.
                Effect::WriteBaseline { gate, baseline } => {
                    let value = serde_json::to_vec(baseline).unwrap_or_default();
                    index.push(IndexOp::Put {
                        index: codec::BASELINE_INDEX.to_owned(),
                        key: codec::baseline_key(&instance.workflow, gate),
                        value: value.clone(),
                    });
                    index.push(IndexOp::Put {
                        index: codec::BASELINE_BY_INSTANCE_INDEX.to_owned(),
                        key: codec::baseline_key(&instance.id, gate),
                        value,
                    });
                }
                // Request ids are indexed below, with what the driver keeps in memory.
                Effect::WriteRequest { .. }
                | Effect::Dispatch { .. }
                | Effect::Cancel { .. }
                | Effect::Notify { .. }
                | Effect::Compensate { .. }
                | Effect::TriggerNotify { .. } => {}
            }
        }
        let status = instance.effective_status();
        // An instance that is not active keeps its timer in the index so that
        // it is loaded when it falls due (approval deadlines, schedules).
        let wake = cell.wake;
        if cell.written_wake != wake {
            if let Some(old) = cell.written_wake {
                index.push(IndexOp::Delete { index: TIMER_INDEX.to_owned(), key: codec::timer_key(old, id) });
            }
            if let Some(new) = wake {
                index.push(IndexOp::Put { index: TIMER_INDEX.to_owned(), key: codec::timer_key(new, id), value: Vec::new() });
            }
        }
        // Pending decisions are indexed so `approvals` lists them without
        // loading instances.
        let approvals = codec::pending_approvals(instance, &cell.workflow);
        if approvals != cell.written_approvals {
            for key in cell.written_approvals.keys().filter(|k| !approvals.contains_key(*k)) {
                index.push(IndexOp::Delete { index: codec::APPROVAL_INDEX.to_owned(), key: key.clone() });
            }
            for (key, value) in approvals.iter().filter(|(k, v)| cell.written_approvals.get(*k) != Some(*v)) {
                index.push(IndexOp::Put { index: codec::APPROVAL_INDEX.to_owned(), key: key.clone(), value: value.clone() });
            }
            cell.written_approvals = approvals;
        }
        // Request ids of the decisions in this batch, so a reuse is found
        // once the instance has moved on (or from another instance).
        // Each is kept with the time of the record that decided (later events
        // of the same batch may carry a later time).
        let decided_at = |request: &str| {
            records
                .iter()
                .find(|record| match record.event() {
                    Event::DecisionRecorded(payload::DecisionRecorded { decision, .. })
                    | Event::TriggerDecided(payload::TriggerDecided { decision, .. }) => decision.request_id == request,
                    _ => false,
                })
                .or(records.last())
                .map_or(Timestamp(0), Record::at)
        };
        let uses = effects.iter().filter_map(|effect| match effect {
            Effect::WriteRequest { request_id, .. } => crate::runtime::requests::RequestUse::of_effect(id, effect, decided_at(request_id)),
            _ => None,
        });
        for (request_id, used) in uses {
            index.push(IndexOp::Put {
                index: crate::runtime::requests::REQUEST_INDEX.to_owned(),
                key: request_id.clone().into_bytes(),
                value: used.encode(),
            });
            self.requests_in_flight.insert(request_id, used);
        }
        let Some(cell) = self.cells.get_mut(id) else {
            return Batch::default();
        };
        // Each record links to the hash of the one before it (the audit
        // chain); the state, and so the snapshot, keeps the new end.
        let mut chain = if cell.written_seq == 0 { crate::runtime::audit::genesis(id) } else { std::mem::take(&mut cell.instance.chain) };
        let events: Vec<Vec<u8>> = records
            .iter()
            .map(|record| {
                let bytes = codec::encode_linked(record, &chain);
                chain = crate::runtime::audit::hash(&bytes);
                bytes
            })
            .collect();
        cell.instance.chain = chain;
        let instance = &cell.instance;
        let snapshot = (!instance.is_active(&cell.workflow) || instance.seq - cell.snapshot_seq >= SNAPSHOT_EVERY)
            .then(|| codec::encode_snapshot(instance));
        let batch = Batch {
            instance: id.to_owned(),
            expected_seq: cell.written_seq,
            events,
            status: (cell.written_status != Some(status)).then(|| status.as_str().to_owned()),
            summary: Some(Summary::of(instance, wake).encode()),
            snapshot,
            index,
            outbox,
        };
        if batch.snapshot.is_some() {
            cell.snapshot_seq = instance.seq;
        }
        cell.written_seq = instance.seq;
        cell.written_status = Some(status);
        cell.written_wake = wake;
        batch
    }
}

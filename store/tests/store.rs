//! The store's contract, checked against both backends: atomic batches,
//! contiguous sequence numbers, snapshots, indexes, outbox, group commit,
//! format versioning and the one-process lock.

use std::sync::Arc;

use phasegate_store::{Batch, Error, IndexOp, MemoryStore, OutboxOp, SledStore, Store, QUARANTINED};

fn stores() -> Vec<(Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sled: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("open"));
    vec![(Arc::new(MemoryStore::in_memory()), None), (sled, Some(dir))]
}

fn events(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

#[test]
fn batches_append_contiguous_events_and_load_from_the_snapshot() {
    for (store, _dir) in stores() {
        store
            .append(Batch {
                instance: "a".into(),
                expected_seq: 0,
                events: events(3, "x"),
                status: Some("running".into()),
                ..Batch::default()
            })
            .expect("first batch");
        store
            .append(Batch {
                instance: "a".into(),
                expected_seq: 3,
                events: events(2, "y"),
                snapshot: Some(b"state@5".to_vec()),
                ..Batch::default()
            })
            .expect("second batch");
        store.append(Batch { instance: "a".into(), expected_seq: 5, events: events(1, "z"), ..Batch::default() }).expect("third");
        let all = store.events("a", 1).expect("events");
        assert_eq!(all.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(all[3].1, b"y-0");
        let loaded = store.load("a").expect("load").expect("exists");
        assert_eq!(loaded.head.seq, 6);
        assert_eq!(loaded.head.status, "running");
        assert_eq!(loaded.snapshot, Some((5, b"state@5".to_vec())));
        assert_eq!(loaded.events, vec![(6, b"z-0".to_vec())]);
        assert!(store.load("missing").expect("load").is_none());
    }
}

#[test]
fn a_batch_with_the_wrong_expected_sequence_changes_nothing() {
    for (store, _dir) in stores() {
        store
            .append(Batch {
                instance: "a".into(),
                expected_seq: 0,
                events: events(2, "x"),
                status: Some("running".into()),
                ..Batch::default()
            })
            .expect("first");
        let error = store
            .append(Batch {
                instance: "a".into(),
                expected_seq: 1,
                events: events(1, "late"),
                status: Some("done".into()),
                index: vec![IndexOp::Put { index: "t".into(), key: b"k".to_vec(), value: vec![] }],
                ..Batch::default()
            })
            .expect_err("stale");
        assert!(matches!(error, Error::SequenceConflict { expected: 1, found: 2, .. }), "{error}");
        assert_eq!(store.events("a", 1).expect("events").len(), 2);
        assert_eq!(store.head("a").expect("head").expect("exists").status, "running");
        assert!(store.index_prefix("t", b"").expect("index").is_empty());
    }
}

#[test]
fn the_status_index_follows_the_head() {
    for (store, _dir) in stores() {
        for id in ["a", "b", "c"] {
            store
                .append(Batch {
                    instance: id.into(),
                    expected_seq: 0,
                    events: events(1, id),
                    status: Some("running".into()),
                    ..Batch::default()
                })
                .expect("start");
        }
        store
            .append(Batch {
                instance: "b".into(),
                expected_seq: 1,
                events: events(1, "b"),
                status: Some("completed".into()),
                ..Batch::default()
            })
            .expect("complete");
        assert_eq!(store.instances_with_status("running").expect("running"), ["a", "c"]);
        assert_eq!(store.instances_with_status("completed").expect("completed"), ["b"]);
        assert_eq!(store.instances().expect("all").len(), 3);
        store.quarantine("c", "record 2 does not decode").expect("quarantine");
        assert_eq!(store.instances_with_status("running").expect("running"), ["a"]);
        assert_eq!(store.instances_with_status(QUARANTINED).expect("quarantined"), ["c"]);
        assert_eq!(store.quarantine_reason("c").expect("reason").as_deref(), Some("record 2 does not decode"));
    }
}

#[test]
fn scans_show_summaries_and_index_entries_in_order_and_stop_when_asked() {
    for (store, _dir) in stores() {
        for id in ["b", "a", "c"] {
            store
                .append(Batch {
                    instance: id.into(),
                    expected_seq: 0,
                    events: events(1, id),
                    status: Some("running".into()),
                    summary: Some(format!("summary of {id}").into_bytes()),
                    index: vec![IndexOp::Put { index: "approval".into(), key: id.as_bytes().to_vec(), value: id.repeat(2).into_bytes() }],
                    ..Batch::default()
                })
                .expect("start");
        }
        // An instance without a summary, and another index with a name that shares the prefix.
        store.append(Batch { instance: "d".into(), expected_seq: 0, events: events(1, "d"), ..Batch::default() }).expect("bare");
        store
            .append(Batch {
                instance: "e".into(),
                expected_seq: 0,
                events: events(1, "e"),
                index: vec![IndexOp::Put { index: "approvals".into(), key: b"e".to_vec(), value: vec![] }],
                ..Batch::default()
            })
            .expect("other index");
        let mut summaries = Vec::new();
        store
            .scan_summaries(&mut |id, bytes| {
                summaries.push((id.to_owned(), String::from_utf8_lossy(bytes).into_owned()));
                true
            })
            .expect("scan");
        assert_eq!(
            summaries,
            [("a", "summary of a"), ("b", "summary of b"), ("c", "summary of c")].map(|(i, s)| (i.to_owned(), s.to_owned()))
        );
        let mut entries = Vec::new();
        store
            .scan_index("approval", b"", &mut |key, value| {
                entries.push((key.to_vec(), value.to_vec()));
                true
            })
            .expect("scan");
        assert_eq!(entries, store.index_prefix("approval", b"").expect("prefix"));
        assert_eq!(entries, [(b"a".to_vec(), b"aa".to_vec()), (b"b".to_vec(), b"bb".to_vec()), (b"c".to_vec(), b"cc".to_vec())]);
        let mut seen = 0;
        store
            .scan_summaries(&mut |_, _| {
                seen += 1;
                seen < 2
            })
            .expect("scan");
        assert_eq!(seen, 2, "the scan stops when the visitor says so");
        assert!(store.quarantined().expect("none").is_empty());
        store.quarantine("b", "event 1 does not decode").expect("quarantine");
        assert_eq!(store.quarantined().expect("one"), [("b".to_owned(), "event 1 does not decode".to_owned())]);
    }
}

#[test]
fn indexes_and_outbox_are_ordered_and_scoped() {
    for (store, _dir) in stores() {
        let timer = |due: u64, id: &str| {
            let mut key = due.to_be_bytes().to_vec();
            key.extend_from_slice(id.as_bytes());
            key
        };
        store
            .append(Batch {
                instance: "a".into(),
                expected_seq: 0,
                events: events(1, "a"),
                index: vec![
                    IndexOp::Put { index: "timer".into(), key: timer(300, "a"), value: b"late".to_vec() },
                    IndexOp::Put { index: "timer".into(), key: timer(100, "a"), value: b"early".to_vec() },
                    IndexOp::Put { index: "timers-other".into(), key: timer(50, "a"), value: vec![] },
                ],
                outbox: vec![
                    OutboxOp::Put { key: b"1".to_vec(), value: b"dispatch t1".to_vec() },
                    OutboxOp::Put { key: b"2".to_vec(), value: b"dispatch t2".to_vec() },
                ],
                ..Batch::default()
            })
            .expect("append");
        let due = store.index_range("timer", &0u64.to_be_bytes(), &200u64.to_be_bytes(), 10).expect("range");
        assert_eq!(store.index_range("timer", &0u64.to_be_bytes(), &400u64.to_be_bytes(), 1).expect("limited").len(), 1);
        assert_eq!(store.outbox_instances().expect("outbox instances"), ["a"]);
        assert_eq!(due, vec![(timer(100, "a"), b"early".to_vec())]);
        assert_eq!(store.index_prefix("timer", b"").expect("all").len(), 2, "another index's entries stay apart");
        store
            .append(Batch {
                instance: "a".into(),
                expected_seq: 1,
                outbox: vec![OutboxOp::Delete { key: b"1".to_vec() }],
                ..Batch::default()
            })
            .expect("outbox delete");
        assert_eq!(store.outbox("a").expect("outbox"), vec![(b"2".to_vec(), b"dispatch t2".to_vec())]);
        assert!(store.outbox("b").expect("outbox").is_empty());
    }
}

#[test]
fn definitions_are_pinned_by_hash() {
    for (store, _dir) in stores() {
        store.put_definition("abc", b"{\"name\": \"w\"}").expect("put");
        store.put_definition("abc", b"{\"name\": \"w\"}").expect("idempotent");
        assert_eq!(store.definition("abc").expect("get").as_deref(), Some(&b"{\"name\": \"w\"}"[..]));
        assert!(store.definition("def").expect("get").is_none());
    }
}

#[test]
fn settings_are_kept_by_key_listed_by_prefix_and_removed() {
    for (store, _dir) in stores() {
        store.put_setting("user:bob", Some(b"b")).expect("put");
        store.put_setting("user:alice", Some(b"a1")).expect("put");
        store.put_setting("user:alice", Some(b"a2")).expect("overwrite");
        store.put_setting("policy", Some(b"p")).expect("put");
        let users = store.settings("user:").expect("list");
        assert_eq!(users, [("user:alice".to_owned(), b"a2".to_vec()), ("user:bob".to_owned(), b"b".to_vec())]);
        store.put_setting("user:bob", None).expect("remove");
        assert_eq!(store.settings("user:").expect("list").len(), 1);
        assert_eq!(store.settings("").expect("all").len(), 2, "settings never mix with instances' records");
        assert!(store.put_setting("", Some(b"x")).is_err(), "an empty key is refused");
    }
}

#[test]
fn invalid_ids_are_refused() {
    for (store, _dir) in stores() {
        let error = store.append(Batch { instance: "a/b".into(), events: events(1, "x"), ..Batch::default() }).expect_err("slash");
        assert!(matches!(error, Error::InvalidId(_)));
    }
}

#[test]
fn concurrent_instances_share_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open"));
    let (sender, receiver) = std::sync::mpsc::channel();
    let instances = 200;
    let per_instance = 10;
    for round in 0..per_instance {
        for i in 0..instances {
            let sender = sender.clone();
            store.submit(
                Batch {
                    instance: format!("i{i}"),
                    expected_seq: round,
                    events: events(1, "e"),
                    status: Some("running".into()),
                    ..Batch::default()
                },
                Box::new(move |result| {
                    let _ = sender.send(result);
                }),
            );
        }
    }
    drop(sender);
    let results: Vec<_> = receiver.iter().collect();
    assert_eq!(results.len(), (instances * per_instance) as usize);
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    let stats = store.stats();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    let flushes = stats.flushes.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(batches, 2000);
    assert!(flushes < batches, "group commit: {flushes} flushes for {batches} batches");
    for i in 0..instances {
        assert_eq!(store.head(&format!("i{i}")).expect("head").expect("exists").seq, per_instance);
    }
}

#[test]
fn batches_committed_together_keep_their_order_their_conflicts_and_their_last_values() {
    for (store, _dir) in stores() {
        let (sender, receiver) = std::sync::mpsc::channel();
        // Submitted without waiting, so they share groups: each continues the
        // one before, the fourth conflicts, and the statuses go back and forth.
        let batches = [
            (0, "running", vec![OutboxOp::Put { key: b"k1".to_vec(), value: b"dispatch".to_vec() }]),
            (1, "waiting", vec![OutboxOp::Delete { key: b"k1".to_vec() }]),
            (2, "running", vec![OutboxOp::Put { key: b"k2".to_vec(), value: b"dispatch".to_vec() }]),
            (2, "failed", vec![]),
            (3, "completed", vec![]),
        ];
        for (expected_seq, status, outbox) in batches {
            let sender = sender.clone();
            store.submit(
                Batch {
                    instance: "a".into(),
                    expected_seq,
                    events: events(1, status),
                    status: Some(status.into()),
                    summary: Some(format!("summary {status}").into_bytes()),
                    outbox,
                    ..Batch::default()
                },
                Box::new(move |result| {
                    let _ = sender.send((expected_seq, status, result));
                }),
            );
        }
        drop(sender);
        let results: Vec<_> = receiver.iter().collect();
        let refused: Vec<_> = results.iter().filter(|(.., r)| r.is_err()).map(|(seq, status, _)| (*seq, *status)).collect();
        assert_eq!(refused, [(2, "failed")], "only the conflicting batch is refused");
        assert!(matches!(results[3].2, Err(Error::SequenceConflict { expected: 2, found: 3, .. })), "{:?}", results[3]);
        let loaded = store.load("a").expect("load").expect("exists");
        assert_eq!((loaded.head.seq, loaded.head.status.as_str()), (4, "completed"));
        assert_eq!(loaded.events.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(loaded.events[3].1, b"completed-0");
        assert_eq!(loaded.summary.as_deref(), Some(&b"summary completed"[..]));
        assert_eq!(store.outbox("a").expect("outbox"), [(b"k2".to_vec(), b"dispatch".to_vec())]);
        for status in ["running", "waiting", "failed"] {
            assert!(store.instances_with_status(status).expect("index").is_empty(), "{status}");
        }
        assert_eq!(store.instances_with_status("completed").expect("index"), ["a"]);
    }
}

#[test]
fn a_store_held_by_another_opener_is_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _held = SledStore::open(dir.path()).expect("first open");
    let error = SledStore::open(dir.path()).expect_err("second open");
    assert!(matches!(error, Error::InUse { .. }), "{error:?}");
    assert!(error.to_string().contains("in use by another phasegate process"), "{error}");
}

#[test]
fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = sled::open(dir.path()).expect("raw sled");
        db.insert(b"m:format", 99u32.to_be_bytes().to_vec()).expect("insert");
        db.flush().expect("flush");
    }
    let error = SledStore::open(dir.path()).expect_err("newer");
    assert!(matches!(error, Error::NewerFormat { found: 99, supported: 1, .. }), "{error:?}");
}

#[test]
fn data_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SledStore::open(dir.path()).expect("open");
        store
            .append(Batch {
                instance: "a".into(),
                expected_seq: 0,
                events: events(4, "x"),
                status: Some("halted".into()),
                ..Batch::default()
            })
            .expect("append");
        store.put_setting("policy", Some(b"strict")).expect("setting");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(store.head("a").expect("head").expect("exists").seq, 4);
    assert_eq!(store.settings("policy").expect("settings"), [("policy".to_owned(), b"strict".to_vec())]);
    assert_eq!(store.instances_with_status("halted").expect("index"), ["a"]);
}

/// Regression: reopening right after a drop found sled's lock still held by
/// its background flusher and failed with InUse (seen in CI).
#[test]
fn reopening_right_after_closing_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..30u64 {
        let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("round {round}: {e}"));
        store.append(Batch { instance: "a".into(), expected_seq: round, events: events(1, "x"), ..Batch::default() }).expect("append");
    }
    let store = SledStore::open(dir.path()).expect("open");
    assert_eq!(store.head("a").expect("head").expect("exists").seq, 30);
}

/// Regression (hardening issue, crash test at 300 cycles): a kill while sled
/// wrote a snapshot left `snap.*.generating`, which sled 0.34 reads as the
/// newest snapshot and refuses as corrupt, so the store would not reopen.
#[test]
fn regression_an_unfinished_snapshot_file_does_not_make_the_store_unreadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SledStore::open(dir.path()).expect("open");
        store
            .append(Batch {
                instance: "a".into(),
                expected_seq: 0,
                events: events(2, "x"),
                status: Some("running".into()),
                ..Batch::default()
            })
            .expect("append");
        store.close();
    }
    std::fs::write(dir.path().join("snap.FFFFFFFFFFFFFFFF.generating"), b"half a snapshot").expect("write");
    let store = SledStore::open_with(dir.path(), phasegate_store::OpenMode::Existing).expect("the store opens");
    assert_eq!(store.head("a").expect("head").map(|h| h.seq), Some(2), "nothing acknowledged was lost");
    assert!(!dir.path().join("snap.FFFFFFFFFFFFFFFF.generating").exists());
}

/// The marker and the open modes: an existing directory without a store is
/// not one, a store with a marker whose data is gone is refused, never
/// opened as a new one.
#[test]
fn a_store_is_created_only_when_asked_and_never_over_lost_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothing-here");
    assert!(matches!(SledStore::open_with(&missing, phasegate_store::OpenMode::Existing), Err(Error::NoStore { .. })));
    assert!(!missing.exists(), "opening an existing store never creates one");
    let path = dir.path().join("store");
    SledStore::open(&path).expect("created").close();
    let marker = phasegate_store::marker::read(&path).expect("readable").expect("a marker");
    assert_eq!(marker.format, phasegate_store::FORMAT_VERSION);
    std::fs::remove_file(path.join("db")).expect("lose sled's log");
    for mode in [phasegate_store::OpenMode::Existing, phasegate_store::OpenMode::Create] {
        let refused = SledStore::open_with(&path, mode).expect_err("refused");
        assert!(matches!(refused, Error::LostData { .. }), "{refused}");
        assert!(refused.to_string().contains("phasegate restore"), "{refused}");
    }
    assert!(!path.join("db").exists(), "nothing was re-created");
}

/// Regression (issue 17 CI run): `status` through a running server read an
/// instance's head, then a batch landed, then its snapshot: "state at event
/// 63 but the log ends at 61", reported as corrupt. A load racing a writer
/// must see one batch's state: the snapshot and events end at the head.
#[test]
fn regression_a_load_racing_a_writer_sees_one_consistent_state() {
    for (store, _dir) in stores() {
        store
            .append(Batch {
                instance: "r".into(),
                expected_seq: 0,
                events: events(1, "e"),
                status: Some("running".into()),
                ..Batch::default()
            })
            .expect("first batch");
        let writer = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for seq in 1..400u64 {
                    let snapshot = Some(format!("state@{}", seq + 1).into_bytes());
                    let batch = Batch { instance: "r".into(), expected_seq: seq, events: events(1, "e"), snapshot, ..Batch::default() };
                    store.append(batch).expect("append");
                }
            })
        };
        let mut loads = 0;
        while !writer.is_finished() || loads == 0 {
            let loaded = store.load("r").expect("a load never fails for a busy instance").expect("exists");
            let state_at = match &loaded.snapshot {
                Some((seq, bytes)) => {
                    assert_eq!(bytes, format!("state@{seq}").as_bytes(), "the snapshot is the one written at its seq");
                    *seq
                }
                None => 0,
            };
            let last = loaded.events.last().map_or(state_at, |(seq, _)| *seq);
            assert_eq!(last, loaded.head.seq, "snapshot at {state_at}, events to {last}, head at {}", loaded.head.seq);
            loads += 1;
        }
        writer.join().expect("writer");
    }
}

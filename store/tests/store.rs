//! The store's contract, checked against both backends: atomic batches,
//! contiguous sequence numbers, snapshots, indexes, outbox, group commit,
//! format versioning and the one-process lock.

use std::sync::Arc;

use phasegate_store::{
    Batch, Error, IndexOp, MemoryStore, OpenMode, OutboxOp, PostgresOptions, PostgresStore, SledStore, Store, QUARANTINED,
};

/// The admin URL of the test PostgreSQL server that scripts/test starts.
fn postgres_admin() -> String {
    std::env::var("PHASEGATE_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("PHASEGATE_TEST_POSTGRES is not set: run ./scripts/test, which starts a private PostgreSQL (scripts/postgres) and sets it")
    })
}

/// Runs SQL on the test server's database `db` (the admin database when none).
fn sql(url: &str, statements: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to the test PostgreSQL");
        let task = tokio::spawn(connection);
        client.batch_execute(statements).await.unwrap_or_else(|e| panic!("{statements}: {e}"));
        drop(client);
        let _ = task.await;
    });
}

/// A new, empty database on the test server; its URL.
fn fresh_database() -> String {
    let admin = postgres_admin();
    let name = format!("store_{}", uuid::Uuid::now_v7().simple());
    sql(&admin, &format!("CREATE DATABASE {name}"));
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("PHASEGATE_TEST_POSTGRES ({admin}) has no database part"),
    }
}

/// Waits until `done` holds, asking every 50 ms for at most 30 s, then
/// fails naming `what`: how these tests wait on a node's background
/// renewals, never a sleep followed by an assertion.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn quick() -> PostgresOptions {
    PostgresOptions { lease: std::time::Duration::from_secs(2), ..PostgresOptions::default() }
}

fn open_postgres(url: &str) -> PostgresStore {
    PostgresStore::open_url(url, OpenMode::Create, quick()).expect("open the PostgreSQL store")
}

/// Every backend: memory, sled, and PostgreSQL (each test its own database).
fn stores() -> Vec<(Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sled: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("open"));
    let postgres: Arc<dyn Store> = Arc::new(open_postgres(&fresh_database()));
    vec![(Arc::new(MemoryStore::in_memory()), None), (sled, Some(dir)), (postgres, None)]
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
    concurrent_instances_share_flushes_in(Arc::new(SledStore::open(dir.path()).expect("open")));
    concurrent_instances_share_flushes_in(Arc::new(open_postgres(&fresh_database())));
}

fn concurrent_instances_share_flushes_in<S: Store + 'static>(store: Arc<S>) {
    let store: Arc<dyn Store> = store;
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
    let stats = store.stats().expect("the log store keeps stats");
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

#[test]
fn postgres_a_second_node_is_refused_while_the_first_holds_the_leases() {
    let url = fresh_database();
    let first = open_postgres(&url);
    let started = std::time::Instant::now();
    let error = PostgresStore::open_url(&url, OpenMode::Create, quick()).expect_err("a second node");
    assert!(matches!(error, Error::InUse { .. }), "{error:?}");
    // It waited for the leases (renewed meanwhile) before it gave up.
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    first.close();
    // Closing released them: the next node needs no wait for expiry.
    let next = open_postgres(&url);
    next.append(Batch { instance: "a".into(), expected_seq: 0, events: events(1, "x"), ..Batch::default() }).expect("append");
}

#[test]
fn postgres_data_survives_reopening_and_a_killed_nodes_leases_expire() {
    let url = fresh_database();
    {
        let store = open_postgres(&url);
        store
            .append(Batch {
                instance: "a".into(),
                expected_seq: 0,
                events: events(3, "x"),
                status: Some("running".into()),
                ..Batch::default()
            })
            .expect("append");
        store.put_definition("h1", b"def").expect("definition");
        store.close();
    }
    // A node killed mid-lease: its leases are never released nor renewed.
    sql(&url, "UPDATE phasegate_shards SET owner = 'killed-node', fence = fence + 1, expires = now() + interval '1 second'");
    let store = PostgresStore::open_url(&url, OpenMode::Existing, quick()).expect("the leases of a dead node expire");
    assert_eq!(store.head("a").expect("head").expect("exists").seq, 3);
    assert_eq!(store.definition("h1").expect("definition").as_deref(), Some(&b"def"[..]));
    assert_eq!(store.instances_with_status("running").expect("index"), ["a"]);
}

#[test]
fn postgres_a_write_from_a_node_that_lost_its_lease_is_refused_by_the_database() {
    let url = fresh_database();
    let store = open_postgres(&url);
    store.append(Batch { instance: "a".into(), expected_seq: 0, events: events(1, "x"), ..Batch::default() }).expect("append");
    // Another node takes every shard over, as it would after this one's
    // lease expired: the fence moves on.
    sql(&url, "UPDATE phasegate_shards SET owner = 'usurper', fence = fence + 1, expires = now() + interval '1 hour'");
    let refused = store.append(Batch { instance: "a".into(), expected_seq: 1, events: events(1, "y"), ..Batch::default() });
    assert!(matches!(refused, Err(Error::NotOwner { ref instance, .. }) if instance == "a"), "{refused:?}");
    assert_eq!(store.head("a").expect("head").expect("exists").seq, 1, "nothing was written");
    // The lease renewal notices, and the store reports itself failed.
    eventually("the lost lease to be reported", || store.failure().is_some());
    assert!(store.failure().expect("failed").contains("lost the lease"), "{:?}", store.failure());
}

#[test]
fn postgres_events_record_the_node_and_fence_that_appended_them() {
    let url = fresh_database();
    let store = open_postgres(&url);
    store.append(Batch { instance: "a".into(), expected_seq: 0, events: events(2, "x"), ..Batch::default() }).expect("append");
    store.close();
    drop(store);
    // Every event row carries a node and a positive fence; other rows none.
    sql(
        &url,
        "DO $$ BEGIN
           IF (SELECT count(*) FROM phasegate_kv WHERE substring(k from 1 for 2) = 'e:'::bytea AND node IS NOT NULL AND fence > 0) <> 2 THEN
             RAISE EXCEPTION 'events without their node and fence';
           END IF;
           IF EXISTS (SELECT 1 FROM phasegate_kv WHERE substring(k from 1 for 2) <> 'e:'::bytea AND node IS NOT NULL) THEN
             RAISE EXCEPTION 'a record that is not an event has a node';
           END IF;
         END $$;",
    );
}

#[test]
fn postgres_schemas_are_migrated_on_request_and_never_opened_when_newer_or_older() {
    // An empty database is refused unless creating, and created on request.
    let url = fresh_database();
    assert!(matches!(PostgresStore::open_url(&url, OpenMode::Existing, quick()), Err(Error::NoStore { .. })));
    assert_eq!(phasegate_store::PostgresBackend::migrate(&url).expect("migrate"), (0, phasegate_store::postgres::SCHEMA_VERSION));
    assert_eq!(
        phasegate_store::PostgresBackend::migrate(&url).expect("migrate again"),
        (phasegate_store::postgres::SCHEMA_VERSION, phasegate_store::postgres::SCHEMA_VERSION),
        "migrating twice is a no-op"
    );
    open_postgres(&url).close();
    // A schema from a newer phasegate.
    sql(&url, "INSERT INTO phasegate_schema (version) VALUES (999)");
    let newer = PostgresStore::open_url(&url, OpenMode::Create, quick()).expect_err("newer");
    assert!(matches!(newer, Error::NewerFormat { found: 999, .. }), "{newer:?}");
    assert!(!newer.to_string().contains("password"), "{newer}");
    let refused = phasegate_store::PostgresBackend::migrate(&url).expect_err("migrate refuses a newer schema");
    assert!(matches!(refused, Error::NewerFormat { found: 999, .. }), "{refused:?}");
    // A schema older than this build's is refused until migrated.
    sql(&url, "DELETE FROM phasegate_schema; INSERT INTO phasegate_schema (version) VALUES (0)");
    let older = PostgresStore::open_url(&url, OpenMode::Create, quick()).expect_err("older");
    assert!(older.to_string().contains("phasegate store migrate"), "{older}");
}

#[test]
fn postgres_a_bad_url_is_refused_without_showing_its_password() {
    let error = PostgresStore::open_url("postgres://me:sekrit@127.0.0.1:1/db?connect_timeout=1", OpenMode::Create, quick())
        .expect_err("nothing listens on port 1");
    assert!(!error.to_string().contains("sekrit"), "{error}");
    let error = PostgresStore::open_url("postgres://me:sekrit@[bad", OpenMode::Create, quick()).expect_err("unparseable");
    assert!(!error.to_string().contains("sekrit"), "{error}");
}

#[test]
fn store_copy_moves_a_sled_store_into_postgres_and_back_record_for_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sled_path = dir.path().join("sled");
    {
        let store = SledStore::open(&sled_path).expect("open");
        for i in 0..50 {
            store
                .append(Batch {
                    instance: format!("i{i}"),
                    expected_seq: 0,
                    events: events(3, "x"),
                    status: Some(if i % 2 == 0 { "running" } else { "completed" }.into()),
                    summary: Some(format!("summary {i}").into_bytes()),
                    snapshot: Some(b"snap".to_vec()),
                    index: vec![IndexOp::Put { index: "approvals".into(), key: format!("k{i}").into_bytes(), value: b"v".to_vec() }],
                    outbox: vec![OutboxOp::Put { key: b"o".to_vec(), value: b"dispatch".to_vec() }],
                })
                .expect("append");
        }
        store.put_setting("c1", Some(b"setting")).expect("setting");
        store.put_definition("h", b"definition").expect("definition");
    }
    let url = fresh_database();
    let sled_path = sled_path.display().to_string();
    let into = phasegate_store::postgres::copy(&sled_path, &url).expect("sled into PostgreSQL");
    assert_eq!(into.instances, 50);
    // Never over a store.
    let again = phasegate_store::postgres::copy(&sled_path, &url).expect_err("a second copy over it");
    assert!(again.to_string().contains("already holds a phasegate store"), "{again}");
    let back_path = dir.path().join("back").display().to_string();
    let back = phasegate_store::postgres::copy(&url, &back_path).expect("PostgreSQL back into sled");
    assert_eq!((back.records, back.bytes, back.instances), (into.records, into.bytes, into.instances));
    let refused = phasegate_store::postgres::copy(&url, &back_path).expect_err("over a directory");
    assert!(refused.to_string().contains("not empty"), "{refused}");
    // The copy opens as a store and holds what the original held.
    let postgres = open_postgres(&url);
    let copied = SledStore::open(std::path::Path::new(&back_path)).expect("open the copy");
    for store in [&postgres as &dyn Store, &copied as &dyn Store] {
        assert_eq!(store.instances().expect("instances").len(), 50);
        assert_eq!(store.instances_with_status("running").expect("index").len(), 25);
        assert_eq!(store.load("i7").expect("load").expect("exists").snapshot, Some((3, b"snap".to_vec())));
        assert_eq!(store.outbox_instances().expect("outbox").len(), 50);
        assert_eq!(store.settings("c1").expect("settings"), [("c1".to_owned(), b"setting".to_vec())]);
        assert_eq!(store.definition("h").expect("definition").as_deref(), Some(&b"definition"[..]));
        assert_eq!(store.index_prefix("approvals", b"").expect("index").len(), 50);
    }
}

#[test]
fn postgres_sharing_nodes_split_the_shards_and_take_over_a_dead_nodes() {
    let url = fresh_database();
    let shared = || PostgresOptions { lease: std::time::Duration::from_secs(2), shared: true, ..PostgresOptions::default() };
    let a = PostgresStore::open_url(&url, OpenMode::Create, shared()).expect("node a");
    assert_eq!(a.cluster().expect("a cluster node").shards, 64, "alone, a node holds every shard");
    let b = PostgresStore::open_url(&url, OpenMode::Create, shared()).expect("node b joins");
    let split = |a: &PostgresStore, b: &PostgresStore| (a.cluster().map_or(0, |c| c.shards), b.cluster().map_or(0, |c| c.shards));
    eventually("the shards to split 32/32", || split(&a, &b) == (32, 32));
    // Each writes only what it owns; the other's instances are refused.
    let (mine, theirs): (Vec<String>, Vec<String>) = (0..200).map(|i| format!("i{i}")).partition(|id| a.owns(id));
    assert!(!mine.is_empty() && !theirs.is_empty());
    assert!(mine.iter().all(|id| !b.owns(id)) && theirs.iter().all(|id| b.owns(id)), "one owner per instance");
    a.append(Batch { instance: mine[0].clone(), expected_seq: 0, events: events(1, "a"), ..Batch::default() }).expect("a writes its own");
    let refused = a.append(Batch { instance: theirs[0].clone(), expected_seq: 0, events: events(1, "a"), ..Batch::default() });
    assert!(matches!(refused, Err(Error::NotOwner { .. })), "{refused:?}");
    assert!(a.failure().is_none(), "a refused batch is not a failed store");
    assert_eq!(a.owner(&theirs[0]).expect("owner").map(|o| o.node), b.cluster().map(|c| c.node));
    // b dies without a word (its heartbeats and renewals stop): a takes its
    // shards over once their leases expire, with new fences.
    let b_node = b.cluster().expect("b").node;
    std::mem::forget(b);
    sql(&url, &format!("UPDATE phasegate_nodes SET heartbeat = now() - interval '1 hour' WHERE node = '{b_node}'"));
    sql(&url, &format!("UPDATE phasegate_shards SET expires = now() WHERE owner = '{b_node}'"));
    // (b's leaked runtime would renew them: stop it renewing by moving the fence.)
    sql(&url, &format!("UPDATE phasegate_shards SET fence = fence + 1 WHERE owner = '{b_node}'"));
    eventually("a to take every shard over", || a.cluster().map_or(0, |c| c.shards) == 64);
    assert!(a.cluster().expect("a").takeovers >= 32, "{:?}", a.cluster());
    a.append(Batch { instance: theirs[0].clone(), expected_seq: 0, events: events(1, "a"), ..Batch::default() }).expect("a writes it now");
}

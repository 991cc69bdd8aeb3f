//! The durable store: survives reopening; damage is detected, never returned, never a panic.
#![cfg(feature = "sqlite")]

use std::path::PathBuf;

use tower_heal::store::{Record, ResultStore, SqliteStore, StoreError};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tower-heal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn value(i: u32) -> Vec<u8> {
    format!("response number {i} ")
        .repeat(1 + (i as usize % 7))
        .into_bytes()
}

fn build(path: &std::path::Path, entries: u32) {
    let store = SqliteStore::open(path).unwrap();
    for i in 0..entries {
        store
            .put(
                &format!("key-{i}"),
                Record::new(u64::from(i) * 31, value(i)),
                None,
            )
            .unwrap();
    }
}

#[test]
fn a_committed_record_survives_reopening() {
    let dir = temp_dir("reopen");
    let path = dir.join("store.db");
    build(&path, 10);
    let store = SqliteStore::open(&path).unwrap();
    for i in 0..10 {
        let record = store.get(&format!("key-{i}")).unwrap().unwrap();
        assert_eq!(
            (record.fingerprint, &*record.value),
            (u64::from(i) * 31, &value(i)[..])
        );
    }
    store.remove("key-3").unwrap();
    assert!(store.get("key-3").unwrap().is_none());
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_that_is_not_a_database_is_a_typed_error() {
    let dir = temp_dir("garbage");
    let path = dir.join("store.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Corrupt(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Truncates or overwrites the store at seeded random positions, then opens it: each run must
/// give a typed error, or a store whose every answer is absent, an error, or the right record.
#[test]
fn a_store_truncated_or_corrupted_at_random_positions_is_detected() {
    let dir = temp_dir("corrupt");
    let pristine = dir.join("pristine.db");
    build(&pristine, 60);
    assert!(
        !dir.join("pristine.db-wal").exists()
            || std::fs::metadata(dir.join("pristine.db-wal"))
                .unwrap()
                .len()
                == 0
    );
    let original = std::fs::read(&pristine).unwrap();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let (mut refused, mut opened, mut wrong, mut ignored) = (0, 0, 0, 0);
    for run in 0..60 {
        let mut bytes = original.clone();
        if run % 3 == 0 {
            bytes.truncate(rng.usize(0..bytes.len()));
        } else {
            for _ in 0..rng.usize(1..16) {
                let at = rng.usize(0..bytes.len());
                bytes[at] = rng.u8(..);
            }
        }
        let path = dir.join(format!("run-{run}.db"));
        std::fs::write(&path, &bytes).unwrap();
        match SqliteStore::open(&path) {
            Err(StoreError::Corrupt(_) | StoreError::Backend(_)) => refused += 1,
            Err(other) => panic!("unexpected error kind: {other}"),
            Ok(store) => {
                opened += 1;
                for i in 0..60 {
                    match store.get(&format!("key-{i}")) {
                        Ok(Some(record)) => {
                            if *record.value != *value(i) || record.fingerprint != u64::from(i) * 31
                            {
                                wrong += 1;
                            }
                        }
                        Ok(None) | Err(_) => ignored += 1,
                    }
                }
            }
        }
    }
    assert_eq!(wrong, 0, "a damaged record was returned");
    assert_eq!(refused + opened, 60);
    // Both paths were exercised: some damage is refused on open, some is found per record.
    assert!(
        refused > 0 && opened > 0,
        "refused {refused}, opened {opened}"
    );
    assert!(ignored > 0, "no damaged record was ever ignored");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_record_over_the_limit_is_refused() {
    let dir = temp_dir("limit");
    let store = SqliteStore::open_with(dir.join("store.db"), 10, 8).unwrap();
    assert!(matches!(
        store.put("k", Record::new(0, vec![0; 9]), None),
        Err(StoreError::TooLarge { bytes: 9, max: 8 })
    ));
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_write_waiting_on_the_disk_does_not_stall_the_tokio_worker() {
    let dir = temp_dir("worker");
    let path = dir.join("store.db");
    let store = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
    // Another process holds the write lock: the store's put waits (its busy timeout) as a
    // slow flush would.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let writer = {
        let store = store.clone();
        runtime.spawn(async move {
            started_tx.send(()).unwrap();
            store.put("k", Record::new(1, b"v".to_vec()), None)
        })
    };
    started_rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    // The one worker is inside the put; another task must still run.
    let (ran_tx, ran_rx) = std::sync::mpsc::channel();
    runtime.spawn(async move { ran_tx.send(()).unwrap() });
    let ran = ran_rx.recv_timeout(std::time::Duration::from_secs(2));
    other.execute_batch("COMMIT").unwrap();
    assert!(ran.is_ok(), "another task ran while the write waited");
    runtime.block_on(writer).unwrap().unwrap();
    assert_eq!(&*store.get("k").unwrap().unwrap().value, b"v");
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_records_evicted_by_the_bound_are_counted() {
    let dir = temp_dir("evict");
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let store = metrics::with_local_recorder(&recorder, || {
        SqliteStore::open_with(dir.join("store.db"), 10, 1 << 20).unwrap()
    });
    let day = Some(std::time::Duration::from_secs(86_400));
    for i in 0..64 {
        store
            .put(&format!("k{i}"), Record::new(1, b"v".to_vec()), day)
            .unwrap();
    }
    let evicted = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(k, ..)| k.key().name() == "heal_store_evictions_total")
        .map(|(.., v)| v);
    assert_eq!(
        evicted,
        Some(metrics_util::debugging::DebugValue::Counter(54)),
        "64 live records in a store of 10"
    );
    assert!(store.get("k0").unwrap().is_none());
    assert!(store.get("k63").unwrap().is_some());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

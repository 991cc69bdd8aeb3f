//! Checkpointed workflows in one process (the crash test with a real child process is in
//! `examples/tests/heal_checkpoint.rs`).
#![cfg(feature = "checkpoint")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tower::service_fn;
use tower_heal::checkpoint::{CheckpointError, Workflow, WorkflowError};
use tower_heal::store::{MemoryStore, Record, ResultStore};

#[tokio::test(start_paused = true)]
async fn a_rerun_skips_completed_steps_and_returns_their_results() {
    let store = Arc::new(MemoryStore::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let step = |value: u32| {
        let runs = runs.clone();
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(value)
        }
    };
    let mut first = Workflow::open(store.clone(), "wf");
    assert_eq!(first.step("one", step(1)).await.unwrap(), 1);
    assert_eq!(first.step("two", step(2)).await.unwrap(), 2);
    drop(first); // "crashed" before step three

    let mut second = Workflow::open(store.clone(), "wf");
    assert_eq!(
        second.step("one", step(100)).await.unwrap(),
        1,
        "stored result"
    );
    assert_eq!(
        second.step("two", step(200)).await.unwrap(),
        2,
        "stored result"
    );
    assert_eq!(second.step("three", step(3)).await.unwrap(), 3);
    assert_eq!(runs.load(Ordering::SeqCst), 3, "steps one and two ran once");
    assert_eq!(second.resumed_steps(), 2);
    second.complete().unwrap();
    assert!(store.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_step_can_be_a_service_call() {
    let store = Arc::new(MemoryStore::default());
    let mut svc = service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) });
    let mut wf = Workflow::open(store.clone(), "svc");
    assert_eq!(wf.call("double", &mut svc, 21).await.unwrap(), 42);
    let mut again = Workflow::open(store, "svc");
    let mut never =
        service_fn(|_: u32| async { Err::<u32, _>(std::io::Error::other("not called")) });
    assert_eq!(again.call("double", &mut never, 0).await.unwrap(), 42);
}

#[tokio::test(start_paused = true)]
async fn a_failed_step_is_not_recorded() {
    let store = Arc::new(MemoryStore::default());
    let mut wf = Workflow::open(store.clone(), "fail");
    let err = wf
        .step("flaky", || async {
            Err::<u32, _>(std::io::Error::other("timeout"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, WorkflowError::Step { ref step, .. } if step == "flaky"));
    let mut rerun = Workflow::open(store, "fail");
    assert_eq!(
        rerun
            .step("flaky", || async { Ok::<_, std::io::Error>(5u32) })
            .await
            .unwrap(),
        5
    );
}

#[tokio::test(start_paused = true)]
async fn changed_steps_and_damaged_results_are_detected() {
    let store = Arc::new(MemoryStore::default());
    let mut wf = Workflow::open(store.clone(), "wf");
    wf.step("one", || async { Ok::<_, std::io::Error>(1u32) })
        .await
        .unwrap();

    // Another step name at position 0: a typed error, not the wrong result.
    let mut changed = Workflow::open(store.clone(), "wf");
    let err = changed
        .step("uno", || async { Ok::<_, std::io::Error>(9u32) })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        WorkflowError::Checkpoint(CheckpointError::Mismatch { index: 0, .. })
    ));

    // A stored result that does not decode: ignored, the step runs again.
    let record = store.get("ckpt:wf:0").unwrap().unwrap();
    store
        .put(
            "ckpt:wf:0",
            Record::new(record.fingerprint, b"{not json".to_vec()),
            None,
        )
        .unwrap();
    let mut damaged = Workflow::open(store, "wf");
    assert_eq!(
        damaged
            .step("one", || async { Ok::<_, std::io::Error>(7u32) })
            .await
            .unwrap(),
        7
    );
    assert_eq!(damaged.resumed_steps(), 0);
}

/// Runs steps "s0".."s{n-1}"; step i returns `base + i` and logs that it ran.
async fn run(store: &Arc<MemoryStore>, n: usize, base: u32, ran: &mut Vec<usize>) -> Vec<u32> {
    let mut wf = Workflow::open(store.clone(), "chain");
    let mut out = Vec::new();
    for i in 0..n {
        let v = wf
            .step(&format!("s{i}"), || async move {
                Ok::<_, std::io::Error>(base + u32::try_from(i).unwrap())
            })
            .await
            .unwrap();
        if v / 100 == base / 100 {
            ran.push(i);
        }
        out.push(v);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn every_step_after_one_that_runs_again_runs_again() {
    // A missing (evicted) record, a damaged one, and one removed by an interrupted complete().
    for (case, hole) in [(0, 1usize), (1, 1), (2, 0)] {
        let store = Arc::new(MemoryStore::default());
        let mut ran = Vec::new();
        assert_eq!(run(&store, 3, 100, &mut ran).await, [100, 101, 102]);
        let key = format!("ckpt:chain:{hole}");
        if case == 1 {
            let fp = store.get(&key).unwrap().unwrap().fingerprint;
            store
                .put(&key, Record::new(fp, b"garbage".to_vec()), None)
                .unwrap();
        } else {
            store.remove(&key).unwrap();
        }
        let mut ran = Vec::new();
        let out = run(&store, 3, 200, &mut ran).await;
        let expected: Vec<u32> = (0..3)
            .map(|i| {
                if i < hole {
                    100 + i as u32
                } else {
                    200 + i as u32
                }
            })
            .collect();
        assert_eq!(
            out, expected,
            "case {case}: no result computed before a re-run step"
        );
        assert_eq!(ran, (hole..3).collect::<Vec<_>>(), "case {case}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rerun_that_stopped_early_does_not_revive_the_older_records() {
    let store = Arc::new(MemoryStore::default());
    assert_eq!(run(&store, 3, 100, &mut Vec::new()).await, [100, 101, 102]);
    store.remove("ckpt:chain:0").unwrap();
    // The rerun re-runs step 0, then "crashes" before step 1.
    let mut wf = Workflow::open(store.clone(), "chain");
    let v = wf
        .step("s0", || async { Ok::<_, std::io::Error>(200u32) })
        .await
        .unwrap();
    assert_eq!(v, 200);
    drop(wf);
    // The next run resumes step 0 from that rerun, and runs steps 1 and 2 again: their
    // records were computed from the first run's step 0.
    let mut ran = Vec::new();
    assert_eq!(run(&store, 3, 300, &mut ran).await, [200, 301, 302]);
    assert_eq!(ran, [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn complete_removes_the_records_of_a_longer_earlier_run() {
    let store = Arc::new(MemoryStore::default());
    run(&store, 4, 100, &mut Vec::new()).await;
    store.remove("ckpt:chain:0").unwrap();
    let mut wf = Workflow::open(store.clone(), "chain");
    wf.step("s0", || async { Ok::<_, std::io::Error>(1u32) })
        .await
        .unwrap();
    wf.complete().unwrap();
    assert!(store.is_empty());
}

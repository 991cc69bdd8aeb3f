//! Decisions depend only on (seed, fault, request key): the same requests are faulted whatever
//! the interleaving and the number of tasks.
#![cfg(feature = "inject")]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use support::{Echo, call};
use tower::Layer;
use tower_chaos::{ChaosLayer, Fault};

const REQUESTS: u64 = 4_000;

/// Runs requests 0..REQUESTS split over `tasks` tasks; returns the ids that were faulted.
async fn faulted_ids(seed: u64, tasks: u64) -> BTreeSet<u64> {
    let layer = ChaosLayer::<u64, u64>::builder()
        .seed(seed)
        .key(|id: &u64| *id)
        .fault(Fault::error(|| "injected".into()).rate(0.25))
        .no_guard()
        .armed(true)
        .build()
        .unwrap();
    let svc = layer.layer(Echo::default());
    let faulted = Arc::new(Mutex::new(BTreeSet::new()));
    let mut joins = Vec::new();
    for task in 0..tasks {
        let mut svc = svc.clone();
        let faulted = faulted.clone();
        joins.push(tokio::spawn(async move {
            // Interleaved ids per task, with a yield between calls to mix the order.
            let mut id = task;
            while id < REQUESTS {
                if call(&mut svc, id).await.is_err() {
                    faulted.lock().unwrap().insert(id);
                }
                tokio::task::yield_now().await;
                id += tasks;
            }
        }));
    }
    for join in joins {
        join.await.unwrap();
    }
    Arc::try_unwrap(faulted).unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_seed_gives_the_same_faulted_requests_with_1_and_8_tasks() {
    let one = faulted_ids(42, 1).await;
    let eight = faulted_ids(42, 8).await;
    assert!(!one.is_empty());
    assert_eq!(one, eight);
    // And the set is the seed's doing: another seed faults other requests.
    let other = faulted_ids(43, 8).await;
    assert_ne!(one, other);
}

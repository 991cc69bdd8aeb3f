//! Idempotency keys across replicas through a real Redis (the `redis` feature): two layer
//! instances with their own connections play two replicas.
#![cfg(feature = "redis")]

use test_support::redis_server as server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tower::{BoxError, Service, ServiceExt, service_fn};
use tower_heal::IdempotencyLayer;
use tower_heal::store::{RedisFailure, RedisStore};
use tower_layer::Layer;
use tower_outcome::Rejected;

type Req = (String, u32);

/// A replica: its own store (own connection) in front of a handler that counts its runs and
/// waits for a permit from `gate`.
fn replica(
    url: &str,
    runs: &Arc<AtomicUsize>,
    gate: &Arc<Semaphore>,
    claim_ttl: Duration,
    failure: RedisFailure,
) -> impl Service<Req, Response = u64, Error = BoxError, Future: Send> + Clone + Send + 'static {
    let store = RedisStore::builder(url)
        .prefix("test:")
        .claim_ttl(claim_ttl)
        .failure(failure)
        .build()
        .unwrap();
    let layer = IdempotencyLayer::from_fn(
        |req: &Req| Some((req.0.clone(), u64::from(req.1))),
        |receipt: &u64| Some(receipt.to_le_bytes().to_vec()),
        |bytes: &[u8]| Some(u64::from_le_bytes(bytes.try_into().ok()?)),
    )
    .store(store)
    .build();
    let runs = Arc::clone(runs);
    let gate = Arc::clone(gate);
    layer.layer(service_fn(move |_: Req| {
        let runs = Arc::clone(&runs);
        let gate = Arc::clone(&gate);
        async move {
            let n = runs.fetch_add(1, Ordering::SeqCst) as u64 + 1000;
            gate.acquire().await.unwrap().forget();
            Ok::<_, BoxError>(n)
        }
    }))
}

fn in_progress(err: &BoxError) -> bool {
    err.downcast_ref::<Rejected>()
        .is_some_and(|r| r.to_string().contains("in progress"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_on_another_replica_gets_in_progress_then_the_replay() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let ttl = Duration::from_secs(30);
    let a = replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailClosed);
    let b = replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailClosed);

    let first = tokio::spawn(a.clone().oneshot(("order-1".into(), 5)));
    // Bounded: the first call claims the key within 2 s.
    for _ in 0..200 {
        if runs.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let err = b.clone().oneshot(("order-1".into(), 5)).await.unwrap_err();
    assert!(in_progress(&err), "{err}");

    gate.add_permits(1);
    let receipt = first.await.unwrap().unwrap();
    let replay = b.clone().oneshot(("order-1".into(), 5)).await.unwrap();
    assert_eq!(replay, receipt);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_on_two_replicas_run_the_handler_once_per_key() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    let ttl = Duration::from_secs(30);
    let replicas = [
        replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailClosed),
        replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailClosed),
    ];
    let keys = 20;
    let mut calls = Vec::new();
    for key in 0..keys {
        for svc in &replicas {
            for _ in 0..2 {
                calls.push(tokio::spawn(svc.clone().oneshot((format!("k{key}"), 1))));
            }
        }
    }
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => {}
            Err(err) => assert!(in_progress(&err), "{err}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), keys, "one run per key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_of_a_replica_that_died_expires() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let ttl = Duration::from_millis(300);
    let a = replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailClosed);
    let b = replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailClosed);
    // Replica a claims the key, then "dies": its call is never finished nor dropped.
    let mut dead = tokio_test::task::spawn(a.oneshot(("k".into(), 1)));
    assert!(dead.poll().is_pending());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    std::mem::forget(dead);
    let err = b.clone().oneshot(("k".into(), 1)).await.unwrap_err();
    assert!(in_progress(&err), "{err}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The dead call still queues on the gate first: one permit for it, one for b.
    gate.add_permits(2);
    b.oneshot(("k".into(), 1)).await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "b ran once the claim expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_gone_refuses_when_fail_closed_and_runs_when_fail_open() {
    let Some(mut server) = server::RedisServer::start() else {
        return;
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    let ttl = Duration::from_secs(30);
    let closed = replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailClosed);
    let open = replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailOpen);
    closed.clone().oneshot(("warm".into(), 1)).await.unwrap();
    server.kill();

    let started = std::time::Instant::now();
    let err = closed.clone().oneshot(("k".into(), 1)).await.unwrap_err();
    assert!(err.downcast_ref::<Rejected>().is_some(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the timeout"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    open.clone().oneshot(("k".into(), 1)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2, "fail open runs the handler");

    // Back: the fail-closed replica serves again.
    server.restart();
    let mut served = false;
    for _ in 0..40 {
        if closed.clone().oneshot(("k2".into(), 1)).await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "served again once redis is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_first_call_releases_its_fleet_claim_at_once() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    // A long claim: only the release lets b run within the test.
    let ttl = Duration::from_secs(30);
    let a = replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailClosed);
    let b = replica(&server.url(), &runs, &gate, ttl, RedisFailure::FailClosed);
    let mut first = tokio_test::task::spawn(a.oneshot(("k".into(), 1)));
    assert!(first.poll().is_pending());
    let err = b.clone().oneshot(("k".into(), 1)).await.unwrap_err();
    assert!(in_progress(&err), "{err}");
    // The client goes away: the claim goes with it.
    drop(first);
    gate.add_permits(1);
    b.oneshot(("k".into(), 1)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

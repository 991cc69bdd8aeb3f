//! Per-key compartments: isolation, named limits, the cap on keys, eviction, overflow.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{reason, settle};
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_bulkhead::{BulkheadLayer, Overflow, Reason};
use tower_layer::Layer;

type Request = (String, u64);

/// Calls finish when the semaphore lets them; answers the request's number.
fn gated(release: Arc<Semaphore>) -> BoxCloneSyncService<Request, u64, std::io::Error> {
    BoxCloneSyncService::new(tower::service_fn(move |(_, n): Request| {
        let release = release.clone();
        async move {
            release.acquire().await.unwrap().forget();
            Ok(n)
        }
    }))
}

fn key(request: &Request) -> String {
    request.0.clone()
}

fn req(key: &str, n: u64) -> Request {
    (key.to_owned(), n)
}

#[tokio::test(start_paused = true)]
async fn with_key_a_saturated_and_waiting_key_b_is_admitted_at_once() {
    let release = Arc::new(Semaphore::new(0));
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(30))
        .build_keyed(key)
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gated(release.clone()));
    let mut a_calls = Vec::new();
    for n in 0..4 {
        a_calls.push(tokio::spawn(svc.clone().oneshot(req("a", n))));
    }
    settle().await;
    let a = handle.get(&"a".to_owned()).unwrap();
    assert_eq!((a.in_flight(), a.waiters()), (1, 3));
    let b_call = tokio::spawn(svc.clone().oneshot(req("b", 9)));
    settle().await;
    let b = handle.get(&"b".to_owned()).unwrap();
    assert_eq!((b.in_flight(), b.waiters()), (1, 0), "b admitted at once");
    assert_eq!(handle.in_flight(), 2);
    assert_eq!(handle.waiters(), 3);
    release.add_permits(5);
    assert_eq!(b_call.await.unwrap().unwrap(), 9);
    for call in a_calls {
        call.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn eviction_keeps_live_keys_at_or_under_the_cap_under_100_000_distinct_keys() {
    let layer = BulkheadLayer::builder()
        .max_keys(1000)
        .build_keyed(|n: &u64| *n)
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(support::instant());
    let mut most = 0;
    for n in 0..100_000u64 {
        tower::Service::call(&mut svc.ready().await.unwrap(), n)
            .await
            .unwrap();
        most = most.max(handle.keys());
    }
    assert!(most <= 1000, "at most 1000 keys, saw {most}");
    assert!(handle.keys() > 0);
    // The most recent keys are live.
    assert!(handle.get(&99_999).is_some());
}

#[tokio::test(start_paused = true)]
async fn busy_keys_are_never_evicted_and_a_new_key_overflows_into_the_shared_compartment() {
    let release = Arc::new(Semaphore::new(0));
    let layer = BulkheadLayer::builder()
        .max_keys(2)
        .max_concurrent(3)
        .build_keyed(key)
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gated(release.clone()));
    let a = tokio::spawn(svc.clone().oneshot(req("a", 1)));
    let b = tokio::spawn(svc.clone().oneshot(req("b", 2)));
    settle().await;
    let c = tokio::spawn(svc.clone().oneshot(req("c", 3)));
    settle().await;
    assert_eq!(handle.keys(), 2);
    assert_eq!(handle.overflow().in_flight(), 1);
    assert!(handle.get(&"c".to_owned()).is_none());
    release.add_permits(3);
    for call in [a, b, c] {
        call.await.unwrap().unwrap();
    }
    // Now idle: a new key takes an unused key's place.
    let d = tokio::spawn(svc.clone().oneshot(req("d", 4)));
    release.add_permits(1);
    d.await.unwrap().unwrap();
    assert!(handle.get(&"d".to_owned()).is_some());
    assert!(handle.keys() <= 2);
}

#[tokio::test(start_paused = true)]
async fn with_the_reject_policy_a_new_key_is_refused_when_every_key_is_busy() {
    let release = Arc::new(Semaphore::new(0));
    let layer = BulkheadLayer::builder()
        .name("agents")
        .max_keys(1)
        .overflow(Overflow::Reject)
        .build_keyed(key)
        .unwrap();
    let svc = layer.layer(gated(release.clone()));
    let a = tokio::spawn(svc.clone().oneshot(req("a", 1)));
    settle().await;
    let err = svc.clone().oneshot(req("b", 2)).await.unwrap_err();
    assert_eq!(reason(&err), Reason::BulkheadFull);
    release.add_permits(1);
    a.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_forgotten_after_the_idle_timeout() {
    let layer = BulkheadLayer::builder()
        .key_idle_timeout(Duration::from_secs(10))
        .build_keyed(|n: &u64| *n)
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::instant());
    svc.clone().oneshot(1).await.unwrap();
    svc.clone().oneshot(2).await.unwrap();
    assert_eq!(handle.keys(), 2);
    tokio::time::advance(Duration::from_secs(11)).await;
    svc.clone().oneshot(3).await.unwrap();
    assert_eq!(handle.keys(), 1);
    assert!(handle.get(&3).is_some());
}

#[cfg(feature = "serde")]
#[tokio::test(start_paused = true)]
async fn named_keys_get_their_own_limits_and_others_the_default() {
    let config: tower_bulkhead::KeyedBulkheadConfig = serde_json::from_str(
        r#"{"name": "agents", "default": {"max_concurrent": 3}, "bulkheads": {
            "research_agent": {"max_concurrent": 4, "token_budget": 1000, "max_wait_seconds": 2},
            "writing_agent": {"max_concurrent": 2, "token_budget": 500}
        }}"#,
    )
    .unwrap();
    let layer = BulkheadLayer::keyed_from_config(config, key).unwrap();
    let handle = layer.handle();
    let release = Arc::new(Semaphore::new(0));
    let svc = layer.layer(gated(release.clone()));
    let mut calls = Vec::new();
    for agent in ["research_agent", "writing_agent", "summary_agent"] {
        calls.push(tokio::spawn(svc.clone().oneshot(req(agent, 1))));
    }
    settle().await;
    let research = handle.get(&"research_agent".to_owned()).unwrap();
    let writing = handle.get(&"writing_agent".to_owned()).unwrap();
    let other = handle.get(&"summary_agent".to_owned()).unwrap();
    assert_eq!(
        (research.max_concurrent(), research.token_budget()),
        (4, Some(1000))
    );
    assert_eq!(
        (writing.max_concurrent(), writing.token_budget()),
        (2, Some(500))
    );
    assert_eq!((other.max_concurrent(), other.token_budget()), (3, None));
    assert_eq!(
        research.tokens_in_use(),
        Some(1),
        "one token per request by default"
    );
    // Changing the default limit reaches unnamed keys only.
    handle.set_max_concurrent(7).unwrap();
    assert_eq!((other.max_concurrent(), writing.max_concurrent()), (7, 2));
    release.add_permits(3);
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

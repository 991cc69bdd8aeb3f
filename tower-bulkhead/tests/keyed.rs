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

/// A per-key layer with a rate budget of 10 tokens per minute and an idle timeout of 1 s; a
/// request costs its number.
fn rate_limited() -> BoxCloneSyncService<Request, u64, tower_bulkhead::BoxError> {
    let layer = BulkheadLayer::builder()
        .refill(10, Duration::from_secs(60))
        .key_idle_timeout(Duration::from_secs(1))
        .cost(|request: &Request| request.1)
        .build_keyed(key)
        .unwrap();
    BoxCloneSyncService::new(layer.layer(support_instant_keyed()))
}

fn support_instant_keyed() -> BoxCloneSyncService<Request, u64, std::io::Error> {
    BoxCloneSyncService::new(tower::service_fn(|(_, n): Request| async move { Ok(n) }))
}

#[tokio::test(start_paused = true)]
async fn idling_past_the_idle_timeout_never_refills_a_spent_rate_budget() {
    let svc = rate_limited();
    svc.clone().oneshot(req("a", 10)).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    // A new key sweeps idle keys: "a" is idle but its budget is spent, so it stays.
    svc.clone().oneshot(req("b", 1)).await.unwrap();
    let err = svc.clone().oneshot(req("a", 10)).await.unwrap_err();
    assert_eq!(reason(&err), Reason::BudgetExhausted);
}

#[tokio::test(start_paused = true)]
async fn throwaway_keys_never_evict_a_key_with_a_spent_rate_budget() {
    let layer = BulkheadLayer::builder()
        .refill(10, Duration::from_secs(60))
        .max_keys(4)
        .cost(|request: &Request| request.1)
        .build_keyed(key)
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support_instant_keyed());
    svc.clone().oneshot(req("a", 10)).await.unwrap();
    for n in 0..20 {
        // Each throwaway key spends one token: its budget is not full either.
        svc.clone()
            .oneshot(req(&format!("throwaway{n}"), 1))
            .await
            .unwrap_or(0);
    }
    assert!(handle.get(&"a".to_owned()).is_some(), "a is kept");
    let err = svc.clone().oneshot(req("a", 10)).await.unwrap_err();
    assert_eq!(reason(&err), Reason::BudgetExhausted);
    // The map is full of keys in debt to their budget: new keys share the overflow compartment.
    assert_eq!(handle.keys(), 4);
    assert!(handle.overflow().rate_tokens_available().unwrap() < 10);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_key_is_evicted_once_its_budget_would_be_full_anyway() {
    let layer = BulkheadLayer::builder()
        .refill(10, Duration::from_secs(60))
        .max_keys(1)
        .cost(|request: &Request| request.1)
        .build_keyed(key)
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support_instant_keyed());
    svc.clone().oneshot(req("a", 10)).await.unwrap();
    tokio::time::advance(Duration::from_secs(59)).await;
    svc.clone().oneshot(req("b", 1)).await.unwrap();
    assert!(handle.get(&"b".to_owned()).is_none(), "b overflowed");
    tokio::time::advance(Duration::from_secs(1)).await;
    svc.clone().oneshot(req("c", 1)).await.unwrap();
    assert!(
        handle.get(&"a".to_owned()).is_none(),
        "a is full again: evicted"
    );
    assert!(handle.get(&"c".to_owned()).is_some());
}

#[tokio::test(start_paused = true)]
async fn with_keys_tied_for_oldest_the_least_recently_used_is_evicted() {
    for _ in 0..16 {
        let layer = BulkheadLayer::builder()
            .max_keys(2)
            .build_keyed(key)
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(support_instant_keyed());
        for name in ["a", "b", "a", "c"] {
            svc.clone().oneshot(req(name, 1)).await.unwrap();
        }
        assert!(handle.get(&"a".to_owned()).is_some(), "a was used after b");
        assert!(
            handle.get(&"b".to_owned()).is_none(),
            "b is the least recently used"
        );
        assert!(handle.get(&"c".to_owned()).is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn a_named_key_that_finds_the_map_full_keeps_its_own_limits() {
    let release = Arc::new(Semaphore::new(0));
    let layer = BulkheadLayer::builder()
        .max_keys(1)
        .max_concurrent(25)
        .key_config(
            "vip",
            tower_bulkhead::BulkheadConfig {
                max_concurrent: 1,
                ..Default::default()
            },
        )
        .build_keyed(key)
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gated(release.clone()));
    let busy = tokio::spawn(svc.clone().oneshot(req("x", 1)));
    settle().await;
    let vip = tokio::spawn(svc.clone().oneshot(req("vip", 2)));
    settle().await;
    let second = tokio::time::timeout(Duration::from_secs(1), svc.clone().oneshot(req("vip", 3)));
    let err = second.await.expect("answered at once").unwrap_err();
    assert_eq!(reason(&err), Reason::BulkheadFull, "vip's own limit of 1");
    assert_eq!(
        handle.overflow().in_flight(),
        0,
        "never in the overflow compartment"
    );
    assert_eq!(handle.get(&"vip".to_owned()).unwrap().max_concurrent(), 1);
    release.add_permits(2);
    busy.await.unwrap().unwrap();
    vip.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_full_key_map_with_the_reject_policy_says_when_to_retry() {
    let release = Arc::new(Semaphore::new(0));
    let layer = BulkheadLayer::builder()
        .max_keys(1)
        .retry_after(Duration::from_secs(3))
        .overflow(Overflow::Reject)
        .build_keyed(key)
        .unwrap();
    let svc = layer.layer(gated(release.clone()));
    let a = tokio::spawn(svc.clone().oneshot(req("a", 1)));
    settle().await;
    let err = svc.clone().oneshot(req("b", 2)).await.unwrap_err();
    let rejected = tower_bulkhead::find_rejected(&*err).unwrap();
    assert_eq!(rejected.reason(), Reason::BulkheadFull);
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(3)));
    release.add_permits(1);
    a.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_key_longer_than_the_bound_goes_to_the_overflow_compartment() {
    let release = Arc::new(Semaphore::new(0));
    let layer = BulkheadLayer::builder().build_keyed(key).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gated(release.clone()));
    let long = "k".repeat(10_000);
    let call = tokio::spawn(svc.clone().oneshot(req(&long, 1)));
    settle().await;
    assert_eq!(handle.keys(), 0);
    assert_eq!(handle.overflow().in_flight(), 1);
    release.add_permits(1);
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_inner_readiness_error_is_returned_and_the_request_never_sent() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Context, Poll};

    /// Fails its first `poll_ready`, then is ready; counts calls.
    #[derive(Clone)]
    struct FailsOnce(Arc<AtomicUsize>, Arc<AtomicUsize>);
    impl tower::Service<Request> for FailsOnce {
        type Response = u64;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<u64, std::io::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.0.fetch_add(1, SeqCst) == 0 {
                Poll::Ready(Err(std::io::Error::other("backend gone")))
            } else {
                Poll::Ready(Ok(()))
            }
        }
        fn call(&mut self, (_, n): Request) -> Self::Future {
            self.1.fetch_add(1, SeqCst);
            std::future::ready(Ok(n))
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = BulkheadLayer::builder().build_keyed(key).unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(FailsOnce(Arc::default(), calls.clone()));
    let err = tower::Service::call(&mut svc, req("a", 1))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "backend gone");
    assert_eq!(calls.load(SeqCst), 0, "never sent");
    assert_eq!(handle.in_flight(), 0);
}

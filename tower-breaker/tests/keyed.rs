//! Per-key breakers: isolation between keys, idle eviction, the cap on keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::advance;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{BoxError, CircuitBreakerLayer, Reason, Rejected, State};

/// A request: which key it goes to, and whether the dependency fails it.
#[derive(Clone, Copy, Debug)]
struct Req {
    key: u32,
    fail: bool,
}

fn service(
    layer: tower_breaker::KeyedCircuitBreakerLayer<u32, fn(&Req) -> u32>,
    calls: Arc<AtomicUsize>,
) -> impl Service<Req, Response = u32, Error = BoxError> + Clone {
    ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |req: Req| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if req.fail {
                    Err(std::io::Error::other("down"))
                } else {
                    Ok(req.key)
                }
            }
        })
}

fn key_of(req: &Req) -> u32 {
    req.key
}

fn layer(max_keys: u32) -> tower_breaker::KeyedCircuitBreakerLayer<u32, fn(&Req) -> u32> {
    CircuitBreakerLayer::builder()
        .name("hosts")
        .failure_threshold(3)
        .max_keys(max_keys)
        .key_idle_timeout(Duration::from_secs(300))
        .build_keyed(key_of as fn(&Req) -> u32)
        .unwrap()
}

async fn send(
    svc: &mut (impl Service<Req, Response = u32, Error = BoxError> + Clone),
    key: u32,
    fail: bool,
) -> Result<u32, BoxError> {
    svc.ready().await?.call(Req { key, fail }).await
}

#[tokio::test(start_paused = true)]
async fn one_keys_failures_do_not_open_another_keys_breaker() {
    let layer = layer(100);
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = service(layer, calls.clone());

    for _ in 0..3 {
        assert!(send(&mut svc, 1, true).await.is_err());
    }
    assert_eq!(handle.state(&1), Some(State::Open));
    let before = calls.load(Ordering::SeqCst);
    let err = send(&mut svc, 1, false).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<Rejected>().unwrap().reason(),
        Reason::CircuitOpen
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "a rejected key never reaches the service"
    );

    assert_eq!(send(&mut svc, 2, false).await.unwrap(), 2);
    assert_eq!(handle.state(&2), Some(State::Closed));
    assert_eq!(handle.get(&1).unwrap().key(), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted() {
    let layer = layer(100);
    let handle = layer.handle();
    let mut svc = service(layer, Arc::default());
    for key in 0..10 {
        send(&mut svc, key, false).await.unwrap();
    }
    assert_eq!(handle.keys(), 10);
    advance(Duration::from_secs(200)).await;
    send(&mut svc, 0, false).await.unwrap(); // key 0 stays fresh
    advance(Duration::from_secs(200)).await;
    send(&mut svc, 0, false).await.unwrap();
    assert_eq!(
        handle.keys(),
        1,
        "keys idle for 400 s are gone, the used one stays"
    );
    assert_eq!(handle.state(&0), Some(State::Closed));
    assert_eq!(handle.state(&5), None);
}

#[tokio::test(start_paused = true)]
async fn the_cap_holds() {
    let layer = layer(4);
    let handle = layer.handle();
    let mut svc = service(layer, Arc::default());
    for key in 0..50 {
        send(&mut svc, key, false).await.unwrap();
        advance(Duration::from_millis(10)).await;
        assert!(handle.keys() <= 4, "{} keys after key {key}", handle.keys());
    }
    assert_eq!(handle.keys(), 4);
    // The most recent keys are the ones kept.
    for key in 46..50 {
        assert_eq!(handle.state(&key), Some(State::Closed), "key {key}");
    }
}

#[tokio::test(start_paused = true)]
async fn keys_with_calls_in_flight_are_never_evicted_and_overflow_is_shared() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .max_keys(2)
        .build_keyed(|req: &(u32, bool)| req.0)
        .unwrap();
    let handle = layer.handle();
    let mut svc =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|(_, hang): (u32, bool)| async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Err::<(), _>(std::io::Error::other("down"))
            });
    // Keys 1 and 2 each have a call hanging in flight.
    let mut hanging = Vec::new();
    for key in [1, 2] {
        let mut fut = Box::pin(svc.ready().await.unwrap().call((key, true)));
        assert!(futures_poll(&mut fut).is_pending());
        hanging.push(fut);
    }
    // Keys 3 and 4 cannot evict them: they share the overflow breaker, which opens for both.
    assert!(svc.ready().await.unwrap().call((3, false)).await.is_err());
    assert!(svc.ready().await.unwrap().call((4, false)).await.is_err());
    let err = svc
        .ready()
        .await
        .unwrap()
        .call((5, false))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<Rejected>().unwrap().reason(),
        Reason::CircuitOpen
    );
    assert_eq!(handle.keys(), 2);
    assert_eq!(handle.state(&1), Some(State::Closed));
    drop(hanging);
    // Now key 1 and 2 are unused and make room.
    assert!(svc.ready().await.unwrap().call((6, false)).await.is_err());
    assert_eq!(handle.state(&6), Some(State::Closed));
}

fn futures_poll<F: std::future::Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
    std::pin::Pin::new(fut).poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn thresholds_change_for_every_key() {
    let layer = layer(100);
    let handle = layer.handle();
    let mut svc = service(layer, Arc::default());
    send(&mut svc, 7, false).await.unwrap();
    handle.set_failure_threshold(Some(1)).unwrap();
    assert!(send(&mut svc, 7, true).await.is_err());
    assert!(send(&mut svc, 8, true).await.is_err());
    assert_eq!(handle.state(&7), Some(State::Open));
    assert_eq!(handle.state(&8), Some(State::Open));
    handle.reset_all();
    assert_eq!(handle.state(&7), Some(State::Closed));
}

/// A keyed layer whose keys open for an hour after one failure, idle after 300 s.
fn strict(max_keys: u32) -> tower_breaker::KeyedCircuitBreakerLayer<u32, fn(&Req) -> u32> {
    CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(3600))
        .max_keys(max_keys)
        .key_idle_timeout(Duration::from_secs(300))
        .build_keyed(key_of as fn(&Req) -> u32)
        .unwrap()
}

fn reason(result: Result<u32, BoxError>) -> Option<Reason> {
    result
        .err()
        .and_then(|e| e.downcast_ref::<Rejected>().map(Rejected::reason))
}

#[tokio::test(start_paused = true)]
async fn making_room_never_evicts_an_open_circuit() {
    let layer = strict(2);
    let handle = layer.handle();
    let mut svc = service(layer, Arc::new(AtomicUsize::new(0)));
    // Key 1 opens and is the least recently used; key 2 is closed.
    assert!(send(&mut svc, 1, true).await.is_err());
    advance(Duration::from_secs(1)).await;
    send(&mut svc, 2, false).await.unwrap();
    // Key 3 makes room: key 2 goes, key 1 (open) stays.
    send(&mut svc, 3, false).await.unwrap();
    assert_eq!(handle.state(&1), Some(State::Open));
    assert_eq!(handle.state(&2), None);
    assert_eq!(
        reason(send(&mut svc, 1, false).await),
        Some(Reason::CircuitOpen)
    );
}

#[tokio::test(start_paused = true)]
async fn idle_eviction_never_forgets_an_open_or_forced_open_circuit() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(3600))
        .max_keys(10)
        .key_idle_timeout(Duration::from_secs(300))
        .build_keyed(key_of as fn(&Req) -> u32)
        .unwrap();
    let handle = layer.handle();
    let mut svc = service(layer, Arc::new(AtomicUsize::new(0)));
    assert!(send(&mut svc, 1, true).await.is_err());
    send(&mut svc, 2, false).await.unwrap();
    send(&mut svc, 3, false).await.unwrap();
    handle.get(&2).unwrap().force_open();
    advance(Duration::from_secs(1000)).await;
    // A call sweeps idle keys: only the closed key 3 goes.
    send(&mut svc, 4, false).await.unwrap();
    assert_eq!(handle.state(&1), Some(State::Open));
    assert_eq!(handle.state(&2), Some(State::ForcedOpen));
    assert_eq!(handle.state(&3), None);
    assert_eq!(
        reason(send(&mut svc, 1, false).await),
        Some(Reason::CircuitOpen)
    );
    assert_eq!(
        reason(send(&mut svc, 2, false).await),
        Some(Reason::ForcedOpen)
    );
}

#[tokio::test(start_paused = true)]
async fn a_map_full_of_open_circuits_sends_new_keys_to_the_overflow_breaker() {
    let layer = strict(2);
    let handle = layer.handle();
    let mut svc = service(layer, Arc::new(AtomicUsize::new(0)));
    assert!(send(&mut svc, 1, true).await.is_err());
    assert!(send(&mut svc, 2, true).await.is_err());
    advance(Duration::from_secs(1000)).await;
    // Keys 3 and 4 share the overflow breaker; 1 and 2 stay open.
    assert!(send(&mut svc, 3, true).await.is_err());
    assert_eq!(
        reason(send(&mut svc, 4, false).await),
        Some(Reason::CircuitOpen)
    );
    assert_eq!(handle.keys(), 2);
    assert_eq!(handle.state(&1), Some(State::Open));
    assert_eq!(handle.state(&2), Some(State::Open));
}

#[tokio::test(start_paused = true)]
async fn reset_all_resets_the_overflow_breaker_too() {
    let layer = strict(1);
    let handle = layer.handle();
    let mut svc = service(layer, Arc::new(AtomicUsize::new(0)));
    assert!(send(&mut svc, 1, true).await.is_err());
    // The map is full of an open key: key 2 goes to the overflow breaker, which opens.
    assert!(send(&mut svc, 2, true).await.is_err());
    assert_eq!(
        reason(send(&mut svc, 3, false).await),
        Some(Reason::CircuitOpen)
    );
    handle.reset_all();
    assert_eq!(handle.state(&1), Some(State::Closed));
    // Key 1 is closed and unused now, so key 3 takes its place; either way it is admitted.
    assert_eq!(send(&mut svc, 3, false).await.unwrap(), 3);
    // And a key that lands in the overflow breaker finds it closed.
    assert_eq!(send(&mut svc, 4, false).await.unwrap(), 4);
}

/// A keyed layer whose keys open for 60 s after one failure, idle after 300 s.
fn short_open(max_keys: u32) -> tower_breaker::KeyedCircuitBreakerLayer<u32, fn(&Req) -> u32> {
    CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(60))
        .success_threshold(2)
        .max_keys(max_keys)
        .key_idle_timeout(Duration::from_secs(300))
        .build_keyed(key_of as fn(&Req) -> u32)
        .unwrap()
}

/// Circuits that opened and were abandoned (past their open period, or half-open with no probe
/// in flight) are forgotten once idle: they cannot keep every new key in the overflow breaker.
#[tokio::test(start_paused = true)]
async fn abandoned_open_circuits_are_forgotten_once_idle() {
    let layer = short_open(2);
    let handle = layer.handle();
    let mut svc = service(layer, Arc::new(AtomicUsize::new(0)));
    // Key 1 opens; key 2 opens, and 61 s later one probe of the two needed succeeds.
    assert!(send(&mut svc, 1, true).await.is_err());
    assert!(send(&mut svc, 2, true).await.is_err());
    advance(Duration::from_secs(61)).await;
    send(&mut svc, 2, false).await.unwrap();
    assert_eq!(handle.state(&2), Some(State::HalfOpen));
    // Within the open period, or not yet idle, they stay; the new key shares the overflow.
    send(&mut svc, 3, false).await.unwrap();
    assert_eq!(handle.state(&3), None, "key 3 went to the overflow breaker");
    assert_eq!(handle.keys(), 2);
    // Idle for 300 s: both are forgotten, and a new key gets a breaker of its own.
    advance(Duration::from_secs(400)).await;
    send(&mut svc, 4, false).await.unwrap();
    assert_eq!(handle.state(&1), None);
    assert_eq!(handle.state(&2), None);
    assert_eq!(handle.state(&4), Some(State::Closed));
}

/// Making room takes closed keys only: an open circuit past its open period that is not yet
/// idle stays, and its next call is a probe.
#[tokio::test(start_paused = true)]
async fn making_room_keeps_an_open_circuit_past_its_open_period() {
    let layer = short_open(2);
    let handle = layer.handle();
    let mut svc = service(layer, Arc::new(AtomicUsize::new(0)));
    assert!(send(&mut svc, 1, true).await.is_err());
    advance(Duration::from_secs(100)).await;
    send(&mut svc, 2, false).await.unwrap();
    advance(Duration::from_secs(1)).await;
    send(&mut svc, 3, false).await.unwrap();
    assert_eq!(handle.state(&2), None, "the closed key made room");
    assert_eq!(handle.state(&1), Some(State::HalfOpen));
    // Its next call is a probe that fails: the circuit opens again, it was not forgotten.
    assert!(send(&mut svc, 1, true).await.is_err());
    assert_eq!(handle.state(&1), Some(State::Open));
}

/// A state an operator set through the handle holds until reset: neither the idle sweep nor
/// making room forgets a disabled, metrics-only or forced-open key.
#[tokio::test(start_paused = true)]
async fn eviction_never_forgets_a_state_an_operator_set() {
    let layer = strict(3);
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = service(layer, calls.clone());
    for key in 1..=3 {
        send(&mut svc, key, false).await.unwrap();
    }
    handle.get(&1).unwrap().disable();
    handle.get(&2).unwrap().metrics_only();
    handle.get(&3).unwrap().force_open();
    advance(Duration::from_secs(1000)).await;
    // The sweep forgets none of them, nor does making room: key 4 shares the overflow.
    send(&mut svc, 4, false).await.unwrap();
    assert_eq!(handle.state(&4), None);
    assert_eq!(handle.state(&1), Some(State::Disabled));
    assert_eq!(handle.state(&2), Some(State::MetricsOnly));
    assert_eq!(handle.state(&3), Some(State::ForcedOpen));
    // Disabled and metrics-only keys still let failures through without opening.
    for key in [1, 2] {
        let before = calls.load(Ordering::SeqCst);
        for _ in 0..3 {
            assert!(reason(send(&mut svc, key, true).await).is_none());
        }
        assert_eq!(calls.load(Ordering::SeqCst), before + 3, "key {key}");
    }
    assert_eq!(
        reason(send(&mut svc, 3, false).await),
        Some(Reason::ForcedOpen)
    );
}

/// A key whose failures opened the overflow breaker, then given a breaker of its own, starts
/// closed (the overflow breaker cannot tell which of its keys failed), and opens after
/// `failure_threshold` failures of its own; the overflow breaker stays open for the keys left
/// in it.
#[tokio::test(start_paused = true)]
async fn a_key_leaving_the_overflow_breaker_starts_closed() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .reset_timeout(Duration::from_secs(3600))
        .max_keys(2)
        .key_idle_timeout(Duration::from_secs(300))
        .build_keyed(key_of as fn(&Req) -> u32)
        .unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = service(layer, calls.clone());
    // Keys 1 and 5 hold the map (live handles keep them); key 2 opens the overflow breaker.
    send(&mut svc, 1, false).await.unwrap();
    send(&mut svc, 5, false).await.unwrap();
    let (one, five) = (handle.get(&1).unwrap(), handle.get(&5).unwrap());
    assert!(send(&mut svc, 2, true).await.is_err());
    assert!(send(&mut svc, 2, true).await.is_err());
    assert_eq!(
        reason(send(&mut svc, 3, false).await),
        Some(Reason::CircuitOpen)
    );
    // Key 1 is let go and forgotten: key 2 gets its own breaker, closed.
    drop(one);
    advance(Duration::from_secs(1000)).await;
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(send(&mut svc, 2, false).await.unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), before + 1);
    assert_eq!(handle.state(&2), Some(State::Closed));
    // The overflow breaker is still open for the keys left in it.
    let two = handle.get(&2).unwrap();
    assert_eq!(
        reason(send(&mut svc, 3, false).await),
        Some(Reason::CircuitOpen)
    );
    // Key 2's own failures open its own breaker.
    assert!(send(&mut svc, 2, true).await.is_err());
    assert!(send(&mut svc, 2, true).await.is_err());
    assert_eq!(two.state(), State::Open);
    drop(five);
}

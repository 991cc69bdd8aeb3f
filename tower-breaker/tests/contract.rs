//! Tower contract properties and handle-driven states.

mod support;

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use support::{fail, rejected, succeed};
use tokio::time::advance;
use tokio_test::assert_ready_ok;
use tower::limit::ConcurrencyLimitLayer;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreaker, CircuitBreakerLayer, KeyedCircuitBreaker, Reason, State};
use tower_test::mock;

fn assert_traits<T: Send + Sync + Clone + 'static>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn services_layers_and_handles_are_send_sync_clone_static() {
    type Inner = tower::util::BoxCloneSyncService<u32, u32, tower_breaker::BoxError>;
    assert_traits::<CircuitBreaker<Inner>>();
    assert_traits::<CircuitBreaker<Inner, tower_breaker::HttpStatus, tower_breaker::HttpAnswer>>();
    assert_traits::<KeyedCircuitBreaker<Inner, u32, fn(&u32) -> u32>>();
    assert_traits::<CircuitBreakerLayer>();
    assert_traits::<tower_breaker::CircuitBreakerHandle>();
    assert_traits::<tower_breaker::KeyedCircuitBreakerHandle<String>>();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new())
        .service(tower::service_fn(|n: u32| async move {
            Ok::<_, std::io::Error>(n)
        }));
    let _ = svc.poll_ready(&mut Context::from_waker(Waker::noop()));
    assert_send(&svc.call(1));
}

#[tokio::test]
#[should_panic(expected = "poll_ready must be called first")]
async fn a_clone_does_not_inherit_readiness() {
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new())
        .service(tower::service_fn(|n: u32| async move {
            Ok::<_, std::io::Error>(n)
        }));
    assert!(
        svc.poll_ready(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    );
    let mut clone = svc.clone();
    drop(clone.call(1));
}

#[tokio::test(start_paused = true)]
async fn a_rejection_reserves_nothing_downstream() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .layer(ConcurrencyLimitLayer::new(1))
        .service(tower::service_fn(|fail: bool| async move {
            if fail {
                Err(std::io::Error::other("down"))
            } else {
                Ok(())
            }
        }));
    assert!(svc.ready().await.unwrap().call(true).await.is_err());
    assert_eq!(breaker.state(), State::Open);

    // An instance readied while open holds a rejection, not the one permit below it.
    let mut idle = svc.clone();
    assert!(matches!(
        idle.poll_ready(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(Ok(()))
    ));
    breaker.reset();
    let mut other = svc.clone();
    assert!(
        matches!(
            other.poll_ready(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(()))
        ),
        "the permit is still free"
    );
    other.call(false).await.unwrap();
    let err = idle.call(false).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<tower_breaker::Rejected>()
            .unwrap()
            .reason(),
        Reason::CircuitOpen
    );
}

#[tokio::test(start_paused = true)]
async fn inner_readiness_errors_pass_through() {
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(CircuitBreakerLayer::new());
    handle.send_error("not ready");
    let err = svc.poll_ready().map(|r| r.unwrap_err());
    assert!(matches!(err, Poll::Ready(e) if e.to_string() == "not ready"));
}

#[tokio::test(start_paused = true)]
async fn forced_open_rejects_everything_until_reset() {
    let layer = CircuitBreakerLayer::new();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    breaker.force_open();
    advance(Duration::from_secs(3600)).await;
    let (result, reached) = support::call(&mut svc, &mut handle, true).await;
    assert!(!reached);
    let err = result.unwrap_err();
    let rejection = rejected(&err).unwrap();
    assert_eq!(rejection.reason(), Reason::ForcedOpen);
    assert_eq!(rejection.retry_after(), None);
    assert_eq!(breaker.state(), State::ForcedOpen);
    breaker.reset();
    succeed(&mut svc, &mut handle).await;
}

#[tokio::test(start_paused = true)]
async fn disabled_passes_failures_without_tripping() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    breaker.disable();
    for _ in 0..10 {
        fail(&mut svc, &mut handle).await;
    }
    assert_eq!(breaker.state(), State::Disabled);
    breaker.reset();
    fail(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn metrics_only_counts_but_never_transitions() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    breaker.metrics_only();
    for _ in 0..5 {
        fail(&mut svc, &mut handle).await;
    }
    assert_eq!(
        breaker.consecutive_failures(),
        5,
        "outcomes are still counted"
    );
    assert_eq!(breaker.state(), State::MetricsOnly);
}

#[tokio::test(start_paused = true)]
async fn live_threshold_changes_apply_to_the_next_call() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(5)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    fail(&mut svc, &mut handle).await;
    fail(&mut svc, &mut handle).await;
    breaker.set_failure_threshold(Some(3)).unwrap();
    fail(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Open);
    breaker.set_reset_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        breaker.open_remaining(),
        Some(Duration::from_secs(60)),
        "the current opening keeps its time"
    );

    assert!(breaker.set_failure_threshold(Some(0)).is_err());
    assert!(
        breaker.set_failure_threshold(None).is_err(),
        "it was the only trip rule"
    );
    assert!(
        breaker.set_failure_rate_threshold(Some(0.5)).is_err(),
        "built without a window"
    );
    assert!(breaker.set_half_open_max_calls(0).is_err());
    assert!(breaker.set_reset_timeout(Duration::ZERO).is_err());
    assert!(
        breaker
            .set_reset_timeout(Duration::from_secs(8 * 86_400))
            .is_err()
    );
}

/// Open durations under backoff, from a fixed seed.
async fn open_durations(seed: u64) -> Vec<Duration> {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(10))
        .open_backoff(true)
        .seed(seed)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    let mut durations = Vec::new();
    fail(&mut svc, &mut handle).await;
    for _ in 0..6 {
        let open = breaker.open_remaining().unwrap();
        durations.push(open);
        advance(open).await;
        fail(&mut svc, &mut handle).await; // the probe fails: re-open
    }
    durations
}

#[tokio::test(start_paused = true)]
async fn open_backoff_doubles_caps_and_jitters_reproducibly() {
    let durations = open_durations(7).await;
    for (open, nominal) in durations.iter().zip([10u64, 20, 40, 80, 100, 100]) {
        let nominal = Duration::from_secs(nominal);
        assert!(
            *open <= nominal && *open >= nominal.mul_f64(0.9),
            "{open:?} vs {nominal:?}"
        );
    }
    assert_eq!(durations, open_durations(7).await, "same seed, same jitter");
    assert_ne!(
        durations,
        open_durations(8).await,
        "another seed, other jitter"
    );
}

#[tokio::test(start_paused = true)]
async fn closing_resets_the_backoff() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(10))
        .open_backoff(true)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    fail(&mut svc, &mut handle).await;
    advance(Duration::from_secs(10)).await;
    fail(&mut svc, &mut handle).await;
    assert!(breaker.open_remaining().unwrap() > Duration::from_secs(17));
    advance(Duration::from_secs(20)).await;
    succeed(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Closed);
    fail(&mut svc, &mut handle).await;
    assert!(breaker.open_remaining().unwrap() <= Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn calls_through_ready_clones_share_one_breaker() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(3)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(|_: ()| async {
            Err::<(), _>(std::io::Error::other("down"))
        }));
    for _ in 0..3 {
        // A fresh clone per call, as axum and hyper do.
        assert!(svc.clone().oneshot(()).await.is_err());
    }
    assert_eq!(breaker.state(), State::Open);
    assert_ready_ok!(tokio_test::task::spawn(()).enter(|cx, _| svc.clone().poll_ready(cx)));
}

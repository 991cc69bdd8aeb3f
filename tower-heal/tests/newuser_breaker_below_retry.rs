//! A circuit breaker composed below the retry, as the crate docs recommend: what happens to
//! the calls made while it is open, with the defaults, with `Class::CIRCUIT_OPEN` configured and
//! with `Class::REJECTED` never retried.
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::CircuitBreakerLayer;
use tower_heal::{Backoff, BoxError, Class, ClassPolicy, RetryLayer};

fn failing(
    calls: Arc<AtomicU32>,
) -> impl Service<u32, Response = u32, Error = std::io::Error> + Clone {
    tower::service_fn(move |_n: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<u32, _>(std::io::Error::other("connection refused")) }
    })
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_the_defaults_an_open_breakers_rejection_is_returned_at_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .build()
        .unwrap(); // reset 60 s
    let retry = RetryLayer::builder()
        .max_retries(1)
        .no_budget()
        .seed(1)
        .build()
        .unwrap(); // max_rejection_wait 10 s, max_retry_after 60 s
    let mut svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(failing(calls.clone()));

    // The first call trips the breaker; its retry meets the open breaker and gives up.
    let _ = svc.ready().await.unwrap().call(1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The next call's first attempt is rejected with `retry_after` = the time left (about
    // 60 s): beyond `max_rejection_wait` (10 s), so it is not slept out.
    let start = tokio::time::Instant::now();
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(tower_heal::find_rejected(&*err).is_some(), "{err}");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no sleep through the open state"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "nothing reached the dependency"
    );
}

/// A breaker whose `reset_timeout` (2 s) is shorter than `max_rejection_wait` (10 s): with the
/// defaults its rejection is still returned at once (it used to be slept out, so every call
/// took 2 s during an outage). Seen failing before the fix: the second call waited 2 s.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_short_breaker_rejection_is_returned_at_once_with_the_defaults() {
    let calls = Arc::new(AtomicU32::new(0));
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let retry = RetryLayer::builder()
        .max_retries(1)
        .no_budget()
        .seed(1)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(failing(calls.clone()));

    let _ = svc.ready().await.unwrap().call(1).await;
    let start = tokio::time::Instant::now();
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(tower_heal::find_rejected(&*err).is_some(), "{err}");
    assert_eq!(start.elapsed(), Duration::ZERO, "not slept out");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_configured_circuit_open_policy_waits_out_a_short_rejection() {
    let calls = Arc::new(AtomicU32::new(0));
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let retry = RetryLayer::builder()
        .max_retries(1)
        .policy(Class::CIRCUIT_OPEN, ClassPolicy::new(1, Backoff::none()))
        .no_budget()
        .seed(1)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(failing(calls.clone()));

    let _ = svc.ready().await.unwrap().call(1).await;
    let start = tokio::time::Instant::now();
    let _ = svc.ready().await.unwrap().call(2).await;
    // Under 5 s left fits `max_rejection_wait` (10 s): the retry waits it out, then its
    // attempt is the probe.
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the half-open probe reached the dependency"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn rejected_never_retried_returns_the_open_breakers_rejection_at_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let retry = RetryLayer::builder()
        .max_retries(3)
        .policy(Class::REJECTED, ClassPolicy::never())
        .no_budget()
        .seed(1)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(failing(calls.clone()));

    let start = tokio::time::Instant::now();
    let first: Result<u32, BoxError> = svc.ready().await.unwrap().call(1).await;
    assert!(first.is_err());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the breaker opened after one failure"
    );
    let second = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(
        tower_heal::find_rejected(&*second).is_some(),
        "the breaker's rejection: {second}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "nothing reached the dependency"
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        start.elapsed()
    );
}

//! Retry outside a circuit breaker: each attempt is counted, and once the breaker opens its
//! rejection stops the retries.

mod support;

use std::time::Duration;

use tower::ServiceBuilder;
use tower_breaker::{CircuitBreakerLayer, Reason, Rejected, State};
use tower_heal::{Backoff, Class, ClassPolicy, RetryLayer};

use support::{Flaky, Script, call};

#[tokio::test(start_paused = true)]
async fn retry_outside_a_breaker_stops_once_the_breaker_opens() {
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(3)
        .reset_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let handle = breaker.handle();
    let retry = RetryLayer::builder()
        .max_retries(10)
        .backoff(Backoff::fixed(Duration::from_millis(100)))
        .max_retry_after(Duration::from_secs(5))
        .no_budget()
        .build()
        .unwrap();
    let script = Script::new([Err("down")]);
    let mut svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(Flaky(script.clone()));

    let start = tokio::time::Instant::now();
    let err = call(&mut svc, ()).await.unwrap_err();
    assert_eq!(script.count(), 3, "three attempts reached the dependency");
    assert_eq!(handle.state(), State::Open);
    let rejected = err
        .downcast_ref::<Rejected>()
        .expect("the breaker's rejection is returned");
    assert_eq!(rejected.reason(), Reason::CircuitOpen);
    // 30 s of open circuit is beyond max_retry_after: returned at once, not waited out.
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_waited_out_when_configured_and_its_retry_after_fits() {
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let retry = RetryLayer::builder()
        .max_retries(3)
        .backoff(Backoff::none())
        .policy(Class::CIRCUIT_OPEN, ClassPolicy::new(3, Backoff::none()))
        .max_retry_after(Duration::from_secs(5))
        .no_budget()
        .build()
        .unwrap();
    let script = Script::new([Err("down"), Ok(9)]);
    let mut svc = ServiceBuilder::new()
        .layer(retry)
        .layer(breaker)
        .service(Flaky(script.clone()));
    // Fail (opens), rejected with retry_after 2 s (waited), half-open probe succeeds.
    assert_eq!(call(&mut svc, ()).await.unwrap(), 9);
    assert_eq!(script.gaps_ms(), [2000]);
}

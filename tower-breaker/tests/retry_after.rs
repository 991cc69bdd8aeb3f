//! The retry-after of an open circuit's refusal is the time left when the call is refused, in
//! `call`, however long after `poll_ready` decided to refuse it.

use std::future::poll_fn;
use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_breaker::{BoxError, CircuitBreakerLayer, Reason, Rejected};

fn layer() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn service(
    layer: &CircuitBreakerLayer,
) -> impl Service<bool, Response = (), Error = BoxError> + Clone {
    layer.layer(service_fn(|fail: bool| async move {
        if fail {
            Err(std::io::Error::other("down"))
        } else {
            Ok(())
        }
    }))
}

fn refusal(result: Result<(), BoxError>) -> (Reason, Option<Duration>) {
    let error = result.unwrap_err();
    let rejected = error.downcast_ref::<Rejected>().expect("a rejection");
    (rejected.reason(), rejected.retry_after())
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_time_left_when_the_call_is_made() {
    let layer = layer();
    let mut svc = service(&layer);
    assert!(svc.clone().oneshot(true).await.is_err());
    advance(Duration::from_secs(5)).await;

    // Refused in `poll_ready` 55 s before the circuit may probe...
    poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    // ...and answered 45 s later: 10 s are left, not 55.
    advance(Duration::from_secs(45)).await;
    assert_eq!(
        refusal(svc.call(false).await),
        (Reason::CircuitOpen, Some(Duration::from_secs(10)))
    );

    // Answered after the open period ended: nothing is left to wait.
    poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    advance(Duration::from_secs(30)).await;
    assert_eq!(
        refusal(svc.call(false).await),
        (Reason::CircuitOpen, Some(Duration::ZERO))
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_follows_a_circuit_that_opened_again_meanwhile() {
    let layer = layer();
    let mut svc = service(&layer);
    assert!(svc.clone().oneshot(true).await.is_err());
    advance(Duration::from_secs(50)).await;
    poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    // Meanwhile the circuit goes half-open, its probe fails, and it opens for another 60 s.
    advance(Duration::from_secs(20)).await;
    assert!(svc.clone().oneshot(true).await.is_err());
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        refusal(svc.call(false).await),
        (Reason::CircuitOpen, Some(Duration::from_secs(59)))
    );
}

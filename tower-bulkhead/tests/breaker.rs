//! A breaker in front of a bulkhead never counts the bulkhead's rejections as failures.

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use support::{Gate, settle};
use tokio::sync::Semaphore;
use tower::{ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, HttpStatus, State};
use tower_bulkhead::{BulkheadLayer, Reason, find_rejected};

#[tokio::test]
async fn a_breaker_in_front_of_a_bulkhead_never_counts_its_rejections_as_failures() {
    let breaker = CircuitBreakerLayer::builder()
        .name("db")
        .failure_threshold(1)
        .build()
        .unwrap();
    let breaker_handle = breaker.handle();
    let gate = Gate::new();
    let svc = ServiceBuilder::new()
        .layer(breaker)
        .layer(BulkheadLayer::builder().max_concurrent(1).build().unwrap())
        .service(gate.service());
    let held = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    for _ in 0..10 {
        let err = svc.clone().oneshot(2).await.unwrap_err();
        assert_eq!(find_rejected(&*err).unwrap().reason(), Reason::BulkheadFull);
    }
    assert_eq!(breaker_handle.state(), State::Closed);
    assert_eq!(breaker_handle.consecutive_failures(), 0);
    gate.finish(1);
    held.await.unwrap().unwrap();
    assert_eq!(breaker_handle.state(), State::Closed);
}

#[tokio::test]
async fn in_http_mode_the_bulkheads_503_is_ignored_by_a_status_classifier() {
    let breaker = CircuitBreakerLayer::builder()
        .name("api")
        .failure_threshold(1)
        .classifier(HttpStatus::new())
        .http()
        .build()
        .unwrap();
    let breaker_handle = breaker.handle();
    let release = Arc::new(Semaphore::new(0));
    let inner = {
        let release = release.clone();
        tower::service_fn(move |_: http::Request<()>| {
            let release = release.clone();
            async move {
                release.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(http::Response::new(String::new()))
            }
        })
    };
    let svc = ServiceBuilder::new()
        .layer(breaker)
        .layer(
            BulkheadLayer::builder()
                .max_concurrent(1)
                .http()
                .build()
                .unwrap(),
        )
        .service(inner);
    let held = tokio::spawn(svc.clone().oneshot(http::Request::new(())));
    settle().await;
    for _ in 0..10 {
        let res = svc.clone().oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
    }
    assert_eq!(breaker_handle.state(), State::Closed);
    release.add_permits(1);
    assert_eq!(held.await.unwrap().unwrap().status(), 200);
}

//! The answer mode implies the classifier unless one is set; `.http()` answers name the breaker.
#![cfg(feature = "http")]

use std::convert::Infallible;

use http::{Request, Response};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, ErrorsAsFailures, State};

async fn status(code: u16) -> Result<Response<String>, Infallible> {
    Ok(Response::builder()
        .status(code)
        .body(String::new())
        .unwrap())
}

#[tokio::test(start_paused = true)]
async fn five_500s_open_an_http_breaker_without_a_classifier() {
    let layer = CircuitBreakerLayer::builder()
        .name("reports")
        .http()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| status(500));
    for n in 1..=5 {
        assert_eq!(handle.state(), State::Closed, "before failure {n}");
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        assert_eq!(res.unwrap().status(), 500);
    }
    assert_eq!(handle.state(), State::Open);

    // The answer of the open circuit: 503, a short text naming the breaker.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(res.headers()["retry-after"], "60");
    assert_eq!(res.body(), "circuit breaker \"reports\" is open\n");
}

#[tokio::test(start_paused = true)]
async fn client_errors_do_not_open_an_http_breaker_without_a_classifier() {
    let layer = CircuitBreakerLayer::builder().http().build().unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| status(404));
    for _ in 0..10 {
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        assert_eq!(res.unwrap().status(), 404);
    }
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_grpc_breaker_without_a_classifier_reads_grpc_status() {
    let layer = CircuitBreakerLayer::builder()
        .name("inventory")
        .failure_threshold(2)
        .grpc()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| async {
            // Trailers-Only UNAVAILABLE, as a tonic server answers an error.
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "14")
                    .body(String::new())
                    .unwrap(),
            )
        });
    for _ in 0..2 {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }
    assert_eq!(handle.state(), State::Open);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(
        res.headers()["grpc-message"],
        "circuit breaker \"inventory\" is open"
    );
}

#[tokio::test(start_paused = true)]
async fn a_classifier_set_explicitly_wins_over_the_answer_mode() {
    let layer = CircuitBreakerLayer::builder()
        .classifier(ErrorsAsFailures)
        .http()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| status(500));
    for _ in 0..10 {
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        assert_eq!(res.unwrap().status(), 500);
    }
    assert_eq!(
        handle.state(),
        State::Closed,
        "responses are successes here"
    );
}

//! The client presets: `.http_client()` / `.grpc_client()` classify by status and answer with errors.
#![cfg(feature = "http")]

use std::convert::Infallible;

use http::{Request, Response};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{
    CircuitBreakerConfig, CircuitBreakerLayer, ErrorsAsFailures, KeyedCircuitBreakerLayer,
    Rejected, State,
};

async fn status(code: u16) -> Result<Response<String>, Infallible> {
    Ok(Response::builder()
        .status(code)
        .body(String::new())
        .unwrap())
}

async fn grpc(code: &'static str) -> Result<Response<String>, Infallible> {
    Ok(Response::builder()
        .header("grpc-status", code)
        .body(String::new())
        .unwrap())
}

#[tokio::test(start_paused = true)]
async fn twenty_503s_open_an_http_client_breaker() {
    let layer = CircuitBreakerLayer::builder()
        .name("billing-api")
        .http_client()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| status(503));
    let (mut answered, mut rejected) = (0, 0);
    for _ in 0..20 {
        match svc.ready().await.unwrap().call(Request::new(())).await {
            Ok(res) => {
                assert_eq!(res.status(), 503);
                answered += 1;
            }
            Err(err) => {
                let rejected_by = err.downcast_ref::<Rejected>().expect("a Rejected");
                assert_eq!(rejected_by.name(), Some("billing-api"));
                rejected += 1;
            }
        }
    }
    assert_eq!(handle.state(), State::Open);
    // The default rule: five failures in a row open it; the rest are answered with errors.
    assert_eq!((answered, rejected), (5, 15));
}

#[tokio::test(start_paused = true)]
async fn client_errors_do_not_open_an_http_client_breaker() {
    let layer = CircuitBreakerLayer::builder()
        .http_client()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| status(404));
    for _ in 0..20 {
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        assert_eq!(res.unwrap().status(), 404);
    }
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn unavailable_grpc_answers_open_a_grpc_client_breaker() {
    let layer = CircuitBreakerLayer::builder()
        .name("ledger")
        .grpc_client()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| grpc("14"));
    for _ in 0..5 {
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        assert_eq!(res.unwrap().headers()["grpc-status"], "14");
    }
    assert_eq!(handle.state(), State::Open);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Rejected>().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_classifier_set_before_the_preset_wins() {
    let layer = CircuitBreakerLayer::builder()
        .classifier(ErrorsAsFailures)
        .http_client()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| status(503));
    for _ in 0..20 {
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        assert_eq!(res.unwrap().status(), 503);
    }
    // Every response is a success to `ErrorsAsFailures`.
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn from_config_takes_a_reference_for_plain_and_keyed_layers() {
    let config = CircuitBreakerConfig {
        name: "cfg".into(),
        failure_threshold: Some(2),
        ..CircuitBreakerConfig::default()
    };
    let plain = CircuitBreakerLayer::from_config(&config).unwrap();
    assert_eq!(plain.name(), "cfg");
    let keyed = KeyedCircuitBreakerLayer::from_config(&config, |n: &u32| *n % 2).unwrap();
    let handle = keyed.handle();
    let mut svc = ServiceBuilder::new()
        .layer(keyed)
        .service_fn(|_: u32| async { Err::<(), _>(std::io::Error::other("down")) });
    for _ in 0..2 {
        let res = svc.ready().await.unwrap().call(1).await;
        assert!(res.is_err());
    }
    assert_eq!(handle.state(&1), Some(State::Open));
    assert_eq!(handle.state(&0), None);
    let bad = CircuitBreakerConfig {
        failure_threshold: Some(0),
        ..config
    };
    assert!(CircuitBreakerLayer::from_config(&bad).is_err());
}

#[test]
#[allow(deprecated)]
fn the_old_names_still_work() {
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let permit: tower_breaker::Permit<ErrorsAsFailures> = breaker.acquire().unwrap();
    permit.failure();
    assert_eq!(breaker.handle().state(), State::Open);
    let call = breaker.call(async { Ok::<(), std::io::Error>(()) });
    let res = futures_lite_block_on(call);
    assert!(res.unwrap_err().downcast_ref::<Rejected>().is_some());
}

fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

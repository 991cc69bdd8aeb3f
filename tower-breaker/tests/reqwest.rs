//! A breaker in front of `reqwest::Client`, talking to an axum server on 127.0.0.1.
#![cfg(feature = "reqwest")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, Rejected, ReqwestStatus, State};

/// Serves a route answering `status` on 127.0.0.1:0; counts the requests it handled.
async fn serve(status: StatusCode) -> (SocketAddr, Arc<AtomicUsize>) {
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    let app = Router::new().route(
        "/",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { status }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, handled)
}

fn get_request(addr: SocketAddr) -> reqwest::Request {
    reqwest::Request::new(
        reqwest::Method::GET,
        format!("http://{addr}/").parse().unwrap(),
    )
}

fn breaker() -> CircuitBreakerLayer<ReqwestStatus> {
    CircuitBreakerLayer::builder()
        .name("upstream")
        .failure_threshold(3)
        .reset_timeout(Duration::from_secs(30))
        .classifier(ReqwestStatus::new())
        .build()
        .unwrap()
}

#[tokio::test]
async fn five_hundreds_open_a_breaker_around_reqwest_client() {
    let (addr, handled) = serve(StatusCode::INTERNAL_SERVER_ERROR).await;
    let breaker = breaker();
    let handle = breaker.handle();
    let mut client = ServiceBuilder::new()
        .layer(breaker)
        .service(reqwest::Client::new());

    for _ in 0..3 {
        let res = client.ready().await.unwrap().call(get_request(addr)).await;
        assert_eq!(res.unwrap().status(), 500);
    }
    assert_eq!(handle.state(), State::Open);

    let err = client
        .ready()
        .await
        .unwrap()
        .call(get_request(addr))
        .await
        .unwrap_err();
    let rejected = err
        .downcast_ref::<Rejected>()
        .expect("the breaker's rejection");
    assert!(rejected.retry_after().is_some());
    assert_eq!(
        handled.load(Ordering::SeqCst),
        3,
        "the open circuit sent nothing"
    );
}

#[tokio::test]
async fn four_hundreds_do_not_open_it() {
    let (addr, handled) = serve(StatusCode::NOT_FOUND).await;
    let breaker = breaker();
    let handle = breaker.handle();
    let mut client = ServiceBuilder::new()
        .layer(breaker)
        .service(reqwest::Client::new());
    for _ in 0..5 {
        let res = client.ready().await.unwrap().call(get_request(addr)).await;
        assert_eq!(res.unwrap().status(), 404);
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handled.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn refused_connections_open_it() {
    // A loopback port just freed: nothing listens on it, so every connect is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let breaker = breaker();
    let handle = breaker.handle();
    let mut client = ServiceBuilder::new()
        .layer(breaker)
        .service(reqwest::Client::new());
    for _ in 0..3 {
        let err = client
            .ready()
            .await
            .unwrap()
            .call(get_request(addr))
            .await
            .unwrap_err();
        assert!(err.downcast_ref::<reqwest::Error>().unwrap().is_connect());
    }
    assert_eq!(handle.state(), State::Open);
}

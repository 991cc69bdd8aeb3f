//! The breaker on both sides of a real tonic connection over 127.0.0.1.
//!
//! Server side, `.grpc()` answers an open circuit with a Trailers-Only `UNAVAILABLE` instead of an
//! error (which tonic's server would turn into a reset stream). Client side, a `Channel` wrapped
//! in a `ServiceBuilder` with the breaker drives tonic's generated client end to end, and the
//! breaker opens on `UNAVAILABLE` answers read from the response headers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower_breaker::{
    CircuitBreakerHandle, CircuitBreakerLayer, GrpcStatus, Reason, Rejected, State,
};

/// A bound on every network step, so a broken test fails instead of hanging.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("step finished in time")
}

/// Serves tonic-health on 127.0.0.1 behind a server-side breaker in `.grpc()` mode; counts the
/// requests that get past the breaker. Returns the address, the breaker's handle and the count.
async fn health_server() -> (SocketAddr, CircuitBreakerHandle, Arc<AtomicUsize>) {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let breaker = CircuitBreakerLayer::builder()
        .name("health-server")
        .grpc()
        .build()
        .unwrap();
    let handle = breaker.handle();
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layers = ServiceBuilder::new().layer(breaker).map_request(
        move |req: http::Request<tonic::body::Body>| {
            counter.fetch_add(1, Ordering::SeqCst);
            req
        },
    );
    tokio::spawn(
        Server::builder()
            .layer(layers)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, handle, reached)
}

async fn channel(addr: SocketAddr) -> Channel {
    bounded(
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap()
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test]
async fn an_open_server_breaker_answers_unavailable_not_a_reset_stream() {
    let (addr, server_breaker, reached) = health_server().await;
    let mut client = HealthClient::new(channel(addr).await);

    let ok = bounded(client.check(check())).await.unwrap();
    assert_eq!(ok.into_inner().status, ServingStatus::Serving as i32);
    assert_eq!(reached.load(Ordering::SeqCst), 1);

    server_breaker.force_open();
    let status = bounded(client.check(check())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        "circuit breaker \"health-server\" is forced open"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "the service behind the breaker was not called"
    );

    // The connection survived: once reset, the same client is served again.
    server_breaker.reset();
    assert!(bounded(client.check(check())).await.is_ok());
}

#[tokio::test]
async fn a_client_channel_behind_the_breaker_works_end_to_end_and_opens_on_unavailable() {
    let (addr, server_breaker, reached) = health_server().await;
    let client_breaker = CircuitBreakerLayer::builder()
        .name("health-client")
        .failure_threshold(3)
        .reset_timeout(Duration::from_secs(600))
        .classifier(GrpcStatus::new())
        .grpc()
        .build()
        .unwrap();
    let breaker = client_breaker.handle();
    let svc = ServiceBuilder::new()
        .layer(client_breaker)
        .service(channel(addr).await);
    let mut client = HealthClient::new(svc);

    // End to end through the breaker: a unary call whose OK status comes in the trailers.
    for _ in 0..3 {
        let ok = bounded(client.check(check())).await.unwrap();
        assert_eq!(ok.into_inner().status, ServingStatus::Serving as i32);
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.consecutive_failures(), 0);

    // NOT_FOUND (an unknown service name) is the caller's fault: it does not count.
    let missing = bounded(client.check(HealthCheckRequest {
        service: "nope".into(),
    }))
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(breaker.consecutive_failures(), 0);

    // The server starts answering UNAVAILABLE: three of them open the client's circuit.
    server_breaker.force_open();
    for _ in 0..3 {
        let status = bounded(client.check(check())).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
    }
    assert_eq!(breaker.state(), State::Open);

    // Now the client answers by itself, without a network round trip.
    server_breaker.reset();
    let before = reached.load(Ordering::SeqCst);
    let status = bounded(client.check(check())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "circuit breaker \"health-client\" is open"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        before,
        "no request left the client"
    );
}

#[tokio::test]
async fn in_the_default_mode_a_tonic_client_finds_the_rejection_in_the_source_chain() {
    let (addr, _server_breaker, _reached) = health_server().await;
    let client_breaker = CircuitBreakerLayer::builder()
        .name("plain")
        .build()
        .unwrap();
    client_breaker.handle().force_open();
    let svc = ServiceBuilder::new()
        .layer(client_breaker)
        .service(channel(addr).await);
    let mut client = HealthClient::new(svc);
    let status = bounded(client.check(check())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unknown);
    let source = std::error::Error::source(&status).expect("the rejection is kept as the source");
    let rejected = tower_breaker::find_rejected(source).expect("a Rejected in the chain");
    assert_eq!(rejected.reason(), Reason::ForcedOpen);
    let _: &Rejected = rejected;
}

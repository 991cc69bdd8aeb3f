//! A bulkhead in `.grpc()` mode in front of a tonic server on 127.0.0.1, driven by tonic's
//! generated client: a full compartment answers `RESOURCE_EXHAUSTED`.
//!
//! Real sockets, so real time: nothing here sleeps; every network step is bounded.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_bulkhead::{BulkheadHandle, BulkheadLayer};

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("step finished in time")
}

/// tonic-health behind a one-permit compartment that holds its permit until the response
/// stream ends (so a `Watch` stream keeps it).
async fn health_server() -> (SocketAddr, BulkheadHandle) {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let bulkhead = BulkheadLayer::builder()
        .name("health")
        .max_concurrent(1)
        .grpc()
        .hold_until_body_end()
        .build()
        .unwrap();
    let handle = bulkhead.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Keeps the reporter alive for the server's lifetime.
        let _reporter = _reporter;
        Server::builder()
            .layer(bulkhead)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });
    (addr, handle)
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test]
async fn a_full_compartment_answers_resource_exhausted_to_a_real_client() {
    let (addr, handle) = health_server().await;
    let channel = bounded(
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap();
    let mut client = HealthClient::new(channel);
    assert!(bounded(client.check(check())).await.is_ok());
    assert_eq!(handle.in_flight(), 0);

    // A server-streaming Watch holds the only permit while it streams.
    let mut watch = bounded(client.watch(check())).await.unwrap().into_inner();
    assert!(bounded(watch.next()).await.unwrap().is_ok());
    assert_eq!(handle.in_flight(), 1);

    let status = bounded(client.check(check())).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), "bulkhead \"health\" is full");

    // The client drops the stream: the server drops the body and the permit comes back; the
    // same connection is served again.
    drop(watch);
    bounded(async {
        while handle.in_flight() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(bounded(client.check(check())).await.is_ok());
}

//! The retry layer over gRPC: pushback, and a real tonic client over 127.0.0.1.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::{Service, ServiceBuilder};
use tower_heal::{ReplayBody, RetryLayer};

use support::{Http, Script, call, status, with};

fn request() -> http::Request<()> {
    http::Request::post("/grpc.health.v1.Health/Check")
        .body(())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback_minus_one_stops_retries() {
    let unavailable = |pushback: &str| {
        let (code, mut headers) = with(200, "grpc-status", "14");
        headers.push(("grpc-retry-pushback-ms", pushback.to_owned()));
        (code, headers)
    };
    let script = Script::new([unavailable("-1"), status(200)]);
    let layer = RetryLayer::builder().grpc_client().build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Http(script.clone()));
    let empty = || request().map(|()| http_body_util::Empty::<bytes::Bytes>::new());
    let res = call(&mut svc, empty()).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(script.count(), 1, "not retried");

    // A valid pushback replaces the back-off.
    let script = Script::new([unavailable("1500"), status(200)]);
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(Http(script.clone()));
    assert_eq!(call(&mut svc, empty()).await.unwrap().status(), 200);
    assert_eq!(script.gaps_ms(), [1500]);
}

/// A bound on every network step, so a broken test fails instead of hanging.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("step finished in time")
}

/// Answers the first `fail` requests with a Trailers-Only `UNAVAILABLE`, then passes them on.
#[derive(Clone)]
struct Unavailable<S> {
    inner: S,
    seen: Arc<AtomicUsize>,
    fail: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<tonic::body::Body>> for Unavailable<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if self.seen.fetch_add(1, Ordering::SeqCst) < self.fail {
            let answer = tonic::Status::unavailable("warming up").into_http();
            return Box::pin(async move { Ok(answer) });
        }
        Box::pin(self.inner.call(req))
    }
}

async fn health_server(fail: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .layer(tower::layer::layer_fn(move |inner| Unavailable {
                inner,
                seen: counter.clone(),
                fail,
            }))
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, seen)
}

#[tokio::test]
async fn a_tonic_client_succeeds_after_two_unavailable_answers() {
    let (addr, seen) = health_server(2).await;
    let channel = bounded(
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap();
    let retry = RetryLayer::builder()
        .grpc_client()
        .name("health")
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry)
        .map_request(|req: http::Request<ReplayBody<tonic::body::Body>>| {
            req.map(tonic::body::Body::new)
        })
        .service(channel);
    let mut client = HealthClient::new(svc);
    let response = bounded(client.check(HealthCheckRequest {
        service: String::new(),
    }))
    .await
    .expect("served after two UNAVAILABLE answers");
    assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "two refused, the third served"
    );
}

#[tokio::test]
async fn without_retry_the_same_client_sees_unavailable() {
    let (addr, seen) = health_server(2).await;
    let channel = bounded(
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap();
    let mut client = HealthClient::new(channel);
    let status = bounded(client.check(HealthCheckRequest {
        service: String::new(),
    }))
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

/// A tonic channel to a port nobody listens on: the RPC never left the client, so it is
/// retried (a transparent retry, gRPC A6) although `Check` is not marked idempotent, once the
/// channel's error is a `BoxError` the classes can look into.
#[tokio::test]
async fn a_refused_connection_is_retried_for_any_method() {
    use tower::ServiceExt;
    use tower_heal::{Backoff, BoxError};

    // Bind, then drop the listener: the port refuses connections.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let retry = RetryLayer::builder()
        .grpc_client()
        .backoff(Backoff::none())
        .no_budget()
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry)
        .map_request(move |req: http::Request<ReplayBody<tonic::body::Body>>| {
            counter.fetch_add(1, Ordering::SeqCst);
            req.map(tonic::body::Body::new)
        })
        .service(channel.map_err(BoxError::from));
    let mut client = HealthClient::new(svc);
    let status = bounded(client.check(HealthCheckRequest {
        service: String::new(),
    }))
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "the first attempt and two retries"
    );
}

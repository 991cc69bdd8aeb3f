//! gRPC outcomes as the rest of the family reads them: the `.grpc()` guard reads the head
//! through `tower_outcome` (grpc-status wins over the HTTP status, malformed is UNKNOWN), and
//! a body fault on a stream that ends on a data frame is still classified by a breaker above
//! when the body is driven as hyper drives it.
#![cfg(all(feature = "inject", feature = "http"))]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, State};
use tower_chaos::{ChaosLayer, Fault, Latency};

type Body = axum::body::Body;

fn answering(
    status: u16,
    grpc_status: Option<&'static str>,
) -> impl Service<
    Request<()>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    tower::service_fn(move |_: Request<()>| async move {
        let mut res = Response::builder()
            .status(status)
            .header("content-type", "application/grpc");
        if let Some(value) = grpc_status {
            res = res.header("grpc-status", value);
        }
        // One framed message; the body knows its end.
        let body = Body::new(Full::new(Bytes::from_static(b"\0\0\0\0\x01x")));
        Ok::<_, Infallible>(res.body(body).unwrap())
    })
}

/// Whether the default `.grpc()` guard stays armed over 100 calls answered so.
async fn guard_stays_armed(status: u16, grpc_status: Option<&'static str>) -> bool {
    let layer = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(1))).rate(0.1))
        .grpc()
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(answering(status, grpc_status));
    for _ in 0..100 {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }
    handle.is_armed()
}

#[tokio::test(start_paused = true)]
async fn the_grpc_guard_reads_grpc_status_before_the_http_status() {
    // Before: every non-200 answer counted as a real failure, and "+0" as OK.
    assert!(guard_stays_armed(500, Some("0")).await, "500 + OK");
    assert!(guard_stays_armed(503, Some("5")).await, "503 + NOT_FOUND");
    assert!(guard_stays_armed(404, None).await, "404 is UNIMPLEMENTED");
    assert!(!guard_stays_armed(200, Some("+0")).await, "+0 is UNKNOWN");
    assert!(
        !guard_stays_armed(404, Some("14")).await,
        "404 + UNAVAILABLE"
    );
    assert!(!guard_stays_armed(503, None).await, "503 is UNAVAILABLE");
    assert!(
        guard_stays_armed(200, None).await,
        "the status is in the trailers"
    );
}

/// Reads a body as hyper's servers do: stop at `is_end_stream()` after a frame, then drop.
async fn serve_like_hyper<B: http_body::Body + Unpin>(mut body: B) {
    while !body.is_end_stream() {
        match body.frame().await {
            Some(Ok(frame)) if frame.is_data() => {}
            _ => break,
        }
    }
}

fn rewrap(body: tower_chaos::ChaosBody<Body>) -> Body {
    Body::new(body)
}

#[tokio::test(start_paused = true)]
async fn a_breaker_above_a_body_fault_classifies_the_stream_at_its_end() {
    for (name, fault) in [
        (
            "slow_body",
            Fault::slow_body(2, Duration::from_secs(5), rewrap),
        ),
        ("cut_off_body", Fault::cut_off_body(2, rewrap)),
    ] {
        let breaker = CircuitBreakerLayer::builder()
            .failure_threshold(3)
            .grpc()
            .build()
            .unwrap();
        let handle = breaker.handle();
        let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
            .fault(fault.rate(1.0))
            .grpc()
            .armed(true)
            .build()
            .unwrap();
        let mut svc = ServiceBuilder::new()
            .layer(breaker)
            .layer(chaos)
            .service(answering(200, None));
        for _ in 0..3 {
            let res = svc
                .ready()
                .await
                .unwrap()
                .call(Request::new(()))
                .await
                .unwrap();
            assert_eq!(handle.state(), State::Closed, "{name}: not before the end");
            serve_like_hyper(res.into_body()).await;
        }
        // No grpc-status at the end (UNKNOWN), or a cut-off (an error): three failures.
        // Before, the slow body's end was never seen and the calls counted as cancelled.
        assert_eq!(handle.state(), State::Open, "{name}");
    }
}

//! Slow calls: timed to the nanosecond, from admission to the response head, and only when
//! their outcome counts.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::BodyExt;
use tokio::time::{advance, sleep};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, GrpcStatus, HttpStatus, State};

/// A breaker that opens when one call (of at least one) is slow at `slow`.
fn slow_layer(slow: Duration) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .failure_threshold(None)
        .slow_call_rate_threshold(1.0, slow)
        .minimum_calls(1)
        .count_window(10)
        .build()
        .unwrap()
}

/// One call that starts `offset` into the layer's clock and takes exactly `took` (tokio's
/// timers round to milliseconds, so the clock is moved by hand).
async fn call_taking(layer: &CircuitBreakerLayer, offset: Duration, took: Duration) {
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<(), (), _>(layer.clone());
    advance(offset).await;
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let fut = svc.call(());
    let (_, reply) = handle.next_request().await.unwrap();
    advance(took).await;
    reply.send_response(());
    fut.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_1_9_ms_call_is_slow_at_1_5_ms() {
    let layer = slow_layer(Duration::from_micros(1500));
    // From 0.05 ms to 1.95 ms into the millisecond count: 1 ms on a millisecond clock.
    call_taking(
        &layer,
        Duration::from_micros(50),
        Duration::from_micros(1900),
    )
    .await;
    assert_eq!(layer.handle().state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_0_2_ms_call_is_not_slow_at_0_5_ms_across_a_millisecond_boundary() {
    let layer = slow_layer(Duration::from_micros(500));
    // From 0.9 ms to 1.1 ms: crosses a millisecond boundary.
    call_taking(
        &layer,
        Duration::from_micros(900),
        Duration::from_micros(200),
    )
    .await;
    assert_eq!(layer.handle().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_whose_outcome_is_ignored_frees_its_slot_and_keeps_half_open() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .slow_call_rate_threshold(1.0, Duration::from_secs(1))
        .classifier(HttpStatus::new())
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|(status, took): (u16, u64)| async move {
                sleep(Duration::from_secs(took)).await;
                Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
            });
    svc.ready().await.unwrap().call((503, 0)).await.unwrap();
    assert_eq!(breaker.state(), State::Open);
    advance(Duration::from_secs(60)).await;

    // A slow 404 probe: ignored, so neither slow nor a failure.
    let res = svc.ready().await.unwrap().call((404, 2)).await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(breaker.state(), State::HalfOpen);
    // Its slot is free: the next probe is admitted and closes the circuit.
    let res = svc.ready().await.unwrap().call((200, 0)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(breaker.state(), State::Closed);
}

/// A gRPC stream body that runs for a while and ends with `grpc-status: 0`.
struct LongStream {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl http_body::Body for LongStream {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.done {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        self.done = true;
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        std::task::Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
    }
}

/// A response whose head comes at once and whose body runs for `lasts`.
fn stream(lasts: Duration) -> Response<LongStream> {
    Response::builder()
        .header("content-type", "application/grpc")
        .body(LongStream {
            sleep: Box::pin(sleep(lasts)),
            done: false,
        })
        .unwrap()
}

use std::future::Future as _;

#[tokio::test(start_paused = true)]
async fn a_long_healthy_grpc_stream_is_not_a_slow_call() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(None)
        .slow_call_rate_threshold(1.0, Duration::from_secs(1))
        .minimum_calls(1)
        .count_window(10)
        .classifier(GrpcStatus::new())
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|()| async { Ok::<_, Infallible>(stream(Duration::from_secs(30))) });
    let res = svc.ready().await.unwrap().call(()).await.unwrap();
    let trailers = res.into_body().collect().await.unwrap().trailers().cloned();
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
    assert_eq!(
        breaker.state(),
        State::Closed,
        "the response head came at once: not slow"
    );
}

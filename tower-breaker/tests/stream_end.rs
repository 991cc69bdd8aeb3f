//! A gRPC breaker classifies a streamed answer as soon as the stream is known to have ended,
//! where hyper stops polling a body it serves (`is_end_stream()` after a data frame, or a
//! known length written) and drops it; and it reads `grpc-status` before the HTTP status.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, State};

/// One framed gRPC message.
const MESSAGE: &[u8] = b"\0\0\0\0\x01x";

/// A body of known length that never reports its end (hyper's HTTP/1 server writes its
/// `content-length`, then drops it without polling again).
#[derive(Default)]
struct KnownLength(Option<Bytes>);

impl Body for KnownLength {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|data| Ok(Frame::data(data))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Data frames of unknown length, then the end (never announced in advance).
#[derive(Default)]
struct Frames(Vec<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop().map(|data| Ok(Frame::data(data))))
    }
}

/// Reads a body as hyper's servers do, then drops it: stop at `is_end_stream()` after a data
/// frame, or (HTTP/1) once the known length is written.
async fn serve_like_hyper<B: Body + Unpin>(mut body: B) {
    let mut left = body.size_hint().exact();
    while !body.is_end_stream() {
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if let Some(n) = left.as_mut() {
                        *n = n.saturating_sub(bytes::Buf::remaining(&data) as u64);
                        if *n == 0 {
                            break;
                        }
                    }
                }
                Err(_) => break,
            },
            _ => break,
        }
    }
}

async fn state_after_three<B>(answer: impl Fn() -> Response<B> + Clone + Send + 'static) -> State
where
    B: Body<Data = Bytes> + Default + Unpin + Send + 'static,
{
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(3)
        .grpc()
        .build()
        .unwrap();
    let handle = breaker.handle();
    let mut svc = ServiceBuilder::new()
        .layer(breaker)
        .service(tower::service_fn(move |_: Request<()>| {
            let res = answer();
            async move { Ok::<_, Infallible>(res) }
        }));
    for _ in 0..3 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        serve_like_hyper(res.into_body()).await;
    }
    handle.state()
}

fn grpc<B>(status: u16, grpc_status: Option<&'static str>, body: B) -> Response<B> {
    let mut res = Response::builder()
        .status(status)
        .header("content-type", "application/grpc");
    if let Some(value) = grpc_status {
        res = res.header("grpc-status", value);
    }
    res.body(body).unwrap()
}

#[tokio::test]
async fn a_stream_ending_without_grpc_status_opens_the_breaker_when_served() {
    // Before: hyper dropped each body at its end unsettled; the calls counted as cancelled.
    let ends_on_data = || grpc(200, None, Full::new(Bytes::from_static(MESSAGE)));
    assert_eq!(state_after_three(ends_on_data).await, State::Open);
    let known_length = || grpc(200, None, KnownLength(Some(Bytes::from_static(MESSAGE))));
    assert_eq!(state_after_three(known_length).await, State::Open);
}

#[tokio::test]
async fn grpc_status_wins_over_the_http_status() {
    // Before: 503 was UNAVAILABLE whatever its grpc-status, 404 UNIMPLEMENTED (ignored).
    let ok_behind_503 = || grpc(503, Some("0"), Full::new(Bytes::new()));
    assert_eq!(state_after_three(ok_behind_503).await, State::Closed);
    let unavailable_behind_404 = || grpc(404, Some("14"), Full::new(Bytes::new()));
    assert_eq!(state_after_three(unavailable_behind_404).await, State::Open);
    let malformed_ok = || grpc(200, Some("+0"), Full::new(Bytes::new()));
    assert_eq!(state_after_three(malformed_ok).await, State::Open);
}

#[tokio::test]
async fn a_stream_dropped_before_its_end_counts_for_nothing() {
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .grpc()
        .build()
        .unwrap();
    let handle = breaker.handle();
    let svc = ServiceBuilder::new()
        .layer(breaker)
        .service(tower::service_fn(|_: Request<()>| async {
            let body = Frames(vec![Bytes::from_static(MESSAGE); 2]);
            Ok::<_, Infallible>(grpc(200, None, body))
        }));
    for _ in 0..5 {
        let mut body = svc
            .clone()
            .oneshot(Request::new(()))
            .await
            .unwrap()
            .into_body();
        body.frame().await.unwrap().unwrap();
        drop(body);
    }
    assert_eq!(handle.state(), State::Closed);
}

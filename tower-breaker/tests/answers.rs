//! `.http()` and `.grpc()` answers, and gRPC classification at the end of the stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, GrpcStatus, HttpStatus, State};

/// A body of one data frame and, optionally, trailers.
#[derive(Default)]
struct Frames(VecDeque<Frame<Bytes>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

fn grpc_stream(status: &'static str) -> Response<Frames> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", status.parse().unwrap());
    let frames = VecDeque::from([
        Frame::data(Bytes::from_static(b"msg")),
        Frame::trailers(trailers),
    ]);
    Response::new(Frames(frames))
}

#[tokio::test(start_paused = true)]
async fn http_mode_answers_503_with_retry_after_and_keeps_infallible() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .reset_timeout(Duration::from_millis(2500))
        .classifier(HttpStatus::new())
        .http()
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|req: Request<()>| async move {
            let status = if req.uri() == "/fail" { 500 } else { 200 };
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(String::new())
                    .unwrap(),
            )
        });
    let get = |uri: &str| Request::get(uri).body(()).unwrap();

    // 404s are the caller's problem; 500s are failures.
    for _ in 0..5 {
        svc.ready()
            .await
            .unwrap()
            .call(get("/missing"))
            .await
            .unwrap();
    }
    assert_eq!(breaker.state(), State::Closed);
    for _ in 0..2 {
        let res = svc.ready().await.unwrap().call(get("/fail")).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(breaker.state(), State::Open);
    let res: Response<String> = svc.ready().await.unwrap().call(get("/ok")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "3", "2.5 s rounds up");
}

#[tokio::test(start_paused = true)]
async fn grpc_mode_answers_trailers_only_unavailable() {
    let layer = CircuitBreakerLayer::builder()
        .name("users")
        .grpc()
        .build()
        .unwrap();
    layer.handle().force_open();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Frames::default()))
        });
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(
        res.headers()["grpc-message"],
        "circuit breaker \"users\" is forced open"
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_status_in_trailers_counts_at_the_end_of_the_stream() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .classifier(GrpcStatus::new())
        .grpc()
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|code: &'static str| async move { Ok::<_, Infallible>(grpc_stream(code)) });

    // Two UNAVAILABLE streams, read to the end: the breaker opens only once they end.
    let first = svc.ready().await.unwrap().call("14").await.unwrap();
    let second = svc.ready().await.unwrap().call("14").await.unwrap();
    assert_eq!(
        breaker.consecutive_failures(),
        0,
        "nothing is known before the trailers"
    );
    first.into_body().collect().await.unwrap();
    assert_eq!(breaker.consecutive_failures(), 1);
    second.into_body().collect().await.unwrap();
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_stream_dropped_before_its_end_counts_for_nothing() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .classifier(GrpcStatus::new())
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|code: &'static str| async move { Ok::<_, Infallible>(grpc_stream(code)) });
    let res = svc.ready().await.unwrap().call("13").await.unwrap();
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    drop(body);
    assert_eq!(breaker.state(), State::Closed);
    // NOT_FOUND is the caller's problem.
    let res = svc.ready().await.unwrap().call("5").await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
    let res = svc.ready().await.unwrap().call("13").await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_half_open_stream_frees_its_probe_slot() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .classifier(GrpcStatus::new())
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|code: &'static str| async move { Ok::<_, Infallible>(grpc_stream(code)) });
    svc.ready()
        .await
        .unwrap()
        .call("14")
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert_eq!(breaker.state(), State::Open);
    tokio::time::advance(Duration::from_secs(60)).await;

    // The probe's response arrived, but its body is dropped unread: the slot comes back.
    let probe = svc.ready().await.unwrap().call("0").await.unwrap();
    let refused = svc.ready().await.unwrap().call("0").await;
    assert!(
        refused.is_err(),
        "the one probe slot is taken while the stream is open"
    );
    drop(probe);
    let probe = svc.ready().await.unwrap().call("0").await.unwrap();
    probe.into_body().collect().await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
}

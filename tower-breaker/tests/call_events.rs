//! The opt-in per-call listener: every call's outcome and duration.

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{
    BoxErrorAnswer, CallEvent, CallListener, CallOutcome, CircuitBreakerLayer, ErrorsAsFailures,
    FnClassifier, Outcome, default_error_outcome,
};

/// One event seen: `(key, outcome, duration)`.
type Event = (Option<String>, CallOutcome, Option<Duration>);

/// Events seen.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Event>>>);

impl CallListener for Seen {
    fn on_call(&self, event: &CallEvent<'_>) {
        assert_eq!(event.name, "db");
        self.0
            .lock()
            .unwrap()
            .push((event.key.map(str::to_owned), event.outcome, event.duration));
    }
}

impl Seen {
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// `n` milliseconds of work, then: 0 fails, 404 is ignored, anything else succeeds.
async fn work(n: u64) -> Result<u64, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(n)).await;
    if n == 0 {
        Err(std::io::Error::other("down"))
    } else {
        Ok(n)
    }
}

type Classifier = FnClassifier<fn(Result<&u64, &(dyn Error + 'static)>) -> Outcome, u64>;

fn classifier() -> Classifier {
    fn classify(result: Result<&u64, &(dyn Error + 'static)>) -> Outcome {
        match result {
            Ok(404) => Outcome::Ignore,
            Ok(_) => Outcome::Success,
            Err(err) => default_error_outcome(err),
        }
    }
    FnClassifier::new(classify)
}

#[tokio::test(start_paused = true)]
async fn every_outcome_reaches_the_listener_with_its_duration() {
    let seen = Seen::default();
    let layer = CircuitBreakerLayer::builder()
        .name("db")
        .failure_threshold(1)
        .classifier(classifier())
        .on_call(seen.clone())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service_fn(work);

    assert_eq!(svc.ready().await.unwrap().call(250).await.unwrap(), 250);
    assert_eq!(svc.ready().await.unwrap().call(404).await.unwrap(), 404);
    assert!(svc.ready().await.unwrap().call(0).await.is_err());
    assert!(
        svc.ready().await.unwrap().call(7).await.is_err(),
        "open now"
    );
    assert_eq!(
        seen.take(),
        [
            (None, CallOutcome::Success, Some(Duration::from_millis(250))),
            (None, CallOutcome::Ignored, Some(Duration::from_millis(404))),
            (None, CallOutcome::Failure, Some(Duration::ZERO)),
            (None, CallOutcome::Rejected, None),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_is_not_reported() {
    let seen = Seen::default();
    let layer = CircuitBreakerLayer::builder()
        .name("db")
        .on_call(seen.clone())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service_fn(work);
    let call = svc.ready().await.unwrap().call(1_000);
    assert!(
        tokio::time::timeout(Duration::from_millis(10), call)
            .await
            .is_err()
    );
    assert_eq!(seen.take(), []);
}

#[tokio::test(start_paused = true)]
async fn per_key_breakers_report_their_key() {
    let seen = Seen::default();
    let layer = CircuitBreakerLayer::builder()
        .name("db")
        .on_call(seen.clone())
        .build_keyed::<u64, _>(|n: &u64| n % 2)
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service_fn(work);
    svc.ready().await.unwrap().call(3).await.unwrap();
    assert_eq!(
        seen.take(),
        [(
            Some("1".to_owned()),
            CallOutcome::Success,
            Some(Duration::from_millis(3))
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn permits_and_calls_without_tower_are_reported() {
    let seen = Seen::default();
    let layer = CircuitBreakerLayer::builder()
        .name("db")
        .failure_threshold(1)
        .on_call(seen.clone())
        .build()
        .unwrap();
    let permit = layer.acquire().unwrap();
    tokio::time::advance(Duration::from_millis(20)).await;
    permit.failure();
    assert!(layer.run(work(5)).await.is_err());
    assert_eq!(
        seen.take(),
        [
            (None, CallOutcome::Failure, Some(Duration::from_millis(20))),
            (None, CallOutcome::Rejected, None),
        ]
    );
}

/// With a listener type of your own, the layer's type stays nameable.
type Listened = CircuitBreakerLayer<ErrorsAsFailures, BoxErrorAnswer, Seen>;

#[tokio::test(start_paused = true)]
async fn a_closure_listens_too_and_a_named_listener_keeps_the_type_nameable() {
    let named: Listened = CircuitBreakerLayer::builder()
        .name("db")
        .on_call(Seen::default())
        .build()
        .unwrap();
    assert_eq!(named.name(), "db");

    let count = Arc::new(Mutex::new(0));
    let counter = count.clone();
    let layer = CircuitBreakerLayer::builder()
        .on_call(move |_: &CallEvent<'_>| *counter.lock().unwrap() += 1)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service_fn(work);
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(*count.lock().unwrap(), 1);
}

/// A body of one data frame, then trailers with `grpc-status`.
#[cfg(feature = "http")]
mod grpc {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http::HeaderMap;
    use http_body::Frame;

    #[derive(Default)]
    pub(super) struct Frames(pub(super) VecDeque<Frame<Bytes>>);

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

    pub(super) fn stream(status: &'static str) -> http::Response<Frames> {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", status.parse().unwrap());
        http::Response::new(Frames(VecDeque::from([
            Frame::data(Bytes::from_static(b"msg")),
            Frame::trailers(trailers),
        ])))
    }
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn a_streamed_grpc_call_is_reported_when_its_stream_ends_timed_to_its_head() {
    use http_body_util::BodyExt;

    let seen = Seen::default();
    let layer = CircuitBreakerLayer::builder()
        .name("db")
        .on_call(seen.clone())
        .grpc()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: http::Request<()>| async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok::<_, std::convert::Infallible>(grpc::stream("14"))
        });
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(seen.take(), [], "not before the end of the stream");
    let _ = res.into_body().collect().await.unwrap();
    assert_eq!(
        seen.take(),
        [(None, CallOutcome::Failure, Some(Duration::from_millis(30)))]
    );
}

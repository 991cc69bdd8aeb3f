//! Streams (opt-in): the permit lives in the response body until the stream ends or is dropped.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::ServiceExt;
use tower_bulkhead::{BulkheadHandle, BulkheadLayer, Reason, Rejected};
use tower_layer::Layer;

type Body = StreamBody<ReceiverStream<Result<Frame<Bytes>, Infallible>>>;
type Frames = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

/// A server whose responses stream frames the test sends; each call hands the test a sender.
#[allow(clippy::type_complexity)]
fn streaming() -> (
    impl tower::Service<
        http::Request<()>,
        Response = http::Response<Body>,
        Error = Infallible,
        Future = impl Send,
    > + Clone,
    Arc<Mutex<Vec<Frames>>>,
) {
    let senders = Arc::new(Mutex::new(Vec::new()));
    let store = senders.clone();
    let svc = tower::service_fn(move |_: http::Request<()>| {
        let (tx, rx) = mpsc::channel(4);
        store.lock().unwrap().push(tx);
        async move {
            Ok::<_, Infallible>(http::Response::new(StreamBody::new(ReceiverStream::new(
                rx,
            ))))
        }
    });
    (svc, senders)
}

fn layer() -> (
    BulkheadLayer<
        tower_bulkhead::PerRequest,
        tower_bulkhead::EstimateStands,
        tower_bulkhead::UntilBodyEnd,
    >,
    BulkheadHandle,
) {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .hold_until_body_end()
        .build()
        .unwrap();
    let handle = layer.handle();
    (layer, handle)
}

#[tokio::test]
async fn the_permit_is_held_while_the_body_streams_and_freed_at_its_end() {
    let (layer, handle) = layer();
    let (inner, senders) = streaming();
    let svc = layer.layer(inner);
    let mut body = svc
        .clone()
        .oneshot(http::Request::new(()))
        .await
        .unwrap()
        .into_body();
    let tx = senders.lock().unwrap()[0].clone();
    assert_eq!(handle.in_flight(), 1, "held after the response head");
    tx.send(Ok(Frame::data(Bytes::from("event: 1\n\n"))))
        .await
        .unwrap();
    body.frame().await.unwrap().unwrap();
    assert_eq!(handle.in_flight(), 1, "held while streaming");
    // Full: another stream is refused while this one runs.
    let err = svc
        .clone()
        .oneshot(http::Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<Rejected>().unwrap().reason(),
        Reason::BulkheadFull
    );
    drop(tx);
    senders.lock().unwrap().clear();
    assert!(body.frame().await.is_none(), "the stream ended");
    assert_eq!(handle.in_flight(), 0, "freed at the end of the stream");
    // The body object still exists; the permit is gone with the stream's end.
    drop(body);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test]
async fn the_permit_is_freed_when_the_body_is_dropped() {
    let (layer, handle) = layer();
    let (inner, senders) = streaming();
    let svc = layer.layer(inner);
    let mut body = svc
        .clone()
        .oneshot(http::Request::new(()))
        .await
        .unwrap()
        .into_body();
    let tx = senders.lock().unwrap()[0].clone();
    tx.send(Ok(Frame::data(Bytes::from("partial"))))
        .await
        .unwrap();
    body.frame().await.unwrap().unwrap();
    assert_eq!(handle.in_flight(), 1);
    drop(body); // the client went away mid-stream
    assert_eq!(handle.in_flight(), 0);
    let next = svc.oneshot(http::Request::new(())).await.unwrap();
    assert_eq!(handle.in_flight(), 1);
    drop(next);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test]
async fn by_default_the_permit_is_given_back_with_the_response_head() {
    let layer = BulkheadLayer::builder().max_concurrent(1).build().unwrap();
    let handle = layer.handle();
    let (inner, senders) = streaming();
    let svc = layer.layer(inner);
    let _body = svc
        .oneshot(http::Request::new(()))
        .await
        .unwrap()
        .into_body();
    assert_eq!(senders.lock().unwrap().len(), 1);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test]
async fn an_actual_cost_reported_from_the_stream_settles_when_the_body_ends() {
    let layer = BulkheadLayer::builder()
        .token_budget(1000)
        .refill(1000, std::time::Duration::from_secs(3600))
        .cost(tower_bulkhead::HeaderCost::new("x-estimated-tokens"))
        .hold_until_body_end()
        .build()
        .unwrap();
    let handle = layer.handle();
    let (inner, senders) = streaming();
    let svc = layer.layer(inner);
    let request = http::Request::builder()
        .header("x-estimated-tokens", "100")
        .body(())
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    let report = response
        .extensions()
        .get::<tower_bulkhead::CostReport>()
        .cloned()
        .expect("a streamed response carries a cost report");
    let mut body = response.into_body();
    let tx = senders.lock().unwrap()[0].clone();
    senders.lock().unwrap().clear();
    assert_eq!(handle.tokens_in_use(), Some(100));
    assert_eq!(handle.rate_tokens_available(), Some(900));
    // The last event of the stream carries the usage: 740 tokens.
    tx.send(Ok(Frame::data(Bytes::from("data: {\"usage\": 740}\n\n"))))
        .await
        .unwrap();
    body.frame().await.unwrap().unwrap();
    report.actual_cost(740);
    drop(tx);
    assert!(body.frame().await.is_none());
    assert_eq!(handle.tokens_in_use(), Some(0));
    assert_eq!(
        handle.rate_tokens_available(),
        Some(260),
        "740 spent, not the estimate"
    );
    assert_eq!(handle.in_flight(), 0);
}

//! A stream permit is given back as soon as the stream is known to have ended: after a data
//! frame that leaves the body at its end (where hyper stops polling and a client stops
//! reading), not only when `None` is polled or the body is dropped.

use std::convert::Infallible;

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_bulkhead::BulkheadLayer;
use tower_layer::Layer;

#[tokio::test]
async fn the_permit_is_freed_by_the_last_data_frame() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .hold_until_body_end()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"all"))))
    }));
    for round in 0..3 {
        let mut body = svc
            .clone()
            .oneshot(http::Request::new(()))
            .await
            .unwrap()
            .into_body();
        assert_eq!(handle.in_flight(), 1, "round {round}: held after the head");
        body.frame().await.unwrap().unwrap();
        assert!(body.is_end_stream());
        // The body is still alive (a client holding it, hyper about to drop it): the stream
        // has ended, so the slot is free. Before: held until the drop.
        assert_eq!(handle.in_flight(), 0, "round {round}: freed at the end");
        svc.clone()
            .oneshot(http::Request::new(()))
            .await
            .expect("the next stream is admitted while the first body lives");
        drop(body);
        assert_eq!(handle.in_flight(), 0);
    }
}

#[tokio::test]
async fn a_body_dropped_before_its_end_frees_the_permit_too() {
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .hold_until_body_end()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
        let body = http_body_util::StreamBody::new(futures_like::two_frames());
        Ok::<_, Infallible>(http::Response::new(body))
    }));
    let mut body = svc
        .clone()
        .oneshot(http::Request::new(()))
        .await
        .unwrap()
        .into_body();
    body.frame().await.unwrap().unwrap();
    assert!(!body.is_end_stream());
    assert_eq!(handle.in_flight(), 1, "mid-stream: held");
    drop(body);
    assert_eq!(handle.in_flight(), 0, "dropped: freed");
}

mod futures_like {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::Frame;

    /// Two data frames, then the end; a stream that cannot tell its end in advance.
    pub(crate) struct TwoFrames(u8);

    pub(crate) fn two_frames() -> TwoFrames {
        TwoFrames(2)
    }

    impl tokio_stream::Stream for TwoFrames {
        type Item = Result<Frame<Bytes>, Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            if self.0 == 0 {
                return Poll::Ready(None);
            }
            self.0 -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }
}

//! The end-of-stream wrapper settles as soon as the stream is known to have ended, however the
//! body is driven: collected by a client, or served by hyper (which stops polling at
//! `is_end_stream()`, or once a known length is written, and drops the body).

mod support;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::Response;
use http_body::Body;
use http_body_util::BodyExt;
use support::{Script, Seen, collect, serve_like_hyper};
use tower_outcome::{Classify, ClassifyEos, EosBody, GrpcStatus, Outcome};

/// Fails a stream without trailers, succeeds one with: tells which end was seen.
struct TrailersOrNot;
impl ClassifyEos for TrailersOrNot {
    fn classify_eos(&self, trailers: Option<&http::HeaderMap>) -> Outcome {
        if trailers.is_some() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

fn grpc(status: u16, body: Script) -> Response<Script> {
    Response::builder()
        .status(status)
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn a_stream_ending_on_a_data_frame_is_classified_when_served_by_hyper() {
    // Before: hyper dropped the body at `is_end_stream()` and the call counted as cancelled.
    for http1 in [true, false] {
        let seen = Seen::default();
        let res = GrpcStatus::new().classify_response(
            grpc(200, Script::data(&["a", "b"]).reporting_end()),
            seen.guard(),
        );
        assert_eq!(seen.outcome(), None, "not before the end");
        serve_like_hyper(res.into_body(), http1).await;
        assert_eq!(
            seen.outcome(),
            Some(Outcome::Failure),
            "no grpc-status is UNKNOWN"
        );
        assert!(!seen.cancelled());
    }
}

#[tokio::test]
async fn served_and_collected_agree() {
    let cases: Vec<(u16, fn() -> Script)> = vec![
        (200, || Script::data(&["a"]).reporting_end()),
        (200, || Script::data(&["a"]).of_known_length()),
        (200, || {
            Script::data(&["a"]).trailers(&[("grpc-status", "0")])
        }),
        (200, || {
            Script::data(&["a"]).trailers(&[("grpc-status", "14")])
        }),
        (200, || Script::data(&["a", "b"]).error()),
        (503, || Script::data(&["a"]).reporting_end()),
        (404, || Script::data(&["a"]).of_known_length()),
        (503, || {
            Script::data(&["a"]).trailers(&[("grpc-status", "0")])
        }),
    ];
    for (i, (status, script)) in cases.into_iter().enumerate() {
        let collected = Seen::default();
        let res = GrpcStatus::new().classify_response(grpc(status, script()), collected.guard());
        collect(res.into_body()).await;
        for http1 in [true, false] {
            let served = Seen::default();
            let res = GrpcStatus::new().classify_response(grpc(status, script()), served.guard());
            serve_like_hyper(res.into_body(), http1).await;
            assert_eq!(
                served.outcome(),
                collected.outcome(),
                "case {i}, http1 {http1}"
            );
            assert!(served.outcome().is_some(), "case {i}");
        }
    }
}

#[tokio::test]
async fn a_known_length_fully_sent_then_dropped_is_the_end() {
    let seen = Seen::default();
    let mut body = EosBody::new(
        Script::data(&["ab", "c"]).of_known_length(),
        TrailersOrNot,
        seen.guard(),
    );
    body.frame().await.unwrap().unwrap();
    body.frame().await.unwrap().unwrap();
    // Trailers may still come (HTTP/2 polls on): nothing is decided yet.
    assert_eq!(seen.outcome(), None);
    drop(body);
    assert_eq!(seen.outcome(), Some(Outcome::Failure));
}

#[tokio::test]
async fn trailers_after_a_known_length_still_decide() {
    let seen = Seen::default();
    let body = EosBody::new(
        Script::data(&["ab"])
            .of_known_length()
            .trailers(&[("grpc-status", "0")]),
        TrailersOrNot,
        seen.guard(),
    );
    collect(body).await;
    assert_eq!(seen.outcome(), Some(Outcome::Success));
}

#[tokio::test]
async fn a_known_length_dropped_short_is_cancelled() {
    let seen = Seen::default();
    let mut body = EosBody::new(
        Script::data(&["ab", "c"]).of_known_length(),
        TrailersOrNot,
        seen.guard(),
    );
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(seen.outcome(), None);
    assert!(seen.cancelled());
}

#[tokio::test]
async fn settled_once_even_when_polled_past_the_end() {
    let seen = Seen::default();
    let mut body = EosBody::new(
        Script::data(&["a"]).reporting_end().of_known_length(),
        TrailersOrNot,
        seen.guard(),
    );
    body.frame().await.unwrap().unwrap();
    assert!(body.is_end_stream());
    assert!(body.frame().await.is_none());
    assert!(body.frame().await.is_none());
    drop(body);
    assert_eq!(seen.outcomes(), vec![Outcome::Failure]);
}

#[tokio::test]
async fn an_error_is_a_failure() {
    let seen = Seen::default();
    collect(EosBody::new(
        Script::data(&["a"]).error(),
        TrailersOrNot,
        seen.guard(),
    ))
    .await;
    assert_eq!(seen.outcome(), Some(Outcome::Failure));
}

#[test]
fn cancelled_at_every_poll() {
    // Drop the body after each number of polls: settled only once the end was seen,
    // cancelled otherwise, never both, never twice.
    let script = || {
        Script::data(&["a", "b"])
            .trailers(&[("grpc-status", "0")])
            .pending_between()
    };
    let mut cx = Context::from_waker(Waker::noop());
    let mut reached_end = false;
    for polls in 0..16 {
        let seen = Seen::default();
        let mut body = EosBody::new(script(), TrailersOrNot, seen.guard());
        let mut ended = false;
        for _ in 0..polls {
            match pin!(body.frame()).poll(&mut cx) {
                Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => ended = true,
                Poll::Ready(None) => ended = true,
                _ => {}
            }
        }
        drop(body);
        if ended {
            assert_eq!(seen.outcomes(), vec![Outcome::Success], "{polls} polls");
            assert!(!seen.cancelled());
            reached_end = true;
        } else {
            assert_eq!(seen.outcome(), None, "{polls} polls");
            assert!(seen.cancelled(), "{polls} polls");
        }
    }
    assert!(reached_end);
}

#[tokio::test]
async fn a_settled_body_forwards_frames_only() {
    let mut body = EosBody::<_, TrailersOrNot, support::Spy>::settled(
        Script::data(&["a"]).reporting_end().of_known_length(),
    );
    assert_eq!(body.size_hint().exact(), Some(1));
    let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(data, "a");
    assert!(body.is_end_stream());
}

#[test]
fn a_classifier_panicking_at_the_end_leaves_the_call_cancelled() {
    struct Panics;
    impl ClassifyEos for Panics {
        fn classify_eos(&self, _: Option<&http::HeaderMap>) -> Outcome {
            panic!("classifier bug")
        }
    }
    for script in [
        Script::data(&["a"]).reporting_end(),
        Script::data(&["a"]).of_known_length(),
        Script::data(&["a"]),
    ] {
        let seen = Seen::default();
        let guard = seen.guard();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let mut body = EosBody::new(script, Panics, guard);
            let mut cx = Context::from_waker(Waker::noop());
            for _ in 0..4 {
                let _ = pin!(body.frame()).poll(&mut cx);
            }
        }));
        assert!(caught.is_err(), "the classifier's panic reaches the caller");
        assert_eq!(seen.outcome(), None, "nothing settled");
        assert!(
            seen.cancelled(),
            "the obligation was dropped: a cancelled call"
        );
    }
}

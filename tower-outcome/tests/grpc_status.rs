//! `grpc-status` is read as the gRPC spec and tonic read it: it wins over the HTTP status
//! wherever it is (headers, or trailers at the end of the stream), and only ASCII digits are a
//! code. `grpc-retry-pushback-ms` and `Retry-After` delta-seconds are read as strictly.

mod support;

use std::time::{Duration, SystemTime};

use http::{HeaderValue, Response};
use support::{Script, Seen, collect};
use tower_outcome::{
    Classify, GrpcStatus, Outcome, Pushback, parse_grpc_pushback, parse_grpc_status,
    parse_retry_after,
};

fn head(status: u16, grpc_status: &str) -> Response<Script> {
    Response::builder()
        .status(status)
        .header(
            "grpc-status",
            HeaderValue::from_bytes(grpc_status.as_bytes()).unwrap(),
        )
        .body(Script::default().reporting_end())
        .unwrap()
}

fn classify_now(res: Response<Script>) -> Option<Outcome> {
    let seen = Seen::default();
    drop(GrpcStatus::new().classify_response(res, seen.guard()));
    seen.outcome()
}

async fn classify_streamed(status: u16, trailer: &'static str) -> Option<Outcome> {
    let seen = Seen::default();
    let res = Response::builder()
        .status(status)
        .body(Script::data(&["x"]).trailers(&[("grpc-status", trailer)]))
        .unwrap();
    let res = GrpcStatus::new().classify_response(res, seen.guard());
    assert_eq!(seen.outcome(), None, "{status}: waits for the trailers");
    collect(res.into_body()).await;
    seen.outcome()
}

#[test]
fn grpc_status_in_the_headers_wins_over_the_http_status() {
    // Before: the HTTP mapping decided every non-200 answer.
    assert_eq!(classify_now(head(500, "3")), Some(Outcome::Ignore));
    assert_eq!(classify_now(head(503, "0")), Some(Outcome::Success));
    assert_eq!(classify_now(head(404, "14")), Some(Outcome::Failure));
    assert_eq!(classify_now(head(429, "8")), Some(Outcome::Failure));
    assert_eq!(classify_now(head(502, "5")), Some(Outcome::Ignore));
}

#[tokio::test]
async fn grpc_status_in_the_trailers_wins_over_the_http_status() {
    assert_eq!(classify_streamed(404, "14").await, Some(Outcome::Failure));
    assert_eq!(classify_streamed(503, "0").await, Some(Outcome::Success));
    assert_eq!(classify_streamed(500, "3").await, Some(Outcome::Ignore));
    assert_eq!(classify_streamed(200, "13").await, Some(Outcome::Failure));
}

#[tokio::test]
async fn without_grpc_status_the_http_status_is_mapped_at_the_end() {
    for (status, expected) in [
        (200, Outcome::Failure), // UNKNOWN
        (400, Outcome::Failure), // INTERNAL
        (401, Outcome::Ignore),  // UNAUTHENTICATED
        (403, Outcome::Ignore),  // PERMISSION_DENIED
        (404, Outcome::Ignore),  // UNIMPLEMENTED
        (429, Outcome::Failure), // UNAVAILABLE
        (500, Outcome::Failure), // UNKNOWN
        (503, Outcome::Failure), // UNAVAILABLE
    ] {
        let seen = Seen::default();
        let res = Response::builder()
            .status(status)
            .body(Script::data(&["x"]))
            .unwrap();
        collect(
            GrpcStatus::new()
                .classify_response(res, seen.guard())
                .into_body(),
        )
        .await;
        assert_eq!(seen.outcome(), Some(expected), "{status}");
    }
}

#[test]
fn malformed_grpc_status_is_unknown() {
    // Before: "+0", "-0", "0\u{a0}" and "\u{3000}0" healed the breaker, "+5" was NOT_FOUND.
    let unknown = GrpcStatus::new().outcome(2);
    for value in [
        "+0",
        "-0",
        "0\u{a0}",
        "\u{3000}0",
        "+5",
        "-14",
        "",
        "0x0",
        "1e1",
        "٠",
        "０",
        "17",
        "4294967296",
        "0,0",
        "0 0",
    ] {
        assert_eq!(classify_now(head(200, value)), Some(unknown), "{value:?}");
        assert_eq!(
            parse_grpc_status(&HeaderValue::from_bytes(value.as_bytes()).unwrap()),
            2
        );
    }
    // Surrounding ASCII whitespace, which the header grammar allows, is not part of the value.
    for value in [" 0", "0 ", "\t0\t"] {
        assert_eq!(
            classify_now(head(200, value)),
            Some(Outcome::Success),
            "{value:?}"
        );
    }
}

#[tokio::test]
async fn malformed_grpc_status_in_the_trailers_is_unknown() {
    for value in ["+0", "-0", "0\u{a0}", "\u{3000}0", "+5"] {
        let seen = Seen::default();
        let res = Response::new(Script::data(&["x"]).trailers(&[("grpc-status", value)]));
        collect(
            GrpcStatus::new()
                .classify_response(res, seen.guard())
                .into_body(),
        )
        .await;
        assert_eq!(seen.outcome(), Some(Outcome::Failure), "{value:?}");
    }
}

/// The three numeric headers the family reads take ASCII digits only, with surrounding ASCII
/// whitespace at most; anything else is the header's "not a value" reading.
#[test]
fn numeric_headers_are_read_alike() {
    let now = SystemTime::UNIX_EPOCH;
    let max = Duration::from_secs(3600);
    let read = |value: &str| {
        let value = HeaderValue::from_bytes(value.as_bytes()).unwrap();
        (
            parse_grpc_status(&value),
            parse_grpc_pushback(&value, max),
            parse_retry_after(&value, now, max),
        )
    };
    for (value, n) in [("7", 7u64), (" 7", 7), ("7\t", 7), ("07", 7), ("0", 0)] {
        assert_eq!(
            read(value),
            (
                i32::try_from(n).unwrap(),
                Pushback::After(Duration::from_millis(n)),
                Some(Duration::from_secs(n)),
            ),
            "{value:?}"
        );
    }
    for value in [
        "+7",
        "-7",
        "-0",
        "7\u{a0}",
        "\u{3000}7",
        "٧",
        "７",
        "7.0",
        "0x7",
        "7 7",
        "",
        " ",
    ] {
        assert_eq!(read(value), (2, Pushback::DontRetry, None), "{value:?}");
    }
}

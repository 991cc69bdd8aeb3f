//! Differential tests: the same responses through our classifiers and through tonic's client
//! and tower-http's classifiers. They must agree, except for the deliberate differences listed
//! in the crate docs ("Where we differ from tonic and tower-http"), each pinned here.
//!
//! - gRPC: the code tonic's client reports (a `Status`, or OK at the end of the stream) must be
//!   the code our [`GrpcStatus`] settles, read back by classifying with one failing code at a
//!   time; the response is driven both as a client collects it and as hyper serves it.
//! - HTTP: [`HttpStatus`] failures must be tower-http's `ServerErrorsAsFailures` failures.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use support::{Script, Seen, collect, serve_like_hyper};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tower_http::classify::{
    ClassifiedResponse, ClassifyEos as _, ClassifyResponse, GrpcErrorsAsFailures, GrpcFailureClass,
    ServerErrorsAsFailures,
};
use tower_outcome::{
    Classify, GrpcStatus, HttpStatus, LayerKind, Outcome, Reason, Rejected, grpc_trailers_only,
};

/// One gRPC message of one byte, framed.
const MESSAGE: &str = "\0\0\0\0\x01x";

/// A response to send, rebuilt for every reader.
#[derive(Clone, Debug)]
struct Case {
    status: u16,
    headers: Vec<(&'static str, Vec<u8>)>,
    /// `None`: a Trailers-Only answer (empty body); `Some`: one message, then these trailers
    /// (none when empty).
    trailers: Option<Vec<(&'static str, Vec<u8>)>>,
}

impl Case {
    fn streamed(status: u16, trailers: &[(&'static str, &str)]) -> Self {
        Self {
            status,
            headers: Vec::new(),
            trailers: Some(
                trailers
                    .iter()
                    .map(|(n, v)| (*n, v.as_bytes().to_vec()))
                    .collect(),
            ),
        }
    }

    fn trailers_only(status: u16, headers: &[(&'static str, &str)]) -> Self {
        Self {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (*n, v.as_bytes().to_vec()))
                .collect(),
            trailers: None,
        }
    }

    fn response(&self) -> Response<Script> {
        let mut body = match &self.trailers {
            None => Script::default().reporting_end(),
            Some(_) => Script::data(&[MESSAGE]),
        };
        if let Some(trailers) = self.trailers.as_ref().filter(|t| !t.is_empty()) {
            let mut map = HeaderMap::new();
            for (name, value) in trailers {
                map.append(*name, HeaderValue::from_bytes(value).unwrap());
            }
            body.frames.push_back(Ok(http_body::Frame::trailers(map)));
        } else {
            // Without trailers the stream reports its end after the message, as a body of
            // known length or hyper's own bodies do: hyper stops there.
            body = body.reporting_end();
        }
        let mut res = Response::new(body);
        *res.status_mut() = StatusCode::from_u16(self.status).unwrap();
        res.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        for (name, value) in &self.headers {
            res.headers_mut()
                .append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        res
    }
}

/// The code our classifier settles (`None`: ignored as a family answer, or not settled),
/// with the body driven by `drive`.
async fn ours(res: impl Fn() -> Response<Script>, hyper: bool) -> Option<i32> {
    let mut found = None;
    for code in 0..=16 {
        let mut classifier = GrpcStatus::new();
        for other in 1..=16 {
            classifier = classifier.ignore(other);
        }
        let classifier = classifier.failure_on(code);
        let seen = Seen::default();
        let body = classifier
            .classify_response(res(), seen.guard())
            .into_body();
        if hyper {
            serve_like_hyper(body, true).await;
        } else {
            collect(body).await;
        }
        match seen.outcome() {
            Some(Outcome::Success) => return Some(0),
            Some(Outcome::Failure) if code > 0 => found = Some(code),
            Some(_) => {}
            None => return None,
        }
    }
    found
}

/// The same, collected and served alike (they must agree).
async fn ours_both(res: impl Fn() -> Response<Script> + Copy) -> Option<i32> {
    let collected = ours(res, false).await;
    let served = ours(res, true).await;
    assert_eq!(collected, served, "collected and served disagree");
    collected
}

/// Bytes as they are on the wire, both ways.
#[derive(Clone, Copy, Debug, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// What tonic's client makes of `res`: the status of the call, OK when the stream ended well.
async fn tonic_status(res: Response<Script>) -> Status {
    let mut res = Some(res);
    let transport = tower::service_fn(move |_: http::Request<tonic::body::Body>| {
        let res = res.take().expect("one call");
        async move { Ok::<_, Infallible>(res) }
    });
    let mut client = tonic::client::Grpc::new(transport);
    client.ready().await.unwrap();
    let call = client
        .server_streaming(
            tonic::Request::new(Bytes::new()),
            PathAndQuery::from_static("/differential.Test/Call"),
            Raw,
        )
        .await;
    let mut stream = match call {
        Ok(response) => response.into_inner(),
        Err(status) => return status,
    };
    loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => return Status::ok(""),
            Err(status) => return status,
        }
    }
}

async fn tonic_code(case: &Case) -> i32 {
    tonic_status(case.response()).await.code() as i32
}

/// What tower-http's `GrpcErrorsAsFailures` makes of `res`, as a code (0 for its success),
/// codes it does not know read as UNKNOWN as its own `GrpcCode::from` reads them.
async fn tower_http_code(res: Response<Script>) -> i32 {
    let class = match GrpcErrorsAsFailures::new().classify_response(&res) {
        ClassifiedResponse::Ready(class) => class,
        ClassifiedResponse::RequiresEos(eos) => {
            let collected = res.into_body().collect().await.unwrap();
            eos.classify_eos(collected.trailers())
        }
    };
    match class {
        Ok(()) => 0,
        Err(GrpcFailureClass::Code(code)) if (0..=16).contains(&code.get()) => code.get(),
        Err(_) => 2,
    }
}

/// Odd `grpc-status` values: well-formed codes, and everything a server or proxy might write.
const VALUES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "8",
    "12",
    "13",
    "14",
    "15",
    "16",
    "17",
    "99",
    "4294967296",
    "99999999999999999999",
    "-1",
    "+0",
    "-0",
    "+5",
    "0\u{a0}",
    "\u{3000}0",
    "\u{ff10}",
    "",
    "abc",
    "1.0",
    "0x0",
    "1 4",
];

/// Deliberate difference 1: leading zeros are a code, as the spec's grammar (`1*DIGIT`) and
/// grpc-go read them; tonic reads anything but the exact 17 spellings as UNKNOWN.
const LEADING_ZEROS: &[(&str, i32)] = &[("00", 0), ("014", 14), ("0003", 3)];

/// Deliberate difference 2: surrounding ASCII whitespace is skipped (the header grammar's
/// optional whitespace; never seen on the wire, where HTTP parsers strip it already).
const PADDED: &[(&str, i32)] = &[(" 0", 0), ("0 ", 0), ("\t14", 14), (" 3 ", 3)];

#[tokio::test]
async fn grpc_status_values_read_as_tonic_reads_them() {
    for value in VALUES {
        for case in [
            Case::trailers_only(200, &[("grpc-status", value)]),
            Case::streamed(200, &[("grpc-status", value)]),
        ] {
            let tonic = tonic_code(&case).await;
            assert_eq!(ours_both(|| case.response()).await, Some(tonic), "{case:?}");
        }
    }
}

#[tokio::test]
async fn pinned_leading_zeros_and_padding_differ_from_tonic() {
    for (value, code) in LEADING_ZEROS.iter().chain(PADDED) {
        for case in [
            Case::trailers_only(200, &[("grpc-status", value)]),
            Case::streamed(200, &[("grpc-status", value)]),
        ] {
            assert_eq!(ours_both(|| case.response()).await, Some(*code), "{case:?}");
            if *code != 2 {
                assert_eq!(tonic_code(&case).await, Code::Unknown as i32, "{case:?}");
            }
        }
    }
}

#[tokio::test]
async fn every_http_status_with_and_without_grpc_status_as_tonic_reads_it() {
    for status in 100..=999 {
        let mut cases = vec![
            // No grpc-status anywhere: the HTTP status is mapped (200 is UNKNOWN), from a
            // stream that ends on its message or from an empty body at once.
            Case::streamed(status, &[]),
            Case::trailers_only(status, &[]),
            // grpc-status wins over the HTTP status, in the headers or the trailers.
            Case::trailers_only(status, &[("grpc-status", "0")]),
            Case::trailers_only(status, &[("grpc-status", "14")]),
            Case::streamed(status, &[("grpc-status", "0")]),
            Case::streamed(status, &[("grpc-status", "3")]),
        ];
        if status % 100 == 0 || matches!(status, 401 | 403 | 404 | 429 | 502 | 503 | 504) {
            cases.push(Case::trailers_only(status, &[("grpc-status", "+0")]));
        }
        for case in cases {
            let tonic = tonic_code(&case).await;
            assert_eq!(ours_both(|| case.response()).await, Some(tonic), "{case:?}");
        }
    }
}

#[tokio::test]
async fn the_same_as_tower_http_where_a_well_formed_status_is_present() {
    for status in [200, 400, 404, 500, 503] {
        for value in [
            "0", "1", "2", "3", "8", "14", "16", "17", "99", "-1", "00", " 0",
        ] {
            for case in [
                Case::trailers_only(status, &[("grpc-status", value)]),
                Case::streamed(status, &[("grpc-status", value)]),
            ] {
                let theirs = tower_http_code(case.response()).await;
                assert_eq!(
                    ours_both(|| case.response()).await,
                    Some(theirs),
                    "{case:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn pinned_tower_http_reads_a_missing_or_malformed_status_as_success() {
    // Deliberate difference 3: tower-http's gRPC classifier ignores the HTTP status and reads
    // a stream without grpc-status, or with one that is not an integer, as a success. We
    // read the gRPC spec's mapping and UNKNOWN, as tonic does.
    for (case, ours_code) in [
        (Case::streamed(200, &[]), 2),
        (Case::streamed(503, &[]), 14),
        (Case::streamed(404, &[]), 12),
        (Case::streamed(500, &[]), 2),
        (Case::trailers_only(200, &[("grpc-status", "abc")]), 2),
        (Case::trailers_only(200, &[("grpc-status", "0\u{a0}")]), 2),
        (Case::streamed(200, &[("grpc-status", "")]), 2),
    ] {
        assert_eq!(tower_http_code(case.response()).await, 0, "{case:?}");
        assert_eq!(
            ours_both(|| case.response()).await,
            Some(ours_code),
            "{case:?}"
        );
        assert_eq!(tonic_code(&case).await, ours_code, "{case:?}");
    }
    // Deliberate difference 4: a sign is not part of a code (tower-http parses an `i32`).
    for (value, theirs) in [("+0", 0), ("-0", 0), ("+5", 5), ("+14", 14)] {
        let case = Case::trailers_only(200, &[("grpc-status", value)]);
        assert_eq!(tower_http_code(case.response()).await, theirs, "{value}");
        assert_eq!(ours_both(|| case.response()).await, Some(2), "{value}");
    }
}

#[tokio::test]
async fn pinned_a_message_that_does_not_decode_leaves_the_code_alone() {
    // Deliberate difference 5: tonic reads a status whose grpc-message is not percent-encoded
    // UTF-8 as UNKNOWN; we read the code alone (the message is for people).
    let case = Case::trailers_only(200, &[("grpc-status", "0"), ("grpc-message", "%FF")]);
    assert_eq!(tonic_code(&case).await, Code::Unknown as i32);
    assert_eq!(ours_both(|| case.response()).await, Some(0));
    let case = Case::trailers_only(200, &[("grpc-status", "14"), ("grpc-message", "a%20b")]);
    assert_eq!(tonic_code(&case).await, 14);
    assert_eq!(ours_both(|| case.response()).await, Some(14));
}

#[tokio::test]
async fn a_stream_dropped_before_its_end_settles_nothing() {
    // Neither tonic nor tower-http report a status for a stream nobody read to its end; we
    // settle nothing either (a cancelled call).
    let case = Case::streamed(200, &[("grpc-status", "14")]);
    let seen = Seen::default();
    let mut body = GrpcStatus::new()
        .classify_response(case.response(), seen.guard())
        .into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(seen.outcome(), None);
    assert!(seen.cancelled());
}

fn family_answers() -> Vec<Rejected> {
    vec![
        Rejected::new(LayerKind::Breaker, Reason::CircuitOpen)
            .with_name("inventory")
            .with_retry_after(Duration::from_millis(1500)),
        Rejected::new(LayerKind::Bulkhead, Reason::BulkheadFull),
        Rejected::new(LayerKind::Heal, Reason::BudgetExhausted),
        Rejected::new(LayerKind::Chaos, Reason::Injected).with_name(" padded "),
        Rejected::new(LayerKind::Other(""), Reason::CircuitOpen),
        Rejected::new(
            LayerKind::Other("quota"),
            Reason::Other("said \"no\" 100% é"),
        ),
    ]
}

#[tokio::test]
async fn our_grpc_answers_read_through_tonic_as_written() {
    for rejected in family_answers() {
        let answer: Response<Script> = rejected.grpc_response();
        for value in answer.headers().values() {
            let bytes = value.as_bytes();
            assert!(
                !bytes.starts_with(b" ") && !bytes.ends_with(b" "),
                "{value:?} starts or ends with whitespace"
            );
        }
        let status = tonic_status(answer).await;
        assert_eq!(status.code() as i32, rejected.grpc_code(), "{rejected:?}");
        assert_eq!(status.message(), rejected.to_string(), "{rejected:?}");

        // Deliberate difference 6: a family answer is ignored (it says nothing about the
        // dependency); without the rejection it carries, it reads as tonic reads it.
        assert_eq!(ours_both(|| rejected.grpc_response()).await, None);
        let bare = || {
            let mut res: Response<Script> = rejected.grpc_response();
            res.extensions_mut().remove::<Rejected>();
            res
        };
        assert_eq!(ours_both(bare).await, Some(rejected.grpc_code()));
    }
    for message in [" leading", "trailing ", "  ", "tab\there", "ünïcode", "%41"] {
        let answer: Response<Script> = grpc_trailers_only(14, Some(message), None);
        let status = tonic_status(answer).await;
        assert_eq!(status.message(), message);
    }
}

#[test]
fn http_statuses_fail_where_tower_http_says_they_fail() {
    // Deliberate difference 7: 408 is a failure (the dependency timed out); 501 and 505 are
    // ignored (the request asked for what the server does not do); 600 to 999, which HTTP does
    // not define, are failures. tower-http's two classes have no "ignored": its successes are
    // our successes and ignored calls (4xx, 429) alike.
    let differ = |code: u16| matches!(code, 408 | 501 | 505 | 600..=999);
    let ours = HttpStatus::new();
    for code in 100..=999 {
        let status = StatusCode::from_u16(code).unwrap();
        let res = Response::builder().status(status).body(()).unwrap();
        let theirs = match ServerErrorsAsFailures::new().classify_response(&res) {
            ClassifiedResponse::Ready(class) => class.is_err(),
            ClassifiedResponse::RequiresEos(_) => unreachable!("decided from the status"),
        };
        let ours = ours.outcome(status) == Outcome::Failure;
        if differ(code) {
            assert_ne!(ours, theirs, "{code}");
        } else {
            assert_eq!(ours, theirs, "{code}");
        }
    }
}

#[tokio::test]
async fn pinned_which_codes_count_against_the_dependency() {
    // Deliberate difference 8, a policy rather than a reading: tower-http's gRPC classifier
    // fails every code but OK; ours fails only the codes that say the dependency is unwell and
    // ignores CANCELLED and the caller-fault codes. Over HTTP, 429 and other 4xx are ignored,
    // where tower-http counts them as successes.
    let failing = [2, 4, 8, 13, 14, 15];
    for code in 1..=16 {
        let value = code.to_string();
        let case = Case::trailers_only(200, &[("grpc-status", &value)]);
        assert_eq!(tower_http_code(case.response()).await, code);
        let seen = Seen::default();
        drop(GrpcStatus::new().classify_response(case.response(), seen.guard()));
        let expected = if failing.contains(&code) {
            Outcome::Failure
        } else {
            Outcome::Ignore
        };
        assert_eq!(seen.outcome(), Some(expected), "{code}");
    }
    for code in [400, 404, 429, 499] {
        let status = StatusCode::from_u16(code).unwrap();
        let res = Response::builder().status(status).body(()).unwrap();
        assert!(matches!(
            ServerErrorsAsFailures::new().classify_response(&res),
            ClassifiedResponse::Ready(Ok(()))
        ));
        assert_eq!(HttpStatus::new().outcome(status), Outcome::Ignore, "{code}");
    }
}

//! The retry's gRPC classes read `grpc-status` as the rest of the family does
//! (`tower_outcome::grpc_code_at_head`): it wins over the HTTP status, only ASCII digits are a
//! code, and a non-200 answer without one takes the code gRPC maps its status to.

use http::Response;
use tower_heal::{Class, ClassifyRetry, GrpcClasses};

fn class(status: u16, grpc_status: Option<&str>) -> Option<Class> {
    let mut res = Response::builder().status(status);
    if let Some(value) = grpc_status {
        res = res.header(
            "grpc-status",
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    let res = res.body(()).unwrap();
    GrpcClasses::new()
        .classify(&Ok::<_, std::io::Error>(res))
        .map(|failure| failure.class)
}

#[test]
fn grpc_status_wins_over_the_http_status() {
    // Before: any status but 200 was read from the HTTP mapping alone.
    assert_eq!(class(500, Some("14")), Some(Class::GRPC_UNAVAILABLE));
    assert_eq!(class(404, Some("14")), Some(Class::GRPC_UNAVAILABLE));
    assert_eq!(class(503, Some("0")), None);
    assert_eq!(class(502, Some("5")), None);
    assert_eq!(class(400, Some("3")), Some(Class::VALIDATION_ERROR));
}

#[test]
fn without_grpc_status_the_http_status_is_mapped() {
    for status in [429, 502, 503, 504] {
        assert_eq!(
            class(status, None),
            Some(Class::GRPC_UNAVAILABLE),
            "{status}"
        );
    }
    for status in [200, 400, 401, 403, 404, 500] {
        assert_eq!(class(status, None), None, "{status}");
    }
}

#[test]
fn a_malformed_grpc_status_is_unknown_and_not_retried() {
    // Before: "+14" and "+3" were read as codes.
    for value in ["+14", "14\u{a0}", "\u{3000}14", "-14", "+3", "1 4", ""] {
        assert_eq!(class(200, Some(value)), None, "{value:?}");
    }
    assert_eq!(class(200, Some(" 14 ")), Some(Class::GRPC_UNAVAILABLE));
}

//! Reading a gRPC status code: from `grpc-status`, or from the HTTP status without one.
//!
//! Every layer of the family that reads a gRPC outcome goes through these functions, so a
//! status is read the same way everywhere: the breaker's [`GrpcStatus`](crate::GrpcStatus), the
//! retry's gRPC classes and the chaos guard.

use http::{HeaderMap, HeaderValue, StatusCode};

/// The `grpc-status` header (or trailer) name.
pub const GRPC_STATUS: &str = "grpc-status";

/// `UNKNOWN`, what anything that is not a well-formed code reads as.
const UNKNOWN: i32 = 2;

/// Reads a `grpc-status` value as a code in `0..=16`.
///
/// The gRPC grammar is ASCII digits only (`1*DIGIT`); surrounding ASCII whitespace, which the
/// header grammar allows around a field value, is skipped. Anything else (a sign, a non-ASCII
/// digit or space, an empty value, a code past 16, an overflow) reads as `UNKNOWN` (2), as
/// tonic's `Code::from_bytes` reads it. Unlike tonic, leading zeros are read as the grammar
/// allows (`"014"` is `UNAVAILABLE`).
///
/// ```
/// use http::HeaderValue;
/// use tower_outcome::parse_grpc_status;
///
/// assert_eq!(parse_grpc_status(&HeaderValue::from_static("14")), 14);
/// assert_eq!(parse_grpc_status(&HeaderValue::from_static(" 0 ")), 0);
/// assert_eq!(parse_grpc_status(&HeaderValue::from_static("+0")), 2); // not a code: UNKNOWN
/// assert_eq!(parse_grpc_status(&HeaderValue::from_static("17")), 2);
/// ```
#[must_use]
pub fn parse_grpc_status(value: &HeaderValue) -> i32 {
    let digits = value.as_bytes().trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return UNKNOWN;
    }
    let mut code: i32 = 0;
    for &digit in digits {
        code = code * 10 + i32::from(digit - b'0');
        if code > 16 {
            return UNKNOWN;
        }
    }
    code
}

/// The code of the `grpc-status` in `headers` (response headers or trailers), if there is one,
/// read by [`parse_grpc_status`].
///
/// ```
/// use http::HeaderMap;
/// use tower_outcome::grpc_status_in;
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(grpc_status_in(&headers), None);
/// headers.insert("grpc-status", "5".parse().unwrap());
/// assert_eq!(grpc_status_in(&headers), Some(5));
/// ```
#[must_use]
pub fn grpc_status_in(headers: &HeaderMap) -> Option<i32> {
    headers.get(GRPC_STATUS).map(parse_grpc_status)
}

/// The gRPC code an HTTP status stands for in a response without `grpc-status` (gRPC's "HTTP
/// to gRPC status code mapping", as tonic applies it): 400 `INTERNAL`, 401
/// `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404 `UNIMPLEMENTED`, 429, 502, 503 and 504
/// `UNAVAILABLE`, anything else `UNKNOWN` (200 too: a gRPC answer must carry a status).
///
/// The mapping is only for a response that carries no `grpc-status`: when one is present, in
/// the headers or the trailers, it is the outcome whatever the HTTP status.
///
/// ```
/// use http::StatusCode;
/// use tower_outcome::grpc_code_for_http_status;
///
/// assert_eq!(grpc_code_for_http_status(StatusCode::SERVICE_UNAVAILABLE), 14);
/// assert_eq!(grpc_code_for_http_status(StatusCode::NOT_FOUND), 12);
/// assert_eq!(grpc_code_for_http_status(StatusCode::OK), 2);
/// ```
#[must_use]
pub const fn grpc_code_for_http_status(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => UNKNOWN,
    }
}

/// The gRPC code a response's head already tells, for a reader that cannot wait for the
/// trailers: the `grpc-status` in the headers if there is one (a Trailers-Only answer),
/// otherwise the [mapping](grpc_code_for_http_status) of an HTTP status other than 200;
/// `None` for a 200 without `grpc-status` (the status comes in the trailers).
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use tower_outcome::grpc_code_at_head;
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(grpc_code_at_head(StatusCode::OK, &headers), None);
/// assert_eq!(grpc_code_at_head(StatusCode::BAD_GATEWAY, &headers), Some(14));
/// headers.insert("grpc-status", "0".parse().unwrap());
/// // grpc-status wins over the HTTP status.
/// assert_eq!(grpc_code_at_head(StatusCode::BAD_GATEWAY, &headers), Some(0));
/// ```
#[must_use]
pub fn grpc_code_at_head(status: StatusCode, headers: &HeaderMap) -> Option<i32> {
    grpc_status_in(headers)
        .or_else(|| (status != StatusCode::OK).then(|| grpc_code_for_http_status(status)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> i32 {
        parse_grpc_status(&HeaderValue::from_bytes(bytes).unwrap())
    }

    #[test]
    fn well_formed_codes() {
        for code in 0..=16 {
            assert_eq!(read(code.to_string().as_bytes()), code);
            assert_eq!(read(format!(" \t{code} ").as_bytes()), code);
        }
        assert_eq!(read(b"014"), 14);
    }

    #[test]
    fn malformed_codes_are_unknown() {
        for value in [
            "+0",
            "-0",
            "+5",
            "-1",
            "",
            " ",
            "0x0",
            "1.0",
            "1 4",
            "17",
            "99",
            "4294967296",
            "99999999999999999999999",
            "0\u{a0}",
            "\u{3000}0",
            "\u{660}",
            "\u{ff10}",
            "O",
        ] {
            assert_eq!(read(value.as_bytes()), UNKNOWN, "{value:?}");
        }
    }
}

//! Answer modes: how a layer hands its rejection to the caller.

use std::error::Error;

use crate::Rejected;

/// The error type of the default answer mode, as in tower.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// How a layer answers: the error type it exposes and what a rejection becomes.
///
/// Three modes exist, chosen on the layer with a type-changing method, so the mode is part of
/// the service's type and costs nothing at run time:
///
/// | mode | `Error` | a rejection becomes |
/// |---|---|---|
/// | [`BoxErrorAnswer`] (default) | [`BoxError`] | `Err(Box<Rejected>)`, downcastable |
/// | [`HttpAnswer`] (`.http()`) | the inner error, unchanged | `Ok` 503 (429 for a budget) with `Retry-After` and a `text/plain` line naming the layer |
/// | [`GrpcAnswer`] (`.grpc()`) | the inner error, unchanged | `Ok` Trailers-Only: `grpc-status` 14 (8 for a bulkhead) |
///
/// Keeping the inner error in the HTTP and gRPC modes keeps axum's `Infallible` (no
/// `HandleErrorLayer` needed) and tonic's `named_layer` working.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot answer a rejection as a `{Res}`",
    label = "the layer answers its rejections in this mode",
    note = "`.http()` answers with an `http::Response<B>` holding a line of text: the body `B` must implement `From<String>` (axum's `Body`, `String`, `Full<Bytes>`, `Vec<u8>` do); map another body under the layer, or keep the default mode",
    note = "`.grpc()` answers with an `http::Response<B>` whose body `B` implements `Default`; the default mode needs an inner error that converts into `BoxError`"
)]
pub trait Answer<Res, E> {
    /// The error type of the layered service.
    type Error;

    /// Converts an error from the inner service.
    fn inner_error(error: E) -> Self::Error;

    /// Views an error for classification.
    fn error_ref(error: &Self::Error) -> &(dyn Error + 'static);

    /// Answers a rejection.
    fn rejected(rejected: Rejected) -> Result<Res, Self::Error>;
}

/// The default answer mode: errors become [`BoxError`]; a rejection is `Err(Box<Rejected>)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BoxErrorAnswer;

impl<Res, E: Into<BoxError>> Answer<Res, E> for BoxErrorAnswer {
    type Error = BoxError;

    fn inner_error(error: E) -> BoxError {
        error.into()
    }

    fn error_ref(error: &BoxError) -> &(dyn Error + 'static) {
        &**error
    }

    fn rejected(rejected: Rejected) -> Result<Res, BoxError> {
        Err(Box::new(rejected))
    }
}

#[cfg(feature = "http")]
mod http_modes {
    use super::*;
    use crate::retry_after::{GRPC_PUSHBACK, retry_after_value};
    use http::header::{CONTENT_TYPE, RETRY_AFTER};
    use http::{HeaderValue, Response, StatusCode};
    use std::time::Duration;

    /// The `.http()` answer mode: a rejection is an HTTP response
    /// ([`Rejected::http_text_response`]); inner errors pass unchanged. The response body type
    /// must implement `From<String>` (axum's `Body`, `String`, `Full<Bytes>` do).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct HttpAnswer;

    /// The `.grpc()` answer mode: a rejection is a gRPC Trailers-Only response; inner errors
    /// pass unchanged.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct GrpcAnswer;

    /// Both modes keep the inner error and answer a rejection with a response.
    macro_rules! response_answer {
        ($mode:ty, $body:path, $respond:ident) => {
            impl<B: $body, E: Error + 'static> Answer<Response<B>, E> for $mode {
                type Error = E;

                fn inner_error(error: E) -> E {
                    error
                }

                fn error_ref(error: &E) -> &(dyn Error + 'static) {
                    error
                }

                fn rejected(rejected: Rejected) -> Result<Response<B>, E> {
                    Ok(rejected.$respond())
                }
            }
        };
    }

    // The HTTP answer writes a short text body naming the layer, so the body type must be
    // buildable from text (axum's `Body`, `String`, `Full<Bytes>`, `Vec<u8>`...); a gRPC answer
    // says it all in headers.
    response_answer!(HttpAnswer, From<String>, http_text_response);
    response_answer!(GrpcAnswer, Default, grpc_response);

    /// No type is a response these modes cannot build and still answer with: this second
    /// impl never applies. It exists so that a body type missing `From<String>` (or
    /// `Default`) gets `Answer`'s hint naming the fix, instead of a bare unsatisfied bound.
    mod never {
        pub trait Unanswerable {
            fn unreachable() -> Self;
        }
    }

    macro_rules! hint_only {
        ($mode:ty) => {
            impl<Res: never::Unanswerable, E: Error + 'static> Answer<Res, E> for $mode {
                type Error = E;

                fn inner_error(error: E) -> E {
                    error
                }

                fn error_ref(error: &E) -> &(dyn Error + 'static) {
                    error
                }

                fn rejected(_rejected: Rejected) -> Result<Res, E> {
                    Ok(Res::unreachable())
                }
            }
        };
    }

    hint_only!(HttpAnswer);
    hint_only!(GrpcAnswer);

    impl Rejected {
        /// The HTTP answer to this rejection: 503 (429 for an exhausted budget) with
        /// `Retry-After` in whole seconds, rounded up, when the layer knows it; empty body (the
        /// `.http()` mode answers with [`http_text_response`](Self::http_text_response)).
        ///
        /// The rejection rides along as a response extension, so the classifiers of outer
        /// layers ignore it rather than count the 503 against the dependency.
        ///
        /// ```
        /// use std::time::Duration;
        /// use tower_outcome::{LayerKind, Reason, Rejected};
        ///
        /// let res: http::Response<()> = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen)
        ///     .with_retry_after(Duration::from_millis(1500))
        ///     .http_response();
        /// assert_eq!(res.status(), 503);
        /// assert_eq!(res.headers()["retry-after"], "2");
        /// ```
        #[must_use]
        pub fn http_response<B: Default>(&self) -> Response<B> {
            let mut res = Response::new(B::default());
            *res.status_mut() =
                StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            if let Some(delay) = self.retry_after() {
                res.headers_mut()
                    .insert(RETRY_AFTER, retry_after_value(delay));
            }
            res.extensions_mut().insert(self.clone());
            res
        }

        /// The HTTP answer of the `.http()` mode: as [`http_response`](Self::http_response), with
        /// a one-line `text/plain` body saying which layer refused and why, for whoever reads it
        /// in a terminal or a log.
        ///
        /// ```
        /// use tower_outcome::{LayerKind, Reason, Rejected};
        ///
        /// let res: http::Response<String> = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen)
        ///     .with_name("inventory")
        ///     .http_text_response();
        /// assert_eq!(res.status(), 503);
        /// assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        /// assert_eq!(res.body(), "circuit breaker \"inventory\" is open\n");
        /// ```
        #[must_use]
        pub fn http_text_response<B: From<String>>(&self) -> Response<B> {
            let (parts, ()) = self.http_response::<()>().into_parts();
            let mut res = Response::from_parts(parts, B::from(format!("{self}\n")));
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            res
        }

        /// The gRPC answer to this rejection, Trailers-Only: HTTP 200,
        /// `content-type: application/grpc`, `grpc-status` ([`grpc_code`](Self::grpc_code)),
        /// a percent-encoded `grpc-message`, and `grpc-retry-pushback-ms` when the layer knows
        /// when to come back (in whole milliseconds rounded up, as `Retry-After` rounds its
        /// seconds: 999 µs left is `1`, never `0`, which would mean "retry now"). Like [`http_response`](Self::http_response), it carries the
        /// rejection as a response extension.
        ///
        /// ```
        /// use tower_outcome::{LayerKind, Reason, Rejected};
        ///
        /// let res: http::Response<()> =
        ///     Rejected::new(LayerKind::Bulkhead, Reason::BulkheadFull).grpc_response();
        /// assert_eq!(res.status(), 200);
        /// assert_eq!(res.headers()["grpc-status"], "8");
        /// assert_eq!(res.headers()["grpc-message"], "bulkhead is full");
        /// ```
        #[must_use]
        pub fn grpc_response<B: Default>(&self) -> Response<B> {
            let mut res = grpc_trailers_only(
                self.grpc_code(),
                Some(&self.to_string()),
                self.retry_after(),
            );
            res.extensions_mut().insert(self.clone());
            res
        }
    }

    /// A gRPC Trailers-Only response: HTTP 200, `content-type: application/grpc`,
    /// `grpc-status: code`, `grpc-message` (percent-encoded) and `grpc-retry-pushback-ms`
    /// (rounded up, like `Retry-After`) when given.
    ///
    /// This is how the family answers in `.grpc()` mode; it carries no [`Rejected`], so use it
    /// for an answer that must look exactly like the dependency's own (fault injection).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_outcome::grpc_trailers_only;
    ///
    /// let res: http::Response<()> =
    ///     grpc_trailers_only(14, Some("down"), Some(Duration::from_micros(999)));
    /// assert_eq!(res.headers()["grpc-status"], "14");
    /// assert_eq!(res.headers()["grpc-retry-pushback-ms"], "1");
    /// ```
    #[must_use]
    pub fn grpc_trailers_only<B: Default>(
        code: i32,
        message: Option<&str>,
        pushback: Option<Duration>,
    ) -> Response<B> {
        let mut res = Response::new(B::default());
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(code));
        if let Some(Ok(message)) = message.map(|m| HeaderValue::from_str(&percent_encode(m))) {
            headers.insert("grpc-message", message);
        }
        if let Some(delay) = pushback {
            let ms = u64::try_from(delay.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
            headers.insert(GRPC_PUSHBACK, HeaderValue::from(ms));
        }
        res
    }

    /// gRPC's `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`; so are
    /// spaces at either end, since a field value must not start or end with whitespace
    /// (RFC 9113 §8.2.1; HTTP/1.1 parsers strip it). Any percent-decoder, tonic's included,
    /// reads back the text as given.
    fn percent_encode(message: &str) -> String {
        let bytes = message.as_bytes();
        let first = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
        let last = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        let mut out = String::with_capacity(message.len());
        for (i, &byte) in bytes.iter().enumerate() {
            let at_edge = byte == b' ' && (i < first || i >= last);
            if (0x20..=0x7e).contains(&byte) && byte != b'%' && !at_edge {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::{LayerKind, Reason};
        use std::time::Duration;

        #[test]
        fn grpc_message_is_percent_encoded() {
            assert_eq!(percent_encode("a \"b\" 100% é"), "a \"b\" 100%25 %C3%A9");
        }

        #[test]
        fn grpc_message_never_starts_or_ends_with_a_space() {
            // Before: written raw, a malformed field value (RFC 9113 §8.2.1).
            for (text, written) in [
                (" is open", "%20is open"),
                ("down ", "down%20"),
                ("  a b  ", "%20%20a b%20%20"),
                (" ", "%20"),
                ("", ""),
                ("\ta\t", "%09a%09"),
            ] {
                assert_eq!(percent_encode(text), written, "{text:?}");
            }
            let res: Response<()> =
                Rejected::new(LayerKind::Other(""), Reason::CircuitOpen).grpc_response();
            assert_eq!(res.headers()["grpc-message"], "%20is open");
        }

        #[test]
        fn grpc_answer_carries_pushback() {
            let res: Response<()> = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen)
                .with_name("db")
                .with_retry_after(Duration::from_millis(2500))
                .grpc_response();
            assert_eq!(res.headers()["content-type"], "application/grpc");
            assert_eq!(res.headers()["grpc-status"], "14");
            assert_eq!(
                res.headers()["grpc-message"],
                "circuit breaker \"db\" is open"
            );
            assert_eq!(res.headers()["grpc-retry-pushback-ms"], "2500");
        }

        #[test]
        fn answers_carry_the_rejection() {
            let rejected = Rejected::new(LayerKind::Bulkhead, Reason::BulkheadFull);
            let http: Response<()> = rejected.http_response();
            let grpc: Response<()> = rejected.grpc_response();
            assert_eq!(http.extensions().get::<Rejected>(), Some(&rejected));
            assert_eq!(grpc.extensions().get::<Rejected>(), Some(&rejected));
        }

        #[test]
        fn the_http_mode_answers_with_a_text_line_naming_the_layer() {
            let rejected = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen).with_name("db");
            let res: Response<String> =
                <HttpAnswer as Answer<Response<String>, std::io::Error>>::rejected(rejected)
                    .unwrap();
            assert_eq!(res.status(), 503);
            assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
            assert_eq!(res.body(), "circuit breaker \"db\" is open\n");
            assert!(res.extensions().get::<Rejected>().is_some());
        }

        #[test]
        fn grpc_pushback_is_rounded_up_like_retry_after() {
            for (left, written) in [
                (Duration::from_micros(999), "1"),
                (Duration::from_nanos(1), "1"),
                (Duration::from_micros(1_500_500), "1501"),
                (Duration::from_millis(2500), "2500"),
                (Duration::ZERO, "0"),
            ] {
                let res: Response<()> = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen)
                    .with_retry_after(left)
                    .grpc_response();
                assert_eq!(res.headers()["grpc-retry-pushback-ms"], written, "{left:?}");
            }
        }

        #[test]
        fn budget_answers_429() {
            let res: Response<()> =
                Rejected::new(LayerKind::Bulkhead, Reason::BudgetExhausted).http_response();
            assert_eq!(res.status(), 429);
            assert!(res.headers().get("retry-after").is_none());
        }
    }
}

#[cfg(feature = "http")]
pub use http_modes::{GrpcAnswer, HttpAnswer, grpc_trailers_only};

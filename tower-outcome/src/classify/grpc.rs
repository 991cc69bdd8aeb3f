use std::error::Error;

use http::{HeaderMap, Response};
use http_body::Body;

use crate::grpc_code::{grpc_code_at_head, grpc_code_for_http_status, grpc_status_in};
use crate::{Classify, ClassifyEos, EosBody, Outcome, Rejected, Settle, default_error_outcome};

/// Classifies gRPC responses by `grpc-status`, read from the headers (Trailers-Only answers,
/// which is how errors usually come) or else from the trailers at the end of the stream.
///
/// Defaults: `OK` (0) is a success; `UNAVAILABLE` (14), `DEADLINE_EXCEEDED` (4),
/// `RESOURCE_EXHAUSTED` (8), `INTERNAL` (13), `UNKNOWN` (2) and `DATA_LOSS` (15) are failures;
/// every other code (`CANCELLED` and the caller-fault codes) is ignored.
///
/// Where the code comes from, in this order (as the gRPC spec and tonic read it):
///
/// 1. a response answered by one of the family's layers (carrying [`Rejected`] as an
///    extension) is ignored;
/// 2. a `grpc-status` in the headers, whatever the HTTP status, settles at once;
/// 3. otherwise the stream is awaited ([`EosBody`]) and a `grpc-status` in the trailers
///    decides, whatever the HTTP status;
/// 4. a stream that ends without one is read from the HTTP status
///    ([`grpc_code_for_http_status`](crate::grpc_code_for_http_status): 502, 503, 504 and 429
///    are `UNAVAILABLE`, 200 is `UNKNOWN`, a gRPC answer must carry a status). A response
///    whose body is already at its end is classified so at once (nobody polls such a body).
///
/// A status that is not a well-formed code is `UNKNOWN`
/// ([`parse_grpc_status`](crate::parse_grpc_status)). A stream dropped before its end settles
/// nothing (cancelled). The crate docs' classification table says where this differs from
/// tonic and tower-http.
///
/// ```
/// use tower_outcome::{GrpcStatus, Outcome};
///
/// let classifier = GrpcStatus::new().ignore(8); // RESOURCE_EXHAUSTED is a quota, not ill health
/// assert_eq!(classifier.outcome(14), Outcome::Failure);
/// assert_eq!(classifier.outcome(8), Outcome::Ignore);
/// assert_eq!(classifier.outcome(5), Outcome::Ignore); // NOT_FOUND
/// assert_eq!(classifier.outcome(0), Outcome::Success);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct GrpcStatus {
    /// Bit `n` set: code `n` is a failure.
    failures: u32,
    /// The code of a stream that ends without `grpc-status`: from the HTTP status of the
    /// response whose body this classifier was moved into, `UNKNOWN` otherwise.
    missing: i32,
}

const DEFAULT_FAILURES: u32 = (1 << 14) | (1 << 4) | (1 << 8) | (1 << 13) | (1 << 2) | (1 << 15);
const UNKNOWN: i32 = 2;

impl GrpcStatus {
    /// The default classification.
    pub const fn new() -> Self {
        Self {
            failures: DEFAULT_FAILURES,
            missing: UNKNOWN,
        }
    }

    /// Counts gRPC status `code` (1..=16) as a failure; other values are left as they are.
    pub const fn failure_on(mut self, code: i32) -> Self {
        if 0 < code && code <= 16 {
            self.failures |= 1 << code;
        }
        self
    }

    /// Ignores gRPC status `code`.
    pub const fn ignore(mut self, code: i32) -> Self {
        if 0 < code && code <= 16 {
            self.failures &= !(1 << code);
        }
        self
    }

    /// The outcome of gRPC status `code`. Codes outside 0..=16 are treated as `UNKNOWN`.
    #[must_use]
    pub const fn outcome(&self, code: i32) -> Outcome {
        let code = if 0 <= code && code <= 16 {
            code
        } else {
            UNKNOWN
        };
        if code == 0 {
            Outcome::Success
        } else if self.failures & (1 << code) != 0 {
            Outcome::Failure
        } else {
            Outcome::Ignore
        }
    }

    /// The outcome a response's head already tells, for a reader that cannot wait for the
    /// trailers: the outcome of [`grpc_code_at_head`](crate::grpc_code_at_head), `None` for a
    /// 200 without `grpc-status` (its status comes in the trailers), `Some(Ignore)` for a
    /// family answer.
    ///
    /// ```
    /// use tower_outcome::{GrpcStatus, Outcome};
    ///
    /// let res = http::Response::builder().status(500).header("grpc-status", "3").body(()).unwrap();
    /// assert_eq!(GrpcStatus::new().outcome_at_head(&res), Some(Outcome::Ignore)); // INVALID_ARGUMENT
    /// let res = http::Response::builder().status(503).body(()).unwrap();
    /// assert_eq!(GrpcStatus::new().outcome_at_head(&res), Some(Outcome::Failure));
    /// ```
    #[must_use]
    pub fn outcome_at_head<B>(&self, response: &Response<B>) -> Option<Outcome> {
        if response.extensions().get::<Rejected>().is_some() {
            return Some(Outcome::Ignore);
        }
        grpc_code_at_head(response.status(), response.headers()).map(|code| self.outcome(code))
    }
}

impl Default for GrpcStatus {
    fn default() -> Self {
        Self::new()
    }
}

impl ClassifyEos for GrpcStatus {
    fn classify_eos(&self, trailers: Option<&HeaderMap>) -> Outcome {
        self.outcome(trailers.and_then(grpc_status_in).unwrap_or(self.missing))
    }
}

impl<B: Body> Classify<Response<B>> for GrpcStatus {
    type Response<G: Settle> = Response<EosBody<B, Self, G>>;

    fn classify_response<G: Settle>(
        &self,
        response: Response<B>,
        guard: G,
    ) -> Response<EosBody<B, Self, G>> {
        let outcome = if response.extensions().get::<Rejected>().is_some() {
            // Answered by one of the family's layers: says nothing about the dependency.
            Outcome::Ignore
        } else if let Some(code) = grpc_status_in(response.headers()) {
            self.outcome(code)
        } else {
            let missing = grpc_code_for_http_status(response.status());
            // An empty body ends no stream anyone polls: no trailers will come.
            if response.body().is_end_stream() {
                self.outcome(missing)
            } else {
                let classifier = Self { missing, ..*self };
                return response.map(|body| EosBody::new(body, classifier, guard));
            }
        };
        guard.settle(outcome);
        response.map(EosBody::settled)
    }

    fn unclassified<G: Settle>(response: Response<B>) -> Response<EosBody<B, Self, G>> {
        response.map(EosBody::settled)
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        default_error_outcome(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    #[derive(Clone, Default)]
    struct Spy(Rc<Cell<Option<Outcome>>>);
    impl Settle for Spy {
        fn settle(self, outcome: Outcome) {
            self.0.set(Some(outcome));
        }
    }

    #[test]
    fn design_table() {
        let c = GrpcStatus::new();
        for code in [14, 4, 8, 13, 2, 15] {
            assert_eq!(c.outcome(code), Outcome::Failure, "{code}");
        }
        for code in [1, 3, 5, 6, 7, 9, 10, 11, 12, 16] {
            assert_eq!(c.outcome(code), Outcome::Ignore, "{code}");
        }
        assert_eq!(c.outcome(0), Outcome::Success);
        assert_eq!(c.outcome(99), Outcome::Failure);
    }

    #[test]
    fn status_in_headers_settles_at_once() {
        let spy = Spy::default();
        let res = Response::builder()
            .header("grpc-status", "14")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let _res = GrpcStatus::new().classify_response(res, spy.clone());
        assert_eq!(spy.0.get(), Some(Outcome::Failure));
    }

    #[test]
    fn a_family_answer_is_ignored() {
        use crate::{LayerKind, Reason};
        let spy = Spy::default();
        let answer: Response<http_body_util::Empty<Bytes>> =
            Rejected::new(LayerKind::Bulkhead, Reason::BulkheadFull).grpc_response();
        let _res = GrpcStatus::new().classify_response(answer, spy.clone());
        assert_eq!(spy.0.get(), Some(Outcome::Ignore));
    }

    #[test]
    fn an_empty_body_without_grpc_status_is_unknown_at_once() {
        let spy = Spy::default();
        let res = Response::builder()
            .header("content-type", "application/grpc")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let res = GrpcStatus::new().classify_response(res, spy.clone());
        // Nobody polls a body that is already at its end: it is classified now, as UNKNOWN.
        assert_eq!(spy.0.get(), Some(GrpcStatus::new().outcome(2)));
        assert_eq!(spy.0.get(), Some(Outcome::Failure));
        drop(res);
        assert_eq!(spy.0.get(), Some(Outcome::Failure));
    }

    #[test]
    fn http_503_is_unavailable() {
        let spy = Spy::default();
        let res = Response::builder()
            .status(503)
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let _res = GrpcStatus::new().classify_response(res, spy.clone());
        assert_eq!(spy.0.get(), Some(Outcome::Failure));
    }

    /// A body that yields one data frame, then optional trailers.
    struct Frames(std::collections::VecDeque<http_body::Frame<Bytes>>);
    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn streamed(trailer: Option<&'static str>) -> Response<Frames> {
        let mut frames = std::collections::VecDeque::new();
        frames.push_back(http_body::Frame::data(Bytes::from_static(b"x")));
        if let Some(code) = trailer {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", code.parse().unwrap());
            frames.push_back(http_body::Frame::trailers(trailers));
        }
        Response::new(Frames(frames))
    }

    #[tokio::test]
    async fn trailers_settle_at_end_of_stream() {
        for (trailer, expected) in [
            (Some("0"), Outcome::Success),
            (Some("13"), Outcome::Failure),
            (Some("5"), Outcome::Ignore),
            (None, Outcome::Failure),
        ] {
            let spy = Spy::default();
            let res = GrpcStatus::new().classify_response(streamed(trailer), spy.clone());
            assert_eq!(spy.0.get(), None, "not settled before the end");
            res.into_body().collect().await.unwrap();
            assert_eq!(spy.0.get(), Some(expected), "{trailer:?}");
        }
    }

    #[tokio::test]
    async fn dropped_stream_settles_nothing() {
        let spy = Spy::default();
        let res = GrpcStatus::new().classify_response(streamed(Some("13")), spy.clone());
        let mut body = res.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(body);
        assert_eq!(spy.0.get(), None);
        assert_eq!(Rc::strong_count(&spy.0), 1, "guard dropped with the body");
    }
}

//! A classifier for `reqwest::Client`'s responses and errors.

use std::error::Error;

use http::StatusCode;

use crate::{Classify, HttpStatus, Outcome, Rejected, Settle, default_error_outcome};

/// Classifies `reqwest::Response`s by status code, and `reqwest::Error`s by kind, so a breaker
/// in front of a `reqwest::Client` trips on 5xx answers and on connection failures.
///
/// Statuses are read as [`HttpStatus`] reads them (500, 502, 503, 504 and 408 are failures;
/// 429, 501, 505 and the other 4xx are ignored); give your own with
/// [`from_status`](Self::from_status). Errors: a request that could not be built (a bad URL)
/// or a redirect loop is your request's fault and is ignored; every other error (connect
/// refused or reset, timeout, a body cut short) is a failure; the family's own rejections are
/// ignored.
///
/// ```
/// use http::StatusCode;
/// use tower_outcome::{HttpStatus, Outcome, ReqwestStatus};
///
/// let classifier = ReqwestStatus::new();
/// assert_eq!(classifier.outcome(StatusCode::INTERNAL_SERVER_ERROR), Outcome::Failure);
/// assert_eq!(classifier.outcome(StatusCode::NOT_FOUND), Outcome::Ignore);
///
/// // 429 counted as ill health too:
/// let strict = ReqwestStatus::from_status(HttpStatus::new().failure_on(StatusCode::TOO_MANY_REQUESTS));
/// assert_eq!(strict.outcome(StatusCode::TOO_MANY_REQUESTS), Outcome::Failure);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct ReqwestStatus {
    status: HttpStatus,
}

impl ReqwestStatus {
    /// The default classification (that of [`HttpStatus::new`]).
    pub const fn new() -> Self {
        Self {
            status: HttpStatus::new(),
        }
    }

    /// Classifies statuses as `status` does.
    pub const fn from_status(status: HttpStatus) -> Self {
        Self { status }
    }

    /// The outcome of a response with `status`.
    #[must_use]
    pub const fn outcome(&self, status: StatusCode) -> Outcome {
        self.status.outcome(status)
    }

    /// The outcome of an error returned instead of a response.
    #[must_use]
    pub fn error_outcome(&self, error: &(dyn Error + 'static)) -> Outcome {
        match error.downcast_ref::<reqwest::Error>() {
            Some(e) if e.is_builder() || e.is_redirect() => Outcome::Ignore,
            _ => default_error_outcome(error),
        }
    }
}

impl Classify<reqwest::Response> for ReqwestStatus {
    type Response<G: Settle> = reqwest::Response;

    fn classify_response<G: Settle>(
        &self,
        response: reqwest::Response,
        guard: G,
    ) -> reqwest::Response {
        let outcome = if response.extensions().get::<Rejected>().is_some() {
            Outcome::Ignore
        } else {
            self.outcome(response.status())
        };
        guard.settle(outcome);
        response
    }

    fn unclassified<G: Settle>(response: reqwest::Response) -> reqwest::Response {
        response
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        self.error_outcome(error)
    }
}

/// [`HttpStatus`] reads a `reqwest::Response` as [`ReqwestStatus`] does, so a client preset
/// built on `HttpStatus` (such as a breaker's `.http_client()`) works in front of
/// `reqwest::Client` as it does in front of an `http::Response` client.
impl Classify<reqwest::Response> for HttpStatus {
    type Response<G: Settle> = reqwest::Response;

    fn classify_response<G: Settle>(
        &self,
        response: reqwest::Response,
        guard: G,
    ) -> reqwest::Response {
        ReqwestStatus::from_status(*self).classify_response(response, guard)
    }

    fn unclassified<G: Settle>(response: reqwest::Response) -> reqwest::Response {
        response
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        ReqwestStatus::from_status(*self).error_outcome(error)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::{LayerKind, Reason};

    struct Spy<'a>(&'a Cell<Option<Outcome>>);
    impl Settle for Spy<'_> {
        fn settle(self, outcome: Outcome) {
            self.0.set(Some(outcome));
        }
    }

    fn outcome_of(response: http::Response<&'static str>) -> Option<Outcome> {
        let seen = Cell::new(None);
        let _ =
            ReqwestStatus::new().classify_response(reqwest::Response::from(response), Spy(&seen));
        seen.get()
    }

    #[test]
    fn five_hundreds_fail_and_four_hundreds_are_ignored() {
        let status = |code| http::Response::builder().status(code).body("").unwrap();
        assert_eq!(outcome_of(status(500)), Some(Outcome::Failure));
        assert_eq!(outcome_of(status(503)), Some(Outcome::Failure));
        assert_eq!(outcome_of(status(404)), Some(Outcome::Ignore));
        assert_eq!(outcome_of(status(200)), Some(Outcome::Success));
    }

    #[test]
    fn http_status_reads_a_reqwest_response_as_reqwest_status_does() {
        let strict = HttpStatus::new().failure_on(StatusCode::TOO_MANY_REQUESTS);
        for code in [200, 404, 429, 500, 503] {
            let response = || http::Response::builder().status(code).body("").unwrap();
            let (ours, theirs) = (Cell::new(None), Cell::new(None));
            let _ = strict.classify_response(reqwest::Response::from(response()), Spy(&ours));
            let _ = ReqwestStatus::from_status(strict)
                .classify_response(reqwest::Response::from(response()), Spy(&theirs));
            assert_eq!(ours.get(), theirs.get(), "{code}");
        }
    }

    #[test]
    fn a_family_answer_is_ignored() {
        let answer: http::Response<&'static str> =
            Rejected::new(LayerKind::Breaker, Reason::CircuitOpen).http_response();
        assert_eq!(outcome_of(answer), Some(Outcome::Ignore));
    }

    #[tokio::test]
    async fn a_bad_url_is_ignored_and_a_refused_connection_fails() {
        let classifier = ReqwestStatus::new();
        let client = reqwest::Client::new();
        let bad = client.get("not a url").send().await.unwrap_err();
        assert_eq!(classifier.classify_error(&bad), Outcome::Ignore);
        // A loopback port just freed: nothing listens on it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let refused = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert!(refused.is_connect(), "{refused:?}");
        assert_eq!(classifier.classify_error(&refused), Outcome::Failure);
        let rejected = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen);
        assert_eq!(classifier.classify_error(&rejected), Outcome::Ignore);
    }
}

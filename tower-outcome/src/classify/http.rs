use std::error::Error;

use http::{Response, StatusCode};

use crate::{Classify, Outcome, Rejected, Settle, default_error_outcome};

/// Classifies HTTP responses by status code.
///
/// Defaults: 500, 502, 503, 504 and 408 are failures; 501, 505, 429 and the other
/// 4xx codes are ignored (the caller's fault or a rate limit, not ill health); 1xx, 2xx and 3xx
/// are successes; any other 5xx is a failure, and so is a status HTTP does not define (600 to
/// 999, which `http` accepts). Errors are failures except the family's
/// rejections, and so is a response answered by one of the family's layers (it carries the
/// [`Rejected`](crate::Rejected) as an extension): it says nothing about the dependency. Each code can be moved with [`failure_on`](Self::failure_on) and
/// [`ignore`](Self::ignore).
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_outcome::{HttpStatus, Outcome};
///
/// let classifier = HttpStatus::new().ignore(StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(classifier.outcome(StatusCode::BAD_GATEWAY), Outcome::Failure);
/// assert_eq!(classifier.outcome(StatusCode::SERVICE_UNAVAILABLE), Outcome::Ignore);
/// assert_eq!(classifier.outcome(StatusCode::NOT_FOUND), Outcome::Ignore);
/// assert_eq!(classifier.outcome(StatusCode::OK), Outcome::Success);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct HttpStatus {
    /// One bit per status code 400..=599 that is an exception to the default by range.
    failures_4xx: u128,
    failures_5xx: u128,
}

impl HttpStatus {
    /// The default classification.
    pub const fn new() -> Self {
        let mut failures_5xx = u128::MAX;
        failures_5xx &= !(1 << 1); // 501 Not Implemented
        failures_5xx &= !(1 << 5); // 505 HTTP Version Not Supported
        Self {
            failures_4xx: 1 << 8, // 408 Request Timeout
            failures_5xx,
        }
    }

    /// Counts `status` as a failure. Only 4xx and 5xx codes can be failures; others are left as they are.
    pub const fn failure_on(mut self, status: StatusCode) -> Self {
        match status.as_u16() {
            code @ 400..=499 => self.failures_4xx |= 1 << (code - 400),
            code @ 500..=599 => self.failures_5xx |= 1 << (code - 500),
            _ => {}
        }
        self
    }

    /// Ignores `status`: it neither trips nor heals the breaker.
    pub const fn ignore(mut self, status: StatusCode) -> Self {
        match status.as_u16() {
            code @ 400..=499 => self.failures_4xx &= !(1 << (code - 400)),
            code @ 500..=599 => self.failures_5xx &= !(1 << (code - 500)),
            _ => {}
        }
        self
    }

    /// The outcome of a response with `status`.
    #[must_use]
    pub const fn outcome(&self, status: StatusCode) -> Outcome {
        match status.as_u16() {
            code @ 400..=499 if self.failures_4xx & (1 << (code - 400)) != 0 => Outcome::Failure,
            400..=499 => Outcome::Ignore,
            code @ 500..=599 if self.failures_5xx & (1 << (code - 500)) != 0 => Outcome::Failure,
            500..=599 => Outcome::Ignore,
            // Not a status HTTP defines: a dependency answering with one is misbehaving.
            600..=999 => Outcome::Failure,
            _ => Outcome::Success,
        }
    }
}

impl Default for HttpStatus {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Classify<Response<B>> for HttpStatus {
    type Response<G: Settle> = Response<B>;

    fn classify_response<G: Settle>(&self, response: Response<B>, guard: G) -> Response<B> {
        let outcome = if response.extensions().get::<Rejected>().is_some() {
            Outcome::Ignore
        } else {
            self.outcome(response.status())
        };
        guard.settle(outcome);
        response
    }

    fn unclassified<G: Settle>(response: Response<B>) -> Response<B> {
        response
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        default_error_outcome(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_table() {
        let c = HttpStatus::new();
        for code in [500, 502, 503, 504, 408, 599] {
            assert_eq!(
                c.outcome(StatusCode::from_u16(code).unwrap()),
                Outcome::Failure,
                "{code}"
            );
        }
        for code in [501, 505, 429, 400, 404, 499] {
            assert_eq!(
                c.outcome(StatusCode::from_u16(code).unwrap()),
                Outcome::Ignore,
                "{code}"
            );
        }
        for code in [100, 200, 204, 301, 399] {
            assert_eq!(
                c.outcome(StatusCode::from_u16(code).unwrap()),
                Outcome::Success,
                "{code}"
            );
        }
    }

    #[test]
    fn statuses_past_599_are_failures() {
        let c = HttpStatus::new();
        for code in [600, 700, 999] {
            assert_eq!(
                c.outcome(StatusCode::from_u16(code).unwrap()),
                Outcome::Failure,
                "{code}"
            );
        }
    }

    #[test]
    fn a_family_answer_is_ignored() {
        use crate::{LayerKind, Reason};
        use std::cell::Cell;
        struct Spy<'a>(&'a Cell<Option<Outcome>>);
        impl Settle for Spy<'_> {
            fn settle(self, outcome: Outcome) {
                self.0.set(Some(outcome));
            }
        }
        let seen = Cell::new(None);
        let answer: Response<()> =
            Rejected::new(LayerKind::Bulkhead, Reason::BulkheadFull).http_response();
        let _ = HttpStatus::new().classify_response(answer, Spy(&seen));
        assert_eq!(seen.get(), Some(Outcome::Ignore));
        let plain = Response::builder().status(503).body(()).unwrap();
        let _ = HttpStatus::new().classify_response(plain, Spy(&seen));
        assert_eq!(seen.get(), Some(Outcome::Failure));
    }

    #[test]
    fn moves_codes() {
        let c = HttpStatus::new()
            .failure_on(StatusCode::TOO_MANY_REQUESTS)
            .ignore(StatusCode::INTERNAL_SERVER_ERROR)
            .failure_on(StatusCode::OK);
        assert_eq!(c.outcome(StatusCode::TOO_MANY_REQUESTS), Outcome::Failure);
        assert_eq!(
            c.outcome(StatusCode::INTERNAL_SERVER_ERROR),
            Outcome::Ignore
        );
        assert_eq!(c.outcome(StatusCode::OK), Outcome::Success);
    }
}

//! Policies: per-class retries and back-off, and the idempotency gate.

use std::fmt;

use tokio::time::Instant;

use crate::{Backoff, Class};

/// How one class of failure is retried: how many times, and with which back-off.
///
/// ```
/// use std::time::Duration;
/// use tower_heal::{Backoff, ClassPolicy};
///
/// let rate_limited = ClassPolicy::new(3, Backoff::fixed(Duration::from_secs(60)));
/// let never = ClassPolicy::never();
/// assert_eq!(never.max_retries, 0);
/// # let _ = rate_limited;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassPolicy {
    /// Retries after the first attempt (attempts = 1 + `max_retries`).
    pub max_retries: u32,
    /// The back-off before each retry.
    pub backoff: Backoff,
}

impl ClassPolicy {
    /// `max_retries` retries with `backoff`.
    #[must_use]
    pub const fn new(max_retries: u32, backoff: Backoff) -> Self {
        Self {
            max_retries,
            backoff,
        }
    }

    /// Never retried.
    #[must_use]
    pub fn never() -> Self {
        Self::new(0, Backoff::none())
    }
}

/// The policy table: the default policy and the per-class ones.
#[derive(Clone, Debug)]
pub(crate) struct Policies {
    pub(crate) default: ClassPolicy,
    pub(crate) classes: Vec<(String, ClassPolicy)>,
}

impl Policies {
    /// The policy of `class`: configured, else `validation_error` never retries, else the
    /// default. (Looked up on the failure path only.)
    pub(crate) fn of(&self, class: Class) -> ClassPolicy {
        let name = class.as_str();
        self.classes
            .iter()
            .find(|(configured, _)| configured == name)
            .map(|(_, policy)| *policy)
            .unwrap_or_else(|| {
                if class == Class::VALIDATION_ERROR {
                    ClassPolicy::never()
                } else {
                    self.default
                }
            })
    }

    /// Sets (or replaces) the policy of `class`.
    pub(crate) fn set(&mut self, class: &str, policy: ClassPolicy) {
        let class = canonical(class);
        match self.classes.iter_mut().find(|(name, _)| name == class) {
            Some((_, existing)) => *existing = policy,
            None => self.classes.push((class.to_owned(), policy)),
        }
    }
}

/// The course's configurations also spell some classes in the plural.
pub(crate) fn canonical(class: &str) -> &str {
    match class {
        "network_errors" => "network_error",
        "timeouts" => "timeout",
        "validation_errors" => "validation_error",
        other => other,
    }
}

/// Decides, before the first attempt, whether a request may be retried at all, and whether
/// it carries a deadline retries must not overrun.
pub trait RetryGate<Req> {
    /// `true`: the request may be sent more than once.
    fn allows(&self, request: &Req) -> bool;

    /// A deadline the caller gave (retries whose back-off would end after it are not
    /// started). `None` by default.
    fn deadline(&self, _request: &Req) -> Option<Instant> {
        None
    }
}

/// Every request may be retried (the default for services that are not HTTP).
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyRequest;

impl<Req> RetryGate<Req> for AnyRequest {
    #[inline]
    fn allows(&self, _request: &Req) -> bool {
        true
    }
}

/// Requests a predicate accepts may be retried.
///
/// ```
/// use tower_heal::{RetryGate, RetryIf};
///
/// let gate = RetryIf::new(|order: &(&str, u32)| order.0 == "read");
/// assert!(gate.allows(&("read", 1)));
/// assert!(!gate.allows(&("charge", 1)));
/// ```
#[derive(Clone)]
pub struct RetryIf<F>(F);

impl<F> RetryIf<F> {
    /// Wraps `predicate`.
    pub const fn new(predicate: F) -> Self {
        Self(predicate)
    }
}

impl<F> fmt::Debug for RetryIf<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RetryIf")
            .field(&std::any::type_name::<F>())
            .finish()
    }
}

impl<F, Req> RetryGate<Req> for RetryIf<F>
where
    F: Fn(&Req) -> bool,
{
    fn allows(&self, request: &Req) -> bool {
        (self.0)(request)
    }
}

/// A deadline for the whole call, across retries, put in an HTTP request's extensions: a
/// back-off that would end after it is not started.
///
/// ```
/// use std::time::Duration;
/// use tower_heal::Deadline;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(Deadline::after(Duration::from_secs(2)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// `timeout` from now (tokio's clock).
    #[must_use]
    pub fn after(timeout: std::time::Duration) -> Self {
        Self(Instant::now() + timeout)
    }
}

#[cfg(feature = "http")]
pub use self::http_gate::IdempotentMethods;

#[cfg(feature = "http")]
mod http_gate {
    use tokio::time::Instant;

    use super::{Deadline, RetryGate};

    /// The HTTP default (DESIGN.md §5): only idempotent methods (GET, HEAD, OPTIONS, PUT,
    /// DELETE, TRACE) or requests carrying an `Idempotency-Key` header are retried. Also reads
    /// a [`Deadline`] from the request's extensions.
    ///
    /// ```
    /// use tower_heal::{IdempotentMethods, RetryGate};
    ///
    /// let post = http::Request::post("/charge").body(()).unwrap();
    /// assert!(!IdempotentMethods.allows(&post));
    /// let keyed = http::Request::post("/charge").header("idempotency-key", "order-42").body(()).unwrap();
    /// assert!(IdempotentMethods.allows(&keyed));
    /// assert!(IdempotentMethods.allows(&http::Request::get("/").body(()).unwrap()));
    /// ```
    #[derive(Clone, Copy, Debug, Default)]
    pub struct IdempotentMethods;

    impl<B> RetryGate<http::Request<B>> for IdempotentMethods {
        fn allows(&self, request: &http::Request<B>) -> bool {
            use http::Method;
            matches!(
                *request.method(),
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::PUT
                    | Method::DELETE
                    | Method::TRACE
            ) || request.headers().contains_key("idempotency-key")
        }

        fn deadline(&self, request: &http::Request<B>) -> Option<Instant> {
            request.extensions().get::<Deadline>().map(|d| d.0)
        }
    }

    impl<B> RetryGate<http::Request<B>> for super::AnyRequestWithDeadline {
        fn allows(&self, _request: &http::Request<B>) -> bool {
            true
        }

        fn deadline(&self, request: &http::Request<B>) -> Option<Instant> {
            request.extensions().get::<Deadline>().map(|d| d.0)
        }
    }
}

/// Every HTTP request may be retried (gRPC's default: `UNAVAILABLE` means the server did not
/// process it); a [`Deadline`] in the extensions is honoured.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyRequestWithDeadline;

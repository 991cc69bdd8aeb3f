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
    /// The policy of `class`: configured, else `validation_error` and `circuit_open` never
    /// retry, else the default. (Looked up on the failure path only.)
    pub(crate) fn of(&self, class: Class) -> ClassPolicy {
        let name = class.as_str();
        self.classes
            .iter()
            .find(|(configured, _)| configured == name)
            .map(|(_, policy)| *policy)
            .unwrap_or_else(|| {
                if class == Class::VALIDATION_ERROR || class == Class::CIRCUIT_OPEN {
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

/// Configurations also spell some classes in the plural.
pub(crate) fn canonical(class: &str) -> &str {
    match class {
        "network_errors" => "network_error",
        "timeouts" => "timeout",
        "validation_errors" => "validation_error",
        other => other,
    }
}

/// Decides, before the first attempt, whether a request may be retried at all, whether it
/// is idempotent, and whether it carries a deadline retries must not overrun.
pub trait RetryGate<Req> {
    /// `true`: the request may be sent more than once.
    fn allows(&self, request: &Req) -> bool;

    /// `true`: running the request twice is harmless, so a failure after it may have
    /// reached the server (a timeout, a connection lost mid-call:
    /// [`Failure::maybe_sent`](crate::Failure::maybe_sent)) may be retried. Asked only of
    /// requests [`allows`](Self::allows) accepts; `true` by default.
    fn idempotent(&self, _request: &Req) -> bool {
        true
    }

    /// A deadline the caller gave (retries whose back-off would end after it are not
    /// started). `None` by default.
    fn deadline(&self, _request: &Req) -> Option<Instant> {
        None
    }
}

/// Every request may be retried after a failure that never reached the server; the
/// default gate of [`RetryLayer::new`](crate::RetryLayer::new),
/// [`builder`](crate::RetryLayer::builder) and [`from_config`](crate::RetryLayer::from_config).
///
/// A request that is not an `http::Request` is idempotent (retried after a timeout too). An
/// `http::Request` is idempotent when its method is (GET, HEAD, OPTIONS, PUT, DELETE, TRACE)
/// or it carries an `Idempotency-Key`, so a POST that timed out is not sent twice. Without
/// specialisation the method is read for the common bodies only (`()`, `String`,
/// `Vec<u8>`, `Bytes`, `&'static str`, [`ReplayBody`](crate::ReplayBody) of those); an
/// `http::Request` with another body counts as not idempotent. For HTTP, prefer
/// [`RetryBuilder::http_client`](crate::RetryBuilder::http_client), whose [`IdempotentMethods`] reads every
/// request.
///
/// ```
/// use tower_heal::{AnyRequest, RetryGate};
///
/// assert!(AnyRequest.idempotent(&7_u32));
/// let post = http::Request::post("/charge").body(String::new()).unwrap();
/// assert!(AnyRequest.allows(&post));
/// assert!(!AnyRequest.idempotent(&post));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyRequest;

impl<Req: 'static> RetryGate<Req> for AnyRequest {
    #[inline]
    fn allows(&self, _request: &Req) -> bool {
        true
    }

    #[inline]
    fn idempotent(&self, request: &Req) -> bool {
        #[cfg(feature = "http")]
        {
            http_gate::http_idempotent(request).unwrap_or(true)
        }
        #[cfg(not(feature = "http"))]
        {
            let _ = request;
            true
        }
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
pub use self::http_gate::{GrpcGate, IdempotentMethods};
#[cfg(feature = "http")]
pub(crate) use self::http_gate::{grpc_timeout_value, parse_grpc_timeout};

#[cfg(feature = "http")]
mod http_gate {
    use std::any::Any;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Deadline, RetryGate};
    use crate::ReplayBody;

    /// The method is idempotent, or the request carries an `Idempotency-Key`.
    fn idempotent<B>(request: &http::Request<B>) -> bool {
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

    /// `Some(idempotent)` for an `http::Request` (`false` when its body type is not one this
    /// function can name), `None` for any other request. Each test is a type comparison the
    /// compiler folds away.
    pub(super) fn http_idempotent<Req: 'static>(request: &Req) -> Option<bool> {
        let any = request as &dyn Any;
        macro_rules! bodies {
            ($($body:ty),*) => {$(
                if let Some(request) = any.downcast_ref::<http::Request<$body>>() {
                    return Some(idempotent(request));
                }
                if let Some(request) = any.downcast_ref::<http::Request<ReplayBody<$body>>>() {
                    return Some(idempotent(request));
                }
            )*};
        }
        bodies!(
            (),
            String,
            Vec<u8>,
            bytes::Bytes,
            &'static str,
            &'static [u8]
        );
        std::any::type_name::<Req>()
            .starts_with("http::request::Request<")
            .then_some(false)
    }

    /// The deadline of a request: its [`Deadline`] extension, or its `grpc-timeout` header
    /// from now, whichever comes first.
    pub(crate) fn request_deadline<B>(request: &http::Request<B>) -> Option<Instant> {
        let extension = request.extensions().get::<Deadline>().map(|d| d.0);
        let header = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| parse_grpc_timeout(value.as_bytes()))
            .and_then(|timeout| Instant::now().checked_add(timeout));
        match (extension, header) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A `grpc-timeout` value: 1 to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`);
    /// anything else is ignored.
    pub(crate) fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
        let (&unit, digits) = value.split_last()?;
        if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        Some(match unit {
            b'H' => Duration::from_secs(n * 3600),
            b'M' => Duration::from_secs(n * 60),
            b'S' => Duration::from_secs(n),
            b'm' => Duration::from_millis(n),
            b'u' => Duration::from_micros(n),
            b'n' => Duration::from_nanos(n),
            _ => return None,
        })
    }

    /// Writes a `grpc-timeout` value for `timeout` (rounded down, at most 8 digits, in the finest
    /// unit that fits, up to hours).
    pub(crate) fn grpc_timeout_value(timeout: Duration) -> http::HeaderValue {
        const MAX: u128 = 99_999_999;
        let (n, unit) = if timeout.as_micros() <= MAX {
            (timeout.as_micros(), 'u')
        } else if timeout.as_millis() <= MAX {
            (timeout.as_millis(), 'm')
        } else if u128::from(timeout.as_secs()) <= MAX {
            (u128::from(timeout.as_secs()), 'S')
        } else if u128::from(timeout.as_secs() / 60) <= MAX {
            (u128::from(timeout.as_secs() / 60), 'M')
        } else {
            (u128::from(timeout.as_secs() / 3600).min(MAX), 'H')
        };
        http::HeaderValue::from_str(&format!("{n}{unit}"))
            .unwrap_or_else(|_| http::HeaderValue::from_static("0n"))
    }

    /// The HTTP default: only idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or
    /// requests carrying an `Idempotency-Key` header are retried. Also reads a [`Deadline`]
    /// from the request's extensions.
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
            idempotent(request)
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
            request_deadline(request)
        }
    }

    /// The gRPC default, after gRPC's retry design (A6): every RPC may be retried when the
    /// server answers with a retried code (`UNAVAILABLE`) or when it never left the client (a
    /// refused connection or stream); a timeout or a connection lost after the RPC went out
    /// is retried only for the methods marked idempotent with
    /// [`idempotent_method`](Self::idempotent_method). The RPC's deadline (its `grpc-timeout`
    /// header, or a [`Deadline`] extension, whichever is sooner) bounds every back-off.
    ///
    /// ```
    /// use tower_heal::{GrpcGate, RetryGate};
    ///
    /// let gate = GrpcGate::new().idempotent_method("/grpc.health.v1.Health/Check");
    /// let check = http::Request::post("/grpc.health.v1.Health/Check").body(()).unwrap();
    /// let watch = http::Request::post("/grpc.health.v1.Health/Watch").body(()).unwrap();
    /// assert!(gate.allows(&watch) && !gate.idempotent(&watch));
    /// assert!(gate.idempotent(&check));
    /// ```
    #[derive(Clone, Debug, Default)]
    #[must_use]
    pub struct GrpcGate {
        idempotent: Arc<[Box<str>]>,
    }

    impl GrpcGate {
        /// No method marked idempotent.
        pub fn new() -> Self {
            Self::default()
        }

        /// Marks the method at `path` (`/package.Service/Method`) idempotent.
        pub fn idempotent_method(self, path: impl Into<String>) -> Self {
            let mut paths: Vec<Box<str>> = self.idempotent.iter().cloned().collect();
            paths.push(path.into().into_boxed_str());
            Self {
                idempotent: paths.into(),
            }
        }
    }

    impl<B> RetryGate<http::Request<B>> for GrpcGate {
        fn allows(&self, _request: &http::Request<B>) -> bool {
            true
        }

        fn idempotent(&self, request: &http::Request<B>) -> bool {
            let path = request.uri().path();
            self.idempotent.iter().any(|method| **method == *path)
        }

        fn deadline(&self, request: &http::Request<B>) -> Option<Instant> {
            request_deadline(request)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn grpc_timeouts_parse_and_write() {
            assert_eq!(
                parse_grpc_timeout(b"100m"),
                Some(Duration::from_millis(100))
            );
            assert_eq!(parse_grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
            assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
            for bad in [&b""[..], b"m", b"123456789m", b"-1m", b"10x", b"1.5S"] {
                assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
            }
            let round = |d: Duration| parse_grpc_timeout(grpc_timeout_value(d).as_bytes());
            assert_eq!(
                round(Duration::from_millis(1500)),
                Some(Duration::from_millis(1500))
            );
            assert_eq!(
                round(Duration::from_secs(200)),
                Some(Duration::from_secs(200))
            );
            assert!(round(Duration::MAX).is_some());
        }
    }
}

/// Every HTTP request may be retried, after any failure; its deadline (a [`Deadline`]
/// extension, or its `grpc-timeout` header) is honoured. For gRPC, [`GrpcGate`] (the
/// default of [`RetryBuilder::grpc_client`](crate::RetryBuilder::grpc_client)) retries a timeout only for
/// idempotent methods.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyRequestWithDeadline;

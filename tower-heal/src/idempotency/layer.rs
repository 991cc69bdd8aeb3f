//! The layer, its builder and the state its services share.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use tower_layer::Layer;

use super::builder::IdempotencyBuilder;
use tower_outcome::BoxErrorAnswer;
#[cfg(feature = "http")]
use tower_outcome::HttpAnswer;

use super::flight::Flights;
use super::{FnCodec, Idempotency};
use crate::store::ResultStore;

/// State shared by every service an [`IdempotencyLayer`] makes.
pub(crate) struct Shared<Codec> {
    pub(crate) codec: Codec,
    pub(crate) store: Arc<dyn ResultStore>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) max_wait: Duration,
    pub(crate) flights: Arc<Flights>,
    pub(crate) replays: Counter,
}

impl<Codec> Shared<Codec> {
    pub(crate) fn store_key(key: &str) -> String {
        let mut store_key = String::with_capacity(5 + key.len());
        store_key.push_str("idem:");
        store_key.push_str(key);
        store_key
    }
}

/// Server-side idempotency keys: a request carrying a key already answered gets the stored
/// response of the first completed call, and the handler does not run again.
///
/// - concurrent duplicates wait for the first call instead of running the handler, up to
///   `max_wait` (default 10 s; then HTTP 409, or the family's `Rejected`), holding no
///   downstream capacity while they wait;
/// - keys are scoped to the caller (HTTP: a hash of `Authorization` and `Cookie`, see
///   `scope_headers`): another caller sending the same key gets its own run, never the
///   first caller's answer;
/// - a key reused with another request (another fingerprint: method, path and body hash for
///   HTTP) is answered 422 (HTTP) or with the family's `Rejected` (other services);
/// - failures (errors; HTTP 5xx, 408, 429) are not stored, so a retry can succeed; a duplicate
///   waiting on a failed first call then runs itself;
/// - HTTP response bodies stream to the client as they arrive; at most `max_response_bytes`
///   is kept to store, and a larger body passes through unstored with its key marked "not
///   replayable" (a retry gets 409, the handler does not run twice). `Set-Cookie` and other
///   per-caller headers are never stored (`HttpCodec`);
/// - entries expire after `ttl` (default 24 h); the store is bounded (the default
///   [`MemoryStore`](crate::store::MemoryStore): 10,000 entries, 64 MiB) or durable (`SqliteStore`). A bounded store
///   that fills up evicts live entries before their `ttl`; each is counted in
///   `heal_store_evictions_total` and logged, and that key's next request runs again: size
///   the store for the keys of one `ttl`.
///
/// ```
/// # #[cfg(feature = "http")] {
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_heal::IdempotencyLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let charges = Arc::new(AtomicUsize::new(0));
/// let counter = charges.clone();
/// let mut svc = ServiceBuilder::new()
///     .layer(IdempotencyLayer::http().build())
///     .service_fn(move |_req: Request<Full<Bytes>>| {
///         let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
///         async move { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(format!("charge #{n}"))))) }
///     });
///
/// for _ in 0..2 {
///     let req = Request::post("/charges")
///         .header("idempotency-key", "order-12345")
///         .body(Full::new(Bytes::from("amount=100")))
///         .unwrap();
///     let res = svc.ready().await.unwrap().call(req).await.unwrap();
///     assert_eq!(res.status(), 200);
/// }
/// assert_eq!(charges.load(Ordering::SeqCst), 1, "charged once");
/// # }
/// # }
/// ```
#[must_use]
pub struct IdempotencyLayer<Codec, A = BoxErrorAnswer> {
    pub(super) shared: Arc<Shared<Codec>>,
    pub(super) _answer: PhantomData<fn() -> A>,
}

#[cfg(feature = "http")]
impl IdempotencyLayer<(), ()> {
    /// A builder for HTTP services: the key is the `Idempotency-Key` header; rejections are
    /// HTTP answers and the inner error type is kept (axum's `Infallible` stays).
    pub fn http() -> IdempotencyBuilder<super::HttpCodec, HttpAnswer> {
        IdempotencyBuilder::new(super::HttpCodec::new())
    }
}

impl IdempotencyLayer<(), ()> {
    /// A builder for any service, from closures (see [`FnCodec`]): `key` reads a request's
    /// idempotency key, `encode` and `decode` store and restore its result; errors are
    /// `BoxError`.
    pub fn from_fn<K, E, D>(key: K, encode: E, decode: D) -> IdempotencyBuilder<FnCodec<K, E, D>> {
        IdempotencyBuilder::new(FnCodec::new(key, encode, decode))
    }

    /// The old name of [`from_fn`](Self::from_fn) (it read like "one layer per key").
    #[deprecated(since = "0.1.0", note = "renamed to `IdempotencyLayer::from_fn`")]
    pub fn keyed<K, E, D>(key: K, encode: E, decode: D) -> IdempotencyBuilder<FnCodec<K, E, D>> {
        Self::from_fn(key, encode, decode)
    }
}

impl<Codec, A> Clone for IdempotencyLayer<Codec, A> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _answer: PhantomData,
        }
    }
}

impl<Codec: fmt::Debug, A> fmt::Debug for IdempotencyLayer<Codec, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("codec", &self.shared.codec)
            .field("ttl", &self.shared.ttl)
            .finish()
    }
}

impl<S, Codec, A> Layer<S> for IdempotencyLayer<Codec, A> {
    type Service = Idempotency<S, Codec, A>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency::new(inner, Arc::clone(&self.shared))
    }
}

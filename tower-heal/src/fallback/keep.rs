//! What the fallback is called with.

/// Keeps what the fallback needs of a request, before the primary consumes it.
///
/// Implemented by [`CloneRequest`] (the default) and by any `Fn(&Req) -> T`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot keep a `{Req}` for the fallback",
    label = "the fallback needs something of each request, kept before the primary runs",
    note = "the default keeps a clone, and `{Req}` is not `Clone`: say what to keep with `.keep(..)`",
    note = "for an `http::Request`, `.keep(tower_heal::fallback::keep_head)` keeps its head; any `|request: &Req| ..` closure works too"
)]
pub trait KeepRequest<Req> {
    /// What the fallback service is called with.
    type Kept;

    /// Keeps it; runs once per call, before the primary is called.
    fn keep(&self, request: &Req) -> Self::Kept;
}

/// The default [`KeepRequest`]: the fallback gets a clone of the request. (The same type is the
/// retry layer's default [`Replay`](crate::Replay): one name for "keep a clone".)
pub use crate::replay::CloneRequest;

impl<Req: Clone> KeepRequest<Req> for CloneRequest {
    type Kept = Req;

    #[inline]
    fn keep(&self, request: &Req) -> Req {
        request.clone()
    }
}

impl<F, Req, T> KeepRequest<Req> for F
where
    F: Fn(&Req) -> T,
{
    type Kept = T;

    #[inline]
    fn keep(&self, request: &Req) -> T {
        self(request)
    }
}

/// Keeps an HTTP request's head (method, URI, version, headers) with an empty body, for
/// fallbacks behind servers whose request bodies are not `Clone`: `.keep(keep_head)`.
///
/// ```
/// let req = http::Request::post("/orders").header("x-tenant", "a").body("payload").unwrap();
/// let head = tower_heal::fallback::keep_head(&req);
/// assert_eq!(head.uri(), "/orders");
/// assert_eq!(head.headers()["x-tenant"], "a");
/// ```
#[cfg(feature = "http")]
#[must_use]
pub fn keep_head<B>(request: &http::Request<B>) -> http::Request<()> {
    let mut head = http::Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.version_mut() = request.version();
    *head.headers_mut() = request.headers().clone();
    head
}

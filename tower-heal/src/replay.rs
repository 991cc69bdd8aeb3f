//! Keeping a request so it can be sent again: cloning it, or replaying its body.

/// How a request is kept so another attempt can send it again.
///
/// [`CloneRequest`] (the default) clones requests that are `Clone`. [`ReplayBodies`] keeps
/// an HTTP request whose body is not `Clone` (axum, hyper, reqwest, tonic bodies): the body
/// is buffered, up to a bound, as the first attempt sends it, and replayed from the buffer.
pub trait Replay<Req> {
    /// The request the inner service receives.
    type Request;
    /// What is kept for further attempts.
    type Kept;

    /// The request for the first attempt, and (when `keep` is true and the request can be
    /// kept) what is kept to send it again.
    fn prepare(&self, request: Req, keep: bool) -> (Self::Request, Option<Self::Kept>);

    /// The request for another attempt, or why it cannot be sent again.
    ///
    /// # Errors
    /// A short reason, used in the tracing event (for example a body over the bound).
    fn replay(&self, kept: &mut Self::Kept) -> Result<Self::Request, &'static str>;

    /// Called on a retry's request just before it is sent, after its back-off (for example
    /// to write the time left until a deadline). Does nothing by default.
    fn before_send(&self, _request: &mut Self::Request) {}
}

/// Keeps a clone of requests that are `Clone`: the default of the retry and hedge layers
/// ([`Replay`]) and of the fallback layer ([`KeepRequest`](crate::fallback::KeepRequest)).
///
/// The clone is taken before the first attempt, as tower's `Retry` does; for a request that
/// is expensive to clone, keep it behind an `Arc`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneRequest;

impl<Req: Clone> Replay<Req> for CloneRequest {
    type Request = Req;
    type Kept = Req;

    #[inline]
    fn prepare(&self, request: Req, keep: bool) -> (Req, Option<Req>) {
        if keep {
            (request.clone(), Some(request))
        } else {
            (request, None)
        }
    }

    #[inline]
    fn replay(&self, kept: &mut Req) -> Result<Req, &'static str> {
        Ok(kept.clone())
    }
}

#[cfg(feature = "http")]
pub use self::body::{Kept, ReplayBodies, ReplayBody};

#[cfg(feature = "http")]
mod body {
    use std::fmt;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::task::{Context, Poll, ready};

    use bytes::{Buf, Bytes};
    use http::HeaderMap;
    use http::header::HeaderName;
    use http_body::{Body, Frame, SizeHint};
    use tokio::time::Instant;

    use super::Replay;
    use crate::retry::policy::{grpc_timeout_value, parse_grpc_timeout};

    const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

    /// The deadline a retry's `grpc-timeout` is written from, just before it is sent.
    #[derive(Clone, Copy, Debug)]
    struct GrpcDeadline(Instant);

    /// Replays HTTP request bodies that are not `Clone`, from a buffer of at most `max_bytes`.
    ///
    /// The inner service receives `http::Request<ReplayBody<B>>`. As the first attempt sends
    /// the body, its frames are copied into the buffer; a retry replays them, then goes on
    /// with whatever of the original body was not sent yet. A body that grows past the bound
    /// goes through once, without retry, and a tracing event says so.
    ///
    /// A request with a `grpc-timeout` header is sent again with the time left until the
    /// deadline it set (a retry after the deadline is not sent).
    ///
    /// tonic's `Channel` takes `tonic::body::Body`: map the request back under the layer.
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use tower_heal::{ReplayBody, RetryLayer};
    ///
    /// let retry = RetryLayer::builder().grpc_client().build().unwrap(); // replays bodies up to 64 KiB
    /// let layers = ServiceBuilder::new()
    ///     .layer(retry)
    ///     .map_request(|req: http::Request<ReplayBody<tonic::body::Body>>| req.map(tonic::body::Body::new));
    /// # let _ = layers;
    /// ```
    #[derive(Clone, Copy, Debug)]
    pub struct ReplayBodies {
        max_bytes: usize,
    }

    impl ReplayBodies {
        /// Buffers up to `max_bytes` of each request body.
        #[must_use]
        pub const fn new(max_bytes: usize) -> Self {
            Self { max_bytes }
        }

        /// The bound.
        #[must_use]
        pub const fn max_bytes(&self) -> usize {
            self.max_bytes
        }
    }

    /// What [`ReplayBodies`] keeps of a request: its head, and the body's shared buffer.
    pub struct Kept<B> {
        parts: http::request::Parts,
        body: Arc<Mutex<State<B>>>,
        max_bytes: usize,
        /// The deadline the request's `grpc-timeout` set, when it has one.
        deadline: Option<Instant>,
    }

    impl<B> fmt::Debug for Kept<B> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Kept")
                .field("method", &self.parts.method)
                .field("uri", &self.parts.uri)
                .finish_non_exhaustive()
        }
    }

    struct State<B> {
        chunks: Vec<Bytes>,
        buffered: usize,
        trailers: Option<HeaderMap>,
        /// The rest of the original body, while no attempt holds it.
        rest: Option<Pin<Box<B>>>,
        /// The original body was read to its end: the buffer holds all of it.
        ended: bool,
        /// The body passed the bound, or failed: it cannot be sent again.
        spoiled: bool,
        /// An attempt's body holds the rest of the original body.
        in_use: bool,
    }

    fn lock<B>(state: &Mutex<State<B>>) -> MutexGuard<'_, State<B>> {
        state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    impl<B: Body> Replay<http::Request<B>> for ReplayBodies {
        type Request = http::Request<ReplayBody<B>>;
        type Kept = Kept<B>;

        fn prepare(
            &self,
            request: http::Request<B>,
            keep: bool,
        ) -> (Self::Request, Option<Self::Kept>) {
            let (parts, body) = request.into_parts();
            let too_large = body
                .size_hint()
                .lower()
                .try_into()
                .map_or(true, |lower: usize| lower > self.max_bytes);
            let state = Arc::new(Mutex::new(State {
                chunks: Vec::new(),
                buffered: 0,
                trailers: None,
                rest: Some(Box::pin(body)),
                ended: false,
                spoiled: !keep || too_large,
                in_use: false,
            }));
            let first = http::Request::from_parts(
                parts.clone(),
                ReplayBody::new(Arc::clone(&state), self.max_bytes),
            );
            let kept = keep.then(|| {
                let deadline = parts
                    .headers
                    .get(GRPC_TIMEOUT)
                    .and_then(|value| parse_grpc_timeout(value.as_bytes()))
                    .and_then(|timeout| Instant::now().checked_add(timeout));
                Kept {
                    parts,
                    body: state,
                    max_bytes: self.max_bytes,
                    deadline,
                }
            });
            (first, kept)
        }

        fn replay(&self, kept: &mut Kept<B>) -> Result<Self::Request, &'static str> {
            {
                let state = lock(&kept.body);
                if state.spoiled {
                    return Err("the request body is over the replay bound");
                }
                // Unless the whole body is buffered, only one attempt may read the rest of
                // the original: replay only once no other attempt's body is alive (the kept
                // handle is the only other owner of the state).
                if !state.ended && (state.in_use || Arc::strong_count(&kept.body) > 1) {
                    return Err("the previous attempt still holds the request body");
                }
            }
            let mut parts = kept.parts.clone();
            if let Some(deadline) = kept.deadline {
                if deadline <= Instant::now() {
                    return Err("the RPC's deadline has passed");
                }
                parts.extensions.insert(GrpcDeadline(deadline));
            }
            Ok(http::Request::from_parts(
                parts,
                ReplayBody::new(Arc::clone(&kept.body), kept.max_bytes),
            ))
        }

        fn before_send(&self, request: &mut Self::Request) {
            if let Some(GrpcDeadline(deadline)) = request.extensions_mut().remove() {
                let left = deadline.saturating_duration_since(Instant::now());
                request
                    .headers_mut()
                    .insert(GRPC_TIMEOUT, grpc_timeout_value(left));
            }
        }
    }

    /// A request body that can be sent again: frames already sent are replayed from a shared
    /// buffer, the rest comes from the original body. Made by [`ReplayBodies`].
    pub struct ReplayBody<B> {
        state: Arc<Mutex<State<B>>>,
        /// The rest of the original body, once this attempt has taken it.
        live: Option<Pin<Box<B>>>,
        /// The next buffered chunk to replay.
        position: usize,
        trailers_sent: bool,
        max_bytes: usize,
    }

    impl<B> ReplayBody<B> {
        fn new(state: Arc<Mutex<State<B>>>, max_bytes: usize) -> Self {
            Self {
                state,
                live: None,
                position: 0,
                trailers_sent: false,
                max_bytes,
            }
        }
    }

    impl<B> fmt::Debug for ReplayBody<B> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ReplayBody")
                .field("position", &self.position)
                .field("max_bytes", &self.max_bytes)
                .finish_non_exhaustive()
        }
    }

    impl<B> Drop for ReplayBody<B> {
        fn drop(&mut self) {
            if let Some(live) = self.live.take() {
                let mut state = lock(&self.state);
                state.in_use = false;
                if !state.ended {
                    state.rest = Some(live);
                }
            }
        }
    }

    impl<B: Body> Body for ReplayBody<B> {
        type Data = Bytes;
        type Error = B::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
            let this = &mut *self;
            if this.live.is_none() {
                let mut state = lock(&this.state);
                if let Some(chunk) = state.chunks.get(this.position) {
                    let chunk = chunk.clone();
                    this.position += 1;
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if state.ended {
                    if !std::mem::replace(&mut this.trailers_sent, true)
                        && let Some(trailers) = state.trailers.clone()
                    {
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    return Poll::Ready(None);
                }
                match state.rest.take() {
                    Some(rest) => {
                        this.live = Some(rest);
                        state.in_use = true;
                    }
                    // Another attempt holds the rest (the layer does not replay then).
                    None => return Poll::Ready(None),
                }
            }
            let Some(live) = this.live.as_mut() else {
                return Poll::Ready(None);
            };
            let frame = ready!(live.as_mut().poll_frame(cx));
            let mut state = lock(&this.state);
            match frame {
                None => {
                    state.ended = true;
                    state.in_use = false;
                    this.live = None;
                    Poll::Ready(None)
                }
                Some(Err(error)) => {
                    state.spoiled = true;
                    Poll::Ready(Some(Err(error)))
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        let bytes = data.copy_to_bytes(data.remaining());
                        if !state.spoiled {
                            if state.buffered + bytes.len() <= this.max_bytes {
                                state.buffered += bytes.len();
                                state.chunks.push(bytes.clone());
                            } else {
                                state.spoiled = true;
                                state.chunks = Vec::new();
                                tracing::debug!(
                                    max_bytes = this.max_bytes,
                                    "request body over the replay bound: sent once, without retry"
                                );
                            }
                        }
                        this.position = state.chunks.len();
                        Poll::Ready(Some(Ok(Frame::data(bytes))))
                    }
                    Err(frame) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            state.trailers = Some(trailers.clone());
                            state.ended = true;
                            state.in_use = false;
                            this.live = None;
                            this.trailers_sent = true;
                        }
                        Poll::Ready(Some(Ok(frame.map_data(|_| Bytes::new()))))
                    }
                },
            }
        }

        fn is_end_stream(&self) -> bool {
            let state = lock(&self.state);
            match &self.live {
                Some(live) => live.is_end_stream(),
                None => {
                    state.ended
                        && self.position >= state.chunks.len()
                        && (self.trailers_sent || state.trailers.is_none())
                }
            }
        }

        fn size_hint(&self) -> SizeHint {
            let state = lock(&self.state);
            let replayed: usize = state
                .chunks
                .iter()
                .skip(self.position)
                .map(Bytes::len)
                .sum();
            let replayed = replayed as u64;
            let rest = match (&self.live, &state.rest) {
                (Some(body), _) | (None, Some(body)) => body.size_hint(),
                (None, None) => SizeHint::with_exact(0),
            };
            let mut hint = SizeHint::new();
            hint.set_lower(rest.lower().saturating_add(replayed));
            if let Some(upper) = rest.upper() {
                hint.set_upper(upper.saturating_add(replayed));
            }
            hint
        }
    }
}

//! The service: hands the request and a ready inner service to the response future.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_outcome::Answer;
use tower_service::Service;

use super::layer::Shared;
use super::{IdempotencyCodec, ResponseFuture};

/// A service behind idempotency keys. Made by [`IdempotencyLayer`](crate::IdempotencyLayer).
///
/// `poll_ready` forwards to the inner service. `call` moves the ready inner service into the
/// response future (leaving a clone behind, as tower's `Oneshot`-style layers do), because the
/// key is only known once the request is read. A duplicate that waits for the first call
/// drops its ready service (releasing what its `poll_ready` reserved downstream) and, if the
/// first call stored nothing, polls a clone ready before it runs itself.
pub struct Idempotency<S, Codec, A> {
    inner: S,
    shared: Arc<Shared<Codec>>,
    _answer: PhantomData<fn() -> A>,
}

impl<S, Codec, A> Idempotency<S, Codec, A> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<Codec>>) -> Self {
        Self {
            inner,
            shared,
            _answer: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, Codec, A> Clone for Idempotency<S, Codec, A> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, Codec, A> fmt::Debug for Idempotency<S, Codec, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, Codec, A, Req> Service<Req> for Idempotency<S, Codec, A>
where
    S: Service<Req> + Clone,
    Codec: IdempotencyCodec<Req, S::Response>,
    A: Answer<Codec::Response, S::Error>,
{
    type Response = Codec::Response;
    type Error = A::Error;
    type Future = ResponseFuture<S, Req, Codec, A>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(A::inner_error)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(
            self.shared.codec.prepare(request),
            ready,
            Arc::clone(&self.shared),
        )
    }
}

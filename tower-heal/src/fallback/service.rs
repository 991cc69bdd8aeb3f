//! The service: calls the primary, keeping what the fallback needs.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_outcome::{Answer, Classify};
use tower_service::Service;

use super::shared::{OutcomeRecorder, Shared};
use super::{Degradable, KeepRequest, ResponseFuture};

/// A service with a fallback. Made by [`FallbackLayer`](crate::FallbackLayer).
///
/// `poll_ready` forwards to the primary only: the fallback is polled ready in the response
/// future, when it is needed. A healthy call costs what [`keep`](crate::FallbackBuilder::keep)
/// costs (a clone by default), one reference-count increment and decrement, and the
/// classifier's verdict: no lock, no allocation, no clock read.
pub struct Fallback<S, F, K, C, A> {
    inner: S,
    shared: Arc<Shared<F, K, C>>,
    _answer: PhantomData<fn() -> A>,
}

impl<S, F, K, C, A> Fallback<S, F, K, C, A> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<F, K, C>>) -> Self {
        Self {
            inner,
            shared,
            _answer: PhantomData,
        }
    }

    /// The primary service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The primary service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The primary service, consuming the fallback.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, F, K, C, A> Clone for Fallback<S, F, K, C, A> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, F, K, C, A> fmt::Debug for Fallback<S, F, K, C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .field("component", &self.shared.component)
            .finish()
    }
}

impl<S, F, K, C, A, Req> Service<Req> for Fallback<S, F, K, C, A>
where
    S: Service<Req>,
    S::Response: Degradable,
    K: KeepRequest<Req>,
    F: Service<K::Kept, Response = S::Response> + Clone,
    F::Error: fmt::Display,
    C: for<'a> Classify<S::Response, Response<OutcomeRecorder<'a>> = S::Response>,
    A: Answer<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = A::Error;
    type Future = ResponseFuture<S::Future, F, K::Kept, K, C, A, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(A::inner_error)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let kept = self.shared.keep.keep(&request);
        ResponseFuture::new(self.inner.call(request), kept, Arc::clone(&self.shared))
    }
}

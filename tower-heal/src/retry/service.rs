//! The service: sends the first attempt, hands the retries to the response future.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::replay::{CloneRequest, Replay};
use crate::retry::future::ResponseFuture;
use crate::retry::state::Shared;
use crate::{AnyRequest, ClassifyRetry, DefaultClasses, RetryGate};

/// A service that retries failed attempts. Made by [`RetryLayer`](crate::RetryLayer).
///
/// `poll_ready` is the inner service's; `call` sends the first attempt at once, and the
/// response future retries on a clone of the inner service, polling it ready before each
/// retry. The first attempt of a call that succeeds costs no allocation (the retry state is
/// allocated on the first failure); the budget's deposit is an atomic add, dated by a look
/// at the clock at most every few dozen calls at a high rate (at every call at a low one).
///
/// The error type is the inner service's, unchanged: a call that is not retried, or whose
/// retries run out, returns the last attempt's result as it came.
pub struct Retry<S, C = DefaultClasses, G = AnyRequest, R = CloneRequest> {
    inner: S,
    shared: Arc<Shared<C, G, R>>,
}

impl<S, C, G, R> Retry<S, C, G, R> {
    pub(crate) const fn new(inner: S, shared: Arc<Shared<C, G, R>>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the retry.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C, G, R> Clone for Retry<S, C, G, R> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, C, G, R> fmt::Debug for Retry<S, C, G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish()
    }
}

impl<S, Req, C, G, R> Service<Req> for Retry<S, C, G, R>
where
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    C: ClassifyRetry<S::Response, S::Error>,
    G: RetryGate<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, C, G, R>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let shared = &self.shared;
        let keep = shared.gate.allows(&request);
        let (deadline, idempotent) = if keep {
            (
                shared.gate.deadline(&request),
                shared.retry_non_idempotent || shared.gate.idempotent(&request),
            )
        } else {
            (None, false)
        };
        let (request, kept) = shared.replay.prepare(request, keep);
        shared.budget.deposit();
        let future = self.inner.call(request);
        // The instance that was polled ready made the call; the future retries on a clone,
        // which it polls ready itself.
        let service = kept.as_ref().map(|_| self.inner.clone());
        ResponseFuture::new(
            future,
            Arc::clone(shared),
            service,
            kept,
            (deadline, idempotent),
        )
    }
}

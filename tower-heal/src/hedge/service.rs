//! The service: sends the first attempt, hands the hedging to the response future.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::hedge::future::HedgeFuture;
use crate::hedge::state::HedgeShared;
use crate::replay::{CloneRequest, Replay};
use crate::{AnyRequest, ClassifyRetry, DefaultClasses, RetryGate};

/// A service that sends hedged copies of slow requests. Made by
/// [`HedgeLayer`](crate::HedgeLayer).
///
/// A call answered on the first poll of its future costs no timer and no allocation (its
/// budget deposit is dated by a look at the clock at most every few dozen calls at a high
/// rate); a slow one arms one timer and allocates its hedging state.
pub struct Hedge<S, C = DefaultClasses, G = AnyRequest, R = CloneRequest> {
    inner: S,
    shared: Arc<HedgeShared<C, G, R>>,
}

impl<S, C, G, R> Hedge<S, C, G, R> {
    pub(crate) const fn new(inner: S, shared: Arc<HedgeShared<C, G, R>>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, consuming the hedge.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C, G, R> Clone for Hedge<S, C, G, R> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, C, G, R> fmt::Debug for Hedge<S, C, G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish()
    }
}

impl<S, Req, C, G, R> Service<Req> for Hedge<S, C, G, R>
where
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    C: ClassifyRetry<S::Response, S::Error>,
    G: RetryGate<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = HedgeFuture<S, Req, C, G, R>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let shared = &self.shared;
        // A copy runs the request a second time: only an idempotent request is hedged.
        let keep = shared.gate.allows(&request) && shared.gate.idempotent(&request);
        let (request, kept) = shared.replay.prepare(request, keep);
        if shared.deposits {
            shared.budget.deposit();
        }
        let future = self.inner.call(request);
        let service = kept.as_ref().map(|_| self.inner.clone());
        HedgeFuture::new(future, Arc::clone(shared), service, kept)
    }
}

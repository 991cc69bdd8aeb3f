//! The service: admits in `call`, never in `poll_ready`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_outcome::{Answer, BoxErrorAnswer};
use tower_service::Service;

use crate::compartment::{Compartment, Denied};
use crate::future::ResponseFuture;
use crate::{ActualCost, Cost, EstimateStands, Hold, PerRequest, UntilResponse};

/// A service behind a bulkhead compartment. Made by [`BulkheadLayer`](crate::BulkheadLayer).
///
/// **No permit is taken in `poll_ready`**: hyper polls a connection's service ready before a
/// request arrives, so a permit taken there would be hoarded by idle keep-alive connections.
/// `poll_ready` reads the compartment's word once: if a call would surely not be admitted
/// now (every slot taken, or others waiting) it returns `Ready(Ok(()))` **without polling the
/// inner service**, so nothing downstream (a `Buffer` slot, a connection) is reserved for a
/// call that will wait or be refused; otherwise it forwards the inner `poll_ready`. It never
/// fails or waits because of the bulkhead.
///
/// The permit is taken in `call`. A call admitted with the inner service ready calls it at
/// once; one admitted without (or after waiting) polls a clone of the inner service ready, in
/// `call` and then from the response future, which is why the inner service must be `Clone`
/// (axum, tonic and hyper-util services are). A refused call never calls the inner service;
/// if a budget refuses it after `poll_ready` polled the inner service ready (only the
/// request's cost can tell), the ready instance is dropped for a fresh clone, so nothing
/// stays reserved downstream.
pub struct Bulkhead<S, E = PerRequest, R = EstimateStands, H = UntilResponse, A = BoxErrorAnswer> {
    inner: S,
    compartment: Arc<Compartment>,
    cost: E,
    actual: R,
    /// The inner service returned ready and was not called since; a clone starts without.
    ready: bool,
    _mode: PhantomData<fn() -> (H, A)>,
}

impl<S, E, R, H, A> Bulkhead<S, E, R, H, A> {
    pub(crate) const fn new(inner: S, compartment: Arc<Compartment>, cost: E, actual: R) -> Self {
        Self {
            inner,
            compartment,
            cost,
            actual,
            ready: false,
            _mode: PhantomData,
        }
    }

    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the bulkhead.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, E: Clone, R: Clone, H, A> Clone for Bulkhead<S, E, R, H, A> {
    fn clone(&self) -> Self {
        // A clone shares the compartment but never inherits this instance's readiness.
        Self::new(
            self.inner.clone(),
            Arc::clone(&self.compartment),
            self.cost.clone(),
            self.actual.clone(),
        )
    }
}

impl<S: fmt::Debug, E, R, H, A> fmt::Debug for Bulkhead<S, E, R, H, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("compartment", &self.compartment)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl<S, E, R, H, A, Req> Service<Req> for Bulkhead<S, E, R, H, A>
where
    S: Service<Req> + Clone,
    E: Cost<Req>,
    R: ActualCost<S::Response> + Clone,
    H: Hold<S::Response>,
    A: Answer<S::Response, S::Error>,
{
    type Response = H::Response;
    type Error = A::Error;
    type Future = ResponseFuture<S, S::Future, Req, R, H, A>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.ready || self.compartment.looks_full() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                self.ready = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(A::inner_error(error))),
            Poll::Pending => Poll::Pending,
        }
    }

    // Always inlined: the fast path is a few instructions, every other path is out of line.
    #[inline(always)]
    fn call(&mut self, request: Req) -> Self::Future {
        // The common case of a concurrency-only compartment, kept small enough to inline: a
        // free slot, the inner service ready.
        if !self.compartment.has_budgets() {
            if self.ready
                && let Some(permit) = self.compartment.try_slot_permit()
            {
                self.ready = false;
                return ResponseFuture::called(
                    self.inner.call(request),
                    permit,
                    self.actual.clone(),
                );
            }
            return self.call_slow(request, 0);
        }
        self.call_budgets(request)
    }
}

impl<S, E, R, H, A> Bulkhead<S, E, R, H, A> {
    /// A compartment with budgets: the cost function runs, then the tokens are taken.
    #[inline(never)]
    fn call_budgets<Req>(&mut self, request: Req) -> ResponseFuture<S, S::Future, Req, R, H, A>
    where
        S: Service<Req> + Clone,
        E: Cost<Req>,
        R: Clone,
    {
        let cost = self.cost.cost(&request);
        if self.ready
            && let Ok(permit) = self.compartment.try_admit_sent(cost)
        {
            self.ready = false;
            return ResponseFuture::called(self.inner.call(request), permit, self.actual.clone());
        }
        self.call_slow(request, cost)
    }

    /// Every other call: the inner service not polled ready, or not admitted at once.
    #[inline(never)]
    fn call_slow<Req>(
        &mut self,
        request: Req,
        cost: u64,
    ) -> ResponseFuture<S, S::Future, Req, R, H, A>
    where
        S: Service<Req> + Clone,
        R: Clone,
    {
        match self.compartment.try_admit(cost) {
            Ok(permit) if self.ready => {
                self.ready = false;
                let permit = permit.sent();
                ResponseFuture::called(self.inner.call(request), permit, self.actual.clone())
            }
            Ok(permit) => self.call_unready(request, permit),
            Err(denied) => self.call_denied(request, cost, denied),
        }
    }
}

impl<S, E, R, H, A> Bulkhead<S, E, R, H, A> {
    /// Admitted, the inner service not polled ready: a clone of it is driven to readiness.
    #[inline(never)]
    fn call_unready<Req>(
        &mut self,
        request: Req,
        permit: crate::Permit,
    ) -> ResponseFuture<S, S::Future, Req, R, H, A>
    where
        S: Service<Req> + Clone,
        R: Clone,
    {
        ResponseFuture::admitted(self.inner.clone(), request, permit, self.actual.clone())
    }

    /// Not admitted at once: a wait, or a rejection.
    #[inline(never)]
    fn call_denied<Req>(
        &mut self,
        request: Req,
        cost: u64,
        denied: Denied,
    ) -> ResponseFuture<S, S::Future, Req, R, H, A>
    where
        S: Service<Req> + Clone,
        R: Clone,
    {
        let future = ResponseFuture::denied(
            &self.compartment,
            denied,
            cost,
            || self.inner.clone(),
            request,
            self.actual.clone(),
        );
        if self.ready {
            // The inner service was polled ready for this call, which will not use it: give
            // back what that reserved (a `Buffer` slot, a `ConcurrencyLimit` permit) by
            // dropping the ready instance for a fresh clone, which never inherits readiness.
            self.ready = false;
            self.inner = self.inner.clone();
        }
        future
    }
}

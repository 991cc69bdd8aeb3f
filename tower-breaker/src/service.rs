//! The service: admits or refuses in `poll_ready`, answers refusals from the future.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_outcome::{Answer, BoxErrorAnswer, Classify, ErrorsAsFailures, Settle};
use tower_service::Service;

use crate::call_event::{CallListener, NoCallListener};
use crate::future::ResponseFuture;
use crate::machine::Core;
use crate::slot::Slot;
use crate::ticket::Ticket;

/// A service behind a circuit breaker. Made by [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).
///
/// `poll_ready` reads the breaker's state with one atomic load. When the call is to be
/// refused, it returns `Ready(Ok(()))` **without polling the inner service** (so no capacity
/// of the inner, such as a `Buffer` slot or a concurrency permit, is reserved for a call that
/// will not happen), and the rejection comes from the response future. Otherwise it forwards
/// to the inner `poll_ready`. It never fails or waits because of the breaker.
///
/// A half-open probe slot is taken in `poll_ready` and held by this instance until `call`
/// moves it into the response future; dropping the service or the future frees it.
///
/// # Panics
/// `call` panics if `poll_ready` did not return `Ready(Ok(()))` first, as tower's contract
/// requires.
pub struct CircuitBreaker<S, C = ErrorsAsFailures, A = BoxErrorAnswer, L = NoCallListener> {
    inner: S,
    core: Arc<Core<C, L>>,
    /// Decided in `poll_ready`, consumed by `call`; a clone starts without one.
    admission: Slot<C, L>,
    _answer: PhantomData<fn() -> A>,
}

impl<S, C, A, L> CircuitBreaker<S, C, A, L> {
    pub(crate) fn new(inner: S, core: Arc<Core<C, L>>) -> Self {
        Self {
            inner,
            core,
            admission: Slot::new(),
            _answer: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the breaker.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C, A, L> Clone for CircuitBreaker<S, C, A, L> {
    fn clone(&self) -> Self {
        // A clone shares the breaker but never inherits this instance's readiness (or its
        // probe slot): it must be polled ready itself.
        Self::new(self.inner.clone(), Arc::clone(&self.core))
    }
}

impl<S: fmt::Debug, C, A, L> fmt::Debug for CircuitBreaker<S, C, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("name", &self.core.common.name)
            .field(
                "admitted",
                &(!self.admission.is_empty()).then(|| !self.admission.is_refused()),
            )
            .finish()
    }
}

impl<S, C, A, L> CircuitBreaker<S, C, A, L> {
    /// The inner service failed to become ready: the admitted call ends here, and the error
    /// counts as the call's error would (as in the keyed breaker). Frees a probe slot.
    #[cold]
    #[inline(never)]
    fn not_ready<Res, E>(&mut self, error: E) -> A::Error
    where
        C: Classify<Res>,
        L: CallListener,
        A: Answer<Res, E>,
    {
        let error = A::inner_error(error);
        // Settled as granted: it counts if the breaker is still in that state, as in the keyed
        // breaker.
        if let Some(ticket) = self.admission.take_granted(&self.core) {
            let outcome = ticket.classifier().classify_error(A::error_ref(&error));
            ticket.settle(outcome);
        }
        error
    }
}

impl<S, C, A, L, Req> Service<Req> for CircuitBreaker<S, C, A, L>
where
    S: Service<Req>,
    C: Classify<S::Response> + Clone,
    L: CallListener,
    A: Answer<S::Response, S::Error>,
{
    type Response = C::Response<Ticket<C, L>>;
    type Error = A::Error;
    type Future = ResponseFuture<S::Future, C, A, L>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.admission.is_empty() {
            self.admission.fill(&self.core);
        } else {
            // Polled again (the inner was not ready): an admission from an earlier state is
            // decided again, so an open breaker does not wait on its dependency.
            self.admission.refresh(&self.core);
        }
        if self.admission.is_refused() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => Poll::Ready(Err(self.not_ready(error))),
        }
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        // `take` checks the admission against the state now: it holds only for the state it
        // was granted in.
        match self.admission.take(&self.core) {
            Ok(ticket) => {
                let start_ns = ticket.start();
                ResponseFuture::called(self.inner.call(request), ticket, start_ns)
            }
            Err(refusal) => ResponseFuture::rejected(self.core.rejection(refusal)),
        }
    }
}

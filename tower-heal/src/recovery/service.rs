//! The service: forwards to the current instance, or holds calls during a rebuild.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tower_outcome::{Answer, Classify};
use tower_service::Service;

use super::DuringRebuild;
use super::ResponseFuture;
use super::health::Health;
use crate::fallback::OutcomeRecorder;

/// A service under a health monitor. Made by [`RecoveryLayer`](crate::RecoveryLayer).
///
/// `poll_ready` forwards to the current inner instance. While a rebuild runs it returns ready
/// **without polling the old instance** (nothing is reserved there), and the call waits for
/// the new instance in its response future, or is rejected. When a rebuild has replaced the
/// instance, the next `poll_ready` takes a clone of the new one.
///
/// An inner instance is only called after its own `poll_ready` returned ready: a call whose
/// instance was not polled ready (the rebuild it waited for failed, or finished between
/// `poll_ready` and `call`) polls the current instance ready in its response future first.
///
/// Outcomes belong to the generation their call was sent to: a call sent before a recovery
/// completed and failing after it does not count against the recovered service.
///
/// A healthy call costs one reference-count increment and decrement, one shared atomic
/// increment, two loads and the classifier's verdict; no lock, no allocation, no clock read.
/// A failure reads the clock (to roll the window).
pub struct Recovery<S, C, A> {
    inner: S,
    /// Whether recoveries rebuild the inner service (read once: it never changes).
    rebuild: bool,
    generation: u64,
    /// Rebuild mode: `inner` returned ready from its `poll_ready` and has not been called since.
    ready: bool,
    health: Arc<Health<S>>,
    classifier: C,
    _answer: PhantomData<fn() -> A>,
}

impl<S, C, A> Recovery<S, C, A> {
    pub(crate) fn new(inner: S, generation: u64, health: Arc<Health<S>>, classifier: C) -> Self {
        Self {
            inner,
            rebuild: health.is_rebuild(),
            generation,
            ready: false,
            health,
            classifier,
            _answer: PhantomData,
        }
    }

    /// The current inner instance.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Takes the rebuilt instance if there is a newer one: one load when there is not.
    #[inline]
    fn refresh(&mut self)
    where
        S: Clone,
    {
        if self.health.generation.load(Ordering::Acquire) != self.generation {
            self.take_current();
        }
    }

    #[cold]
    #[inline(never)]
    fn take_current(&mut self)
    where
        S: Clone,
    {
        // The instance and its generation, read together.
        if let Some((current, generation)) = self.health.current() {
            self.inner = current;
            self.ready = false;
            self.generation = generation;
        }
    }

    fn stale(&self) -> bool {
        self.rebuild
            && (self.health.rebuilding.load(Ordering::Acquire)
                || self.health.generation.load(Ordering::Acquire) != self.generation)
    }
}

impl<S, C, A> Recovery<S, C, A> {
    /// A call whose instance was not polled ready, or may be the broken one: the response
    /// future waits for the rebuild, then polls the current instance ready (or the call is
    /// rejected). Out of line, so the ready path stays small.
    #[inline(never)]
    fn call_unready<Req>(&mut self, request: Req) -> ResponseFuture<S, Req, C, A>
    where
        S: Service<Req>,
        C: Clone,
    {
        if self.health.rebuilding.load(Ordering::Acquire)
            && self.health.settings.during_rebuild == DuringRebuild::Reject
        {
            return ResponseFuture::rejected(self.health.rejection());
        }
        ResponseFuture::waiting(request, Arc::clone(&self.health), self.classifier.clone())
    }
}

impl<S: Clone, C: Clone, A> Clone for Recovery<S, C, A> {
    fn clone(&self) -> Self {
        Self::new(
            self.inner.clone(),
            self.generation,
            Arc::clone(&self.health),
            self.classifier.clone(),
        )
    }
}

impl<S: fmt::Debug, C, A> fmt::Debug for Recovery<S, C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovery")
            .field("inner", &self.inner)
            .field("name", &self.health.name)
            .field("generation", &self.generation)
            .finish()
    }
}

impl<S, C, A, Req> Service<Req> for Recovery<S, C, A>
where
    S: Service<Req> + Clone + Send + 'static,
    C: for<'a> Classify<S::Response, Response<OutcomeRecorder<'a>> = S::Response> + Clone,
    A: Answer<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = A::Error;
    type Future = ResponseFuture<S, Req, C, A>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.rebuild {
            if self.health.rebuilding.load(Ordering::Acquire) {
                self.ready = false;
                return Poll::Ready(Ok(()));
            }
            self.refresh();
            let poll = self.inner.poll_ready(cx);
            self.ready = matches!(poll, Poll::Ready(Ok(())));
            return poll.map_err(A::inner_error);
        }
        self.inner.poll_ready(cx).map_err(A::inner_error)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        if !self.rebuild {
            let generation = self.health.generation.load(Ordering::Acquire);
            return ResponseFuture::called(
                self.inner.call(request),
                generation,
                Arc::clone(&self.health),
                self.classifier.clone(),
            );
        }
        let ready = std::mem::replace(&mut self.ready, false);
        if !ready || self.stale() {
            return self.call_unready(request);
        }
        ResponseFuture::called(
            self.inner.call(request),
            self.generation,
            Arc::clone(&self.health),
            self.classifier.clone(),
        )
    }
}

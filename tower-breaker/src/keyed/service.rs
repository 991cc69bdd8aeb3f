//! The per-key service: finds the key's breaker and decides in `call`.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_outcome::{Answer, BoxErrorAnswer, Classify, ErrorsAsFailures};
use tower_service::Service;

use crate::call_event::{CallListener, NoCallListener};
use crate::slot::Slot;
use crate::ticket::Ticket;

use super::future::KeyedKind;
use super::{KeyedResponseFuture, Registry};

/// A service behind per-key circuit breakers. Made by [`KeyedCircuitBreakerLayer`](crate::KeyedCircuitBreakerLayer).
pub struct KeyedCircuitBreaker<
    S,
    K,
    F,
    C = ErrorsAsFailures,
    A = BoxErrorAnswer,
    L = NoCallListener,
> {
    pub(super) inner: S,
    pub(super) registry: Arc<Registry<K, F, C, L>>,
    pub(super) _answer: PhantomData<fn() -> A>,
}

impl<S, K, F, C, A, L> KeyedCircuitBreaker<S, K, F, C, A, L> {
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

impl<S: Clone, K, F, C, A, L> Clone for KeyedCircuitBreaker<S, K, F, C, A, L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            registry: Arc::clone(&self.registry),
            _answer: PhantomData,
        }
    }
}

impl<S: fmt::Debug, K, F, C, A, L> fmt::Debug for KeyedCircuitBreaker<S, K, F, C, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("inner", &self.inner)
            .field("name", &self.registry.common.name)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, A, L, Req> Service<Req> for KeyedCircuitBreaker<S, K, F, C, A, L>
where
    S: Service<Req> + Clone,
    K: Hash + Eq + fmt::Debug,
    F: Fn(&Req) -> K,
    C: Classify<S::Response> + Clone,
    L: CallListener,
    A: Answer<S::Response, S::Error>,
{
    type Response = C::Response<Ticket<C, L>>;
    type Error = A::Error;
    type Future = KeyedResponseFuture<S, S::Future, Req, C, A, L>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The breaker is only known from the request; the inner service is driven to
        // readiness by the response future, and only for admitted calls.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let core = self.registry.breaker(&request);
        let mut slot = Slot::new();
        slot.fill(&core);
        let kind = match slot.take(&core) {
            Ok(ticket) => KeyedKind::Waiting {
                service: self.inner.clone(),
                request: Some(request),
                ticket: Some(ticket),
            },
            Err(refusal) => KeyedKind::Rejected {
                refused: Some(core.rejection(refusal)),
            },
        };
        KeyedResponseFuture {
            kind,
            _answer: PhantomData,
        }
    }
}

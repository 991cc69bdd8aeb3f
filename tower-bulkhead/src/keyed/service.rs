//! The per-key service: finds the key's compartment and admits in `call`.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_outcome::{Answer, BoxErrorAnswer, Reason};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::{ActualCost, Cost, EstimateStands, Hold, PerRequest, UntilResponse};

use super::Registry;

/// A service behind per-key compartments. Made by [`KeyedBulkheadLayer`](crate::KeyedBulkheadLayer).
pub struct KeyedBulkhead<
    S,
    K,
    F,
    E = PerRequest,
    R = EstimateStands,
    H = UntilResponse,
    A = BoxErrorAnswer,
> {
    pub(super) inner: S,
    pub(super) registry: Arc<Registry<K, F>>,
    pub(super) cost: E,
    pub(super) actual: R,
    pub(super) _mode: PhantomData<fn() -> (H, A)>,
}

impl<S, K, F, E, R, H, A> KeyedBulkhead<S, K, F, E, R, H, A> {
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

impl<S: Clone, K, F, E: Clone, R: Clone, H, A> Clone for KeyedBulkhead<S, K, F, E, R, H, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            registry: Arc::clone(&self.registry),
            cost: self.cost.clone(),
            actual: self.actual.clone(),
            _mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, K, F, E, R, H, A> fmt::Debug for KeyedBulkhead<S, K, F, E, R, H, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkhead")
            .field("inner", &self.inner)
            .field("name", &self.registry.common.name)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, E, R, H, A, Req> Service<Req> for KeyedBulkhead<S, K, F, E, R, H, A>
where
    S: Service<Req> + Clone,
    K: Hash + Eq + fmt::Debug,
    F: Fn(&Req) -> K,
    E: Cost<Req>,
    R: ActualCost<S::Response> + Clone,
    H: Hold<S::Response>,
    A: Answer<S::Response, S::Error>,
{
    type Response = H::Response;
    type Error = A::Error;
    type Future = ResponseFuture<S, S::Future, Req, R, H, A>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The compartment is only known from the request; the inner service is driven to
        // readiness by the response future, and only for admitted calls.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let Some(compartment) = self.registry.compartment(&request) else {
            // The map is full (or the key too long) and the policy rejects: the default
            // `retry_after` says when to try again.
            let overflow = &self.registry.overflow;
            let rejected = overflow.reject(overflow.full(Reason::BulkheadFull));
            return ResponseFuture::rejected(rejected, self.actual.clone());
        };
        let cost = if compartment.has_budgets() {
            self.cost.cost(&request)
        } else {
            0
        };
        match compartment.try_admit_owned(cost) {
            Ok(permit) => {
                ResponseFuture::admitted(self.inner.clone(), request, permit, self.actual.clone())
            }
            Err((compartment, denied)) => ResponseFuture::denied(
                &compartment,
                denied,
                cost,
                || self.inner.clone(),
                request,
                self.actual.clone(),
            ),
        }
    }
}

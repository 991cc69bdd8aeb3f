//! A layer that admits calls against a fleet budget before they reach the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::BudgetStore;
use crate::{BoxError, Cost};

/// The response future of [`FleetBudget`]: the budget's round trip, then the inner call.
///
/// Boxed: the budget's answer comes from a network round trip, which costs far more than
/// the allocation.
pub type FleetFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// Spends a call's cost from a [`BudgetStore`] (a `RedisBudget` shared by the fleet) before
/// calling the inner service; a refusal is the family's `Rejected` (`budget_exhausted`) with
/// the budget's `Retry-After`, and the inner service is not called.
///
/// Put it inside a [`BulkheadLayer`](crate::BulkheadLayer) that keeps the local limits (the
/// concurrency limit of this process). `poll_ready` reserves nothing: after the budget
/// granted the tokens, the future drives a clone of the inner service ready and calls it, so
/// readiness errors come out of the response future. Tokens spent are never given back: a
/// call dropped after its grant has spent them, like an in-process rate budget.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower::{ServiceBuilder, service_fn};
/// use tower_bulkhead::fleet::{FleetBudgetLayer, RedisBudget};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let budget = RedisBudget::builder("llm")
///     .refill(100_000, Duration::from_secs(60))
///     .connect("redis://127.0.0.1:6379/")
///     .await
///     .unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(FleetBudgetLayer::new("llm", Arc::new(budget), |prompt: &String| prompt.len() as u64))
///     .service(service_fn(|prompt: String| async move { Ok::<_, std::io::Error>(prompt) }));
/// # drop(svc);
/// # }
/// ```
#[must_use]
pub struct FleetBudgetLayer<B, E> {
    name: Arc<str>,
    budget: Arc<B>,
    cost: E,
}

impl<B, E> FleetBudgetLayer<B, E> {
    /// Calls spend `cost(request)` tokens of `budget`; `name` labels the rejections.
    pub fn new(name: impl Into<Arc<str>>, budget: Arc<B>, cost: E) -> Self {
        Self {
            name: name.into(),
            budget,
            cost,
        }
    }
}

impl<B, E: Clone> Clone for FleetBudgetLayer<B, E> {
    fn clone(&self) -> Self {
        Self {
            name: Arc::clone(&self.name),
            budget: Arc::clone(&self.budget),
            cost: self.cost.clone(),
        }
    }
}

impl<B, E> fmt::Debug for FleetBudgetLayer<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBudgetLayer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S, B, E: Clone> Layer<S> for FleetBudgetLayer<B, E> {
    type Service = FleetBudget<S, B, E>;

    fn layer(&self, inner: S) -> Self::Service {
        FleetBudget {
            inner,
            name: Arc::clone(&self.name),
            budget: Arc::clone(&self.budget),
            cost: self.cost.clone(),
        }
    }
}

/// The service of a [`FleetBudgetLayer`].
pub struct FleetBudget<S, B, E> {
    inner: S,
    name: Arc<str>,
    budget: Arc<B>,
    cost: E,
}

impl<S: Clone, B, E: Clone> Clone for FleetBudget<S, B, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            name: Arc::clone(&self.name),
            budget: Arc::clone(&self.budget),
            cost: self.cost.clone(),
        }
    }
}

impl<S: fmt::Debug, B, E> fmt::Debug for FleetBudget<S, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBudget")
            .field("inner", &self.inner)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S, B, E, Req> Service<Req> for FleetBudget<S, B, E>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: BudgetStore,
    E: Cost<Req>,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = FleetFuture<S::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Nothing reserved here: the call drives its own clone ready once admitted.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let cost = self.cost.cost(&request);
        let mut inner = self.inner.clone();
        let budget = Arc::clone(&self.budget);
        let name = Arc::clone(&self.name);
        Box::pin(async move {
            let grant = budget.take(cost).await;
            if let Some(rejected) = grant.rejection(&name) {
                return Err(rejected.into());
            }
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            inner.call(request).await.map_err(Into::into)
        })
    }
}

//! The layer and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::builder::HedgeBuilder;

use crate::hedge::state::HedgeShared;
use crate::replay::CloneRequest;
use crate::{AnyRequest, DefaultClasses, Hedge};

/// Sends up to `max_hedges` more copies of a request that has had no answer after
/// `hedge_delay`, takes the first good answer and cancels the rest (opt-in).
///
/// The delay is fixed, or a percentile of the latencies the layer observes (for example
/// p95: one request in twenty gets a copy). Only requests the [gate](crate::RetryGate)
/// allows and calls [idempotent](crate::RetryGate::idempotent) are hedged (an
/// `http::Request` with an idempotent method or an `Idempotency-Key`, with every gate of
/// this crate; a gRPC method marked idempotent with [`GrpcGate`](crate::GrpcGate)).
/// Each copy withdraws one retry from a budget: the layer's own (on by default), or a retry
/// layer's with [`share_budget_with`](HedgeBuilder::share_budget_with).
///
/// ```
/// use std::time::Duration;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_heal::HedgeLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), std::io::Error> {
/// let hedge = HedgeLayer::builder()
///     .name("search")
///     .percentile(95.0, Duration::from_millis(5), Duration::from_millis(500))
///     .max_hedges(1)
///     .build()
///     .unwrap();
/// let mut svc = ServiceBuilder::new()
///     .layer(hedge)
///     .service_fn(|q: &'static str| async move { Ok::<_, std::io::Error>(q.len()) });
/// assert_eq!(svc.ready().await?.call("rust").await?, 4);
/// # Ok(()) }
/// ```
#[must_use]
pub struct HedgeLayer<C = DefaultClasses, G = AnyRequest, R = CloneRequest> {
    pub(super) shared: Arc<HedgeShared<C, G, R>>,
}

impl HedgeLayer {
    /// A builder: hedge after 100 ms, one copy, the default budget.
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder::with(DefaultClasses, AnyRequest, CloneRequest)
    }
}

#[cfg(feature = "http")]
impl HedgeLayer {
    /// The old spelling of `HedgeLayer::builder().http_client()`.
    #[deprecated(since = "0.1.0", note = "use `HedgeLayer::builder().http_client()`")]
    pub fn http() -> HedgeBuilder<crate::HttpClasses, crate::IdempotentMethods, CloneRequest> {
        HedgeLayer::builder().http_client()
    }
}

impl<C, G, R> HedgeLayer<C, G, R> {
    /// The layer's name (the `hedge` label of its metrics).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The delay after which a copy is sent now (the tracked percentile, or the fixed delay).
    #[must_use]
    pub fn current_delay(&self) -> Duration {
        self.shared.delay()
    }
}

impl<C, G, R> Clone for HedgeLayer<C, G, R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C, G, R> fmt::Debug for HedgeLayer<C, G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HedgeLayer").field(&self.shared).finish()
    }
}

impl<S, C, G, R> Layer<S> for HedgeLayer<C, G, R> {
    type Service = Hedge<S, C, G, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::new(inner, Arc::clone(&self.shared))
    }
}

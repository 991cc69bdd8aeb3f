//! The layer: holds the compartment and wraps services with it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use tower_outcome::BoxErrorAnswer;
#[cfg(feature = "http")]
use tower_outcome::{GrpcAnswer, HttpAnswer};

use crate::compartment::{Common, Compartment};
use crate::cost::TypeName;
#[cfg(feature = "http")]
use crate::hold::UntilBodyEnd;
use crate::{
    Bulkhead, BulkheadBuilder, BulkheadConfig, BulkheadHandle, ConfigError, EstimateStands,
    KeyedBulkheadConfig, KeyedBulkheadLayer, PerRequest, UntilResponse,
};

/// Applies a bulkhead compartment to services.
///
/// The compartment is created with this value: every service it wraps, and every clone of
/// those services, share it. Two compartments are two layer values (or one
/// [`KeyedBulkheadLayer`]).
///
/// `E` estimates a request's [cost](crate::Cost), `R` reads the [actual
/// cost](crate::ActualCost) from the response, `H` says how long a call [holds](crate::Hold)
/// its permit, `A` is the [answer mode](tower_outcome::Answer).
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt, Service};
/// use tower_bulkhead::BulkheadLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_bulkhead::BoxError> {
/// let bulkhead = BulkheadLayer::builder().name("search").max_concurrent(10).build()?;
/// let handle = bulkhead.handle();
/// let mut svc = ServiceBuilder::new()
///     .layer(bulkhead)
///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) });
/// assert_eq!(svc.ready().await?.call(1).await?, 2);
/// assert_eq!(handle.in_flight(), 0);
/// # Ok(()) }
/// ```
#[must_use]
pub struct BulkheadLayer<E = PerRequest, R = EstimateStands, H = UntilResponse, A = BoxErrorAnswer>
{
    compartment: Arc<Compartment>,
    cost: E,
    actual: R,
    _mode: PhantomData<fn() -> (H, A)>,
}

impl BulkheadLayer {
    /// A compartment with the default configuration (25 calls in flight, no waiting, no
    /// token budget).
    pub fn new() -> Self {
        Self::builder()
            .build()
            // Invariant: the defaults are valid (tested in `config`).
            .expect("the default configuration is valid")
    }

    /// A builder, starting from the defaults.
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::new()
    }

    /// A compartment from a configuration (for example one read from JSON), in the default
    /// answer mode. For an axum route or a tonic service, choose the answer mode on the
    /// builder: `BulkheadLayer::builder().config(&config).http().build()`. Takes the
    /// configuration by reference or by value.
    ///
    /// # Errors
    /// The first invalid value, as [`BulkheadConfig::validate`] finds it.
    pub fn from_config(
        config: impl std::borrow::Borrow<BulkheadConfig>,
    ) -> Result<Self, ConfigError> {
        BulkheadBuilder::new().config(config).build()
    }

    /// The old spelling of [`KeyedBulkheadLayer::from_config`].
    ///
    /// # Errors
    /// The first invalid value, as [`KeyedBulkheadConfig::validate`] finds it, or a name in
    /// `bulkheads` that is not a valid key (`K: std::str::FromStr`).
    #[deprecated(
        since = "0.1.0",
        note = "use `KeyedBulkheadLayer::from_config(&config, key)`"
    )]
    pub fn keyed_from_config<Req, K, F>(
        config: KeyedBulkheadConfig,
        key: F,
    ) -> Result<KeyedBulkheadLayer<K, F>, ConfigError>
    where
        F: Fn(&Req) -> K,
        K: std::hash::Hash + Eq + std::str::FromStr,
    {
        KeyedBulkheadLayer::from_config(&config, key)
    }
}

impl Default for BulkheadLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<E, R, H, A> BulkheadLayer<E, R, H, A> {
    pub(crate) fn from_parts(compartment: Compartment, cost: E, actual: R) -> Self {
        Self {
            compartment: Arc::new(compartment),
            cost,
            actual,
            _mode: PhantomData,
        }
    }

    pub(crate) fn common(name: Arc<str>) -> Arc<Common> {
        Arc::new(Common::new(name, false))
    }

    #[cfg(feature = "http")]
    fn mode<H2, A2>(self) -> BulkheadLayer<E, R, H2, A2> {
        BulkheadLayer {
            compartment: self.compartment,
            cost: self.cost,
            actual: self.actual,
            _mode: PhantomData,
        }
    }

    /// Answers rejections with HTTP responses: 503 + `Retry-After` when full or after a wait
    /// timed out, 429 + `Retry-After` (time until enough refill) for an exhausted budget;
    /// keeps the inner error type, so axum's `Infallible` stays. The same compartment.
    #[cfg(feature = "http")]
    #[deprecated(
        since = "0.1.0",
        note = "choose the answer mode on the builder: `.http()`"
    )]
    pub fn http(self) -> BulkheadLayer<E, R, H, HttpAnswer> {
        self.mode()
    }

    /// Answers rejections with gRPC Trailers-Only responses (`grpc-status` 8
    /// `RESOURCE_EXHAUSTED`); keeps the inner error type. The same compartment.
    #[cfg(feature = "http")]
    #[deprecated(
        since = "0.1.0",
        note = "choose the answer mode on the builder: `.grpc()`"
    )]
    pub fn grpc(self) -> BulkheadLayer<E, R, H, GrpcAnswer> {
        self.mode()
    }

    /// Streams: holds the permit (slot and in-flight tokens) in the response body until the
    /// body ends or is dropped, not only until the response head arrives (SSE, gRPC server
    /// streaming). The same compartment.
    #[cfg(feature = "http")]
    pub fn hold_until_body_end(self) -> BulkheadLayer<E, R, UntilBodyEnd, A> {
        self.mode()
    }

    /// The compartment's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.compartment.common.name
    }

    /// A handle on this compartment.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle::new(Arc::clone(&self.compartment))
    }
}

impl<E: Clone, R: Clone, H, A> Clone for BulkheadLayer<E, R, H, A> {
    fn clone(&self) -> Self {
        Self {
            compartment: Arc::clone(&self.compartment),
            cost: self.cost.clone(),
            actual: self.actual.clone(),
            _mode: PhantomData,
        }
    }
}

impl<E, R, H, A> fmt::Debug for BulkheadLayer<E, R, H, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("compartment", &self.compartment)
            .field("cost", &TypeName::<E>::new())
            .field("actual", &TypeName::<R>::new())
            .field("hold", &TypeName::<H>::new())
            .field("answer", &TypeName::<A>::new())
            .finish()
    }
}

impl<S, E: Clone, R: Clone, H, A> Layer<S> for BulkheadLayer<E, R, H, A> {
    type Service = Bulkhead<S, E, R, H, A>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::new(
            inner,
            Arc::clone(&self.compartment),
            self.cost.clone(),
            self.actual.clone(),
        )
    }
}

//! The layer: holds the breaker's shared state and wraps services with it.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use tower_outcome::{BoxErrorAnswer, ErrorsAsFailures};

use crate::call_event::NoCallListener;
use crate::common::Common;
use crate::machine::Core;
use crate::{
    CircuitBreaker, CircuitBreakerBuilder, CircuitBreakerConfig, CircuitBreakerHandle, ConfigError,
};

/// Applies a circuit breaker to services.
///
/// The breaker's state is created with this value: every service it wraps, and every clone of
/// those services, share one breaker. Two breakers are two layer values (or one
/// [`KeyedCircuitBreakerLayer`](crate::KeyedCircuitBreakerLayer)).
///
/// `C` is the [classifier](tower_outcome::Classify), `A` the [answer mode](tower_outcome::Answer).
///
/// ```
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt, Service};
/// use tower_breaker::CircuitBreakerLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_breaker::BoxError> {
/// let breaker = CircuitBreakerLayer::builder()
///     .name("inventory")
///     .failure_threshold(5)
///     .reset_timeout(Duration::from_secs(30))
///     .build()?;
/// let mut svc = ServiceBuilder::new()
///     .layer(breaker)
///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) });
/// assert_eq!(svc.ready().await?.call(1).await?, 2);
/// # Ok(()) }
/// ```
#[must_use]
pub struct CircuitBreakerLayer<C = ErrorsAsFailures, A = BoxErrorAnswer, L = NoCallListener> {
    core: Arc<Core<C, L>>,
    _answer: PhantomData<fn() -> A>,
}

impl CircuitBreakerLayer {
    /// A breaker with the default configuration (see [`CircuitBreakerConfig`]).
    pub fn new() -> Self {
        let settings = CircuitBreakerConfig::default()
            .settings()
            // Invariant: the defaults are valid (tested in `config`).
            .expect("the default configuration is valid");
        Self::from_parts(Arc::new(Common::new(
            &settings,
            ErrorsAsFailures,
            None,
            NoCallListener,
            false,
        )))
    }

    /// A builder, starting from the defaults.
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }

    /// A breaker from a configuration (for example one read from JSON), in the default answer
    /// mode. For an axum route or a tonic service, choose the answer mode on the builder,
    /// which also picks the classifier:
    /// `CircuitBreakerLayer::builder().config(&config).http().build()`. Takes the configuration
    /// by reference or by value.
    ///
    /// # Errors
    /// The first invalid value, as [`CircuitBreakerConfig::validate`] finds it.
    pub fn from_config(config: impl Borrow<CircuitBreakerConfig>) -> Result<Self, ConfigError> {
        CircuitBreakerBuilder::new().config(config).build()
    }
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C, A, L> CircuitBreakerLayer<C, A, L> {
    pub(crate) fn from_parts(common: Arc<Common<C, L>>) -> Self {
        Self {
            core: Arc::new(Core::new(common, None, 0)),
            _answer: PhantomData,
        }
    }

    pub(crate) const fn core(&self) -> &Arc<Core<C, L>> {
        &self.core
    }

    /// The breaker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.core.common.name
    }
}

impl<C: Send + Sync + 'static, A, L: Send + Sync + 'static> CircuitBreakerLayer<C, A, L> {
    /// A handle on this breaker.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.core.clone())
    }
}

impl<C, A, L> Clone for CircuitBreakerLayer<C, A, L> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
            _answer: PhantomData,
        }
    }
}

impl<C, A, L> fmt::Debug for CircuitBreakerLayer<C, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("name", &self.core.common.name)
            .field("classifier", &std::any::type_name::<C>())
            .field("answer", &std::any::type_name::<A>())
            .finish()
    }
}

impl<S, C, A, L> Layer<S> for CircuitBreakerLayer<C, A, L> {
    type Service = CircuitBreaker<S, C, A, L>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, Arc::clone(&self.core))
    }
}

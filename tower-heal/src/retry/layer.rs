//! The layer: holds the retry's shared state and wraps services with it.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::replay::CloneRequest;
use crate::retry::state::Shared;
use crate::{AnyRequest, ConfigError, DefaultClasses, Retry, RetryBuilder, RetryConfig};

/// Retries failed calls with back-off and jitter, per-class policies, server pushback and a
/// retry budget.
///
/// The state (budget, counters) is created with this value: every service it wraps, and
/// every clone of those services, share one budget.
///
/// `C` is the [classifier](crate::ClassifyRetry), `G` the [gate](crate::RetryGate) that says
/// which requests may be retried, `R` how a request is [kept](crate::Replay) for another
/// attempt.
///
/// ```
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_heal::RetryLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), std::io::Error> {
/// let mut svc = ServiceBuilder::new()
///     .layer(RetryLayer::new())
///     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) });
/// assert_eq!(svc.ready().await?.call(1).await?, 2);
/// # Ok(()) }
/// ```
#[must_use]
pub struct RetryLayer<C = DefaultClasses, G = AnyRequest, R = CloneRequest> {
    pub(crate) shared: Arc<Shared<C, G, R>>,
}

impl RetryLayer {
    /// A retry with the defaults: 2 retries, exponential back-off from 100 ms (× 2, capped
    /// at 10 s) with full jitter, the default budget; a request is retried when it fails with
    /// an error, a timeout only when it is idempotent ([`AnyRequest`]).
    pub fn new() -> Self {
        // Invariant: the defaults are valid (tested in `config`).
        RetryBuilder::new()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder, starting from the defaults.
    pub fn builder() -> RetryBuilder {
        RetryBuilder::new()
    }

    /// A retry from a configuration (for example one read from JSON), with the default
    /// classes and gate: errors are retried, responses never are, and over HTTP a timeout is
    /// retried only for an idempotent request unless the configuration's
    /// `retry_non_idempotent` says otherwise. For HTTP (retrying 503s and 429s, honouring
    /// `Retry-After`), use `RetryLayer::builder().config(&config).http_client().build()`
    /// instead. Takes the configuration by reference or by value.
    ///
    /// # Errors
    /// The first invalid value.
    pub fn from_config(config: impl std::borrow::Borrow<RetryConfig>) -> Result<Self, ConfigError> {
        RetryBuilder::new().config(config).build()
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<C, G, R> RetryLayer<C, G, R> {
    /// The layer's name (the `retry` label of its metrics).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }
}

impl<C, G, R> Clone for RetryLayer<C, G, R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C, G, R> fmt::Debug for RetryLayer<C, G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RetryLayer").field(&self.shared).finish()
    }
}

impl<S, C, G, R> Layer<S> for RetryLayer<C, G, R> {
    type Service = Retry<S, C, G, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, Arc::clone(&self.shared))
    }
}

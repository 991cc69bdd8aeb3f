//! The layer and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tower_layer::Layer;

use super::builder::RecoveryBuilder;
use tower_outcome::{BoxErrorAnswer, ErrorsAsFailures};

use super::health::Health;
use super::{Recovery, RecoveryConfig};

/// Automatic recovery: a health monitor over the calls' outcomes; when health degrades, run a
/// recovery action (an async hook, or a rebuild of the inner service from a factory).
///
/// - **Health**: the success rate over a window (default 30 s, at least 5 calls) below
///   `success_rate_threshold` (default 0.8), or 5 failures in a row.
/// - **Action**: [`hook`](RecoveryBuilder::hook) runs an async closure (clear a cache, reset a
///   pool) while calls go on; [`rebuild`](RecoveryBuilder::rebuild) builds a new inner service
///   (reconnect a channel): calls arriving meanwhile wait for it or are rejected
///   ([`DuringRebuild`](crate::DuringRebuild)), and none is sent to the old instance.
/// - **Hold-off**: 5 s after the first recovery, doubling to 300 s, less up to 20 % jitter
///   (seedable); a healthy window in between resets it.
/// - **Escalation**: after `max_attempts` (default 3) recoveries without improvement, the
///   escalation callback runs, an error event is logged and `heal_escalations_total` counts;
///   the service keeps serving.
///
/// - **Supervision**: an action that fails, panics or runs past `rebuild_timeout` (default
///   60 s) counts as a failed recovery: the old instance keeps serving, waiting calls go on to
///   it, and the next recovery comes after the hold-off.
/// - **Generations**: each completed recovery starts a generation; outcomes of calls sent
///   before it (to the old instance, or before the hook ran) are not counted against it.
///
/// The action runs on a spawned tokio task (a tokio runtime must be running).
///
/// ```
/// use std::time::Duration;
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_heal::RecoveryLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_heal::BoxError> {
/// let recovery = RecoveryLayer::builder()
///     .name("inventory-db")
///     .success_rate_threshold(0.8)
///     .window(Duration::from_secs(30))
///     .hook(|| async {
///         // clear caches, reset the connection pool...
///         Ok::<_, std::io::Error>(())
///     })?;
/// let mut svc = ServiceBuilder::new()
///     .layer(recovery)
///     .service(tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
/// assert_eq!(svc.ready().await?.call(1).await?, 1);
/// # Ok(()) }
/// ```
#[must_use]
pub struct RecoveryLayer<S, C = ErrorsAsFailures, A = BoxErrorAnswer> {
    pub(super) health: Arc<Health<S>>,
    pub(super) classifier: C,
    pub(super) _answer: PhantomData<fn() -> A>,
}

impl RecoveryLayer<()> {
    /// A builder, starting from the defaults of [`RecoveryConfig`].
    pub fn builder() -> RecoveryBuilder {
        RecoveryBuilder {
            config: RecoveryConfig::default(),
            classifier: ErrorsAsFailures,
            escalation: None,
            _answer: PhantomData,
        }
    }
}

impl<S, C, A> RecoveryLayer<S, C, A> {
    /// The component's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.health.name
    }
}

impl<S, C: Clone, A> Clone for RecoveryLayer<S, C, A> {
    fn clone(&self) -> Self {
        Self {
            health: Arc::clone(&self.health),
            classifier: self.classifier.clone(),
            _answer: PhantomData,
        }
    }
}

impl<S, C, A> fmt::Debug for RecoveryLayer<S, C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryLayer")
            .field("name", &self.health.name)
            .field("settings", &self.health.settings)
            .field("rebuild", &self.health.is_rebuild())
            .finish()
    }
}

impl<S: Clone, C: Clone, A> Layer<S> for RecoveryLayer<S, C, A> {
    type Service = Recovery<S, C, A>;

    fn layer(&self, inner: S) -> Self::Service {
        if self.health.is_rebuild() {
            let mut current = self
                .health
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.is_none() {
                *current = Some(inner.clone());
            }
        }
        let generation = self.health.generation.load(Ordering::Acquire);
        Recovery::new(
            inner,
            generation,
            Arc::clone(&self.health),
            self.classifier.clone(),
        )
    }
}

//! The recovery builder: typed setters named after the configuration's fields, and `build`.

use super::health::{Action, BoxFuture, EscalationListener, Health};
use super::layer::RecoveryLayer;
use super::{ConfigError, DuringRebuild, Escalation, RecoveryConfig};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
#[cfg(feature = "http")]
use tower_outcome::HttpAnswer;
use tower_outcome::{BoxError, BoxErrorAnswer, ErrorsAsFailures};

/// Builds a [`RecoveryLayer`]; setters have the names of [`RecoveryConfig`]'s fields.
///
/// ```
/// use std::time::Duration;
/// use tower_heal::{DuringRebuild, RecoveryLayer};
///
/// let bad: Result<RecoveryLayer<()>, _> = RecoveryLayer::builder()
///     .success_rate_threshold(0.0)
///     .hook(|| async { Ok::<_, std::io::Error>(()) });
/// assert_eq!(bad.unwrap_err().to_string(), "success_rate_threshold must be a rate in (0, 1], got 0");
///
/// // Rebuild a client from a factory; calls wait up to 5 s for the new one.
/// let layer = RecoveryLayer::builder()
///     .name("search")
///     .during_rebuild(DuringRebuild::Wait)
///     .max_rebuild_wait(Duration::from_secs(5))
///     .on_escalation(|e| eprintln!("{}: {} recoveries did not help", e.name, e.attempts))
///     .rebuild(|| async { Ok::<_, std::io::Error>(tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) })) })
///     .unwrap();
/// # let _ = layer;
/// ```
#[must_use]
pub struct RecoveryBuilder<C = ErrorsAsFailures, A = BoxErrorAnswer> {
    pub(super) config: RecoveryConfig,
    pub(super) classifier: C,
    pub(super) escalation: Option<EscalationListener>,
    pub(super) _answer: PhantomData<fn() -> A>,
}

impl<C, A> RecoveryBuilder<C, A> {
    /// Replaces the whole configuration (classifier, callback and answer mode stay). Takes the
    /// configuration by reference or by value. (A recovery layer needs a hook or a factory,
    /// so it is built from a configuration this way, not with a `from_config`.)
    pub fn config(mut self, config: impl std::borrow::Borrow<RecoveryConfig>) -> Self {
        config.borrow().clone_into(&mut self.config);
        self
    }

    /// `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// `success_rate_threshold`: recover below this success rate.
    pub fn success_rate_threshold(mut self, rate: f64) -> Self {
        self.config.success_rate_threshold = rate;
        self
    }

    /// `window_seconds`: the window the rate is measured over.
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window_seconds = window.as_secs_f64();
        self
    }

    /// `minimum_calls`: calls needed in the window before the rate counts.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// The old name of [`minimum_calls`](Self::minimum_calls).
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `minimum_calls`, as in the breaker"
    )]
    pub fn min_calls(self, calls: u32) -> Self {
        self.minimum_calls(calls)
    }

    /// `consecutive_failures`: recover after this many failures in a row; `None` turns it off.
    pub fn consecutive_failures(mut self, failures: impl Into<Option<u32>>) -> Self {
        self.config.consecutive_failures = failures.into();
        self
    }

    /// `max_attempts`: escalate after this many recoveries without improvement.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        self
    }

    /// `holdoff_seconds` and `max_holdoff_seconds`: the hold-off after the first recovery,
    /// and the most it grows to.
    pub fn holdoff(mut self, first: Duration, max: Duration) -> Self {
        self.config.holdoff_seconds = first.as_secs_f64();
        self.config.max_holdoff_seconds = max.as_secs_f64();
        self
    }

    /// `during_rebuild`: calls during a rebuild wait or are rejected.
    pub fn during_rebuild(mut self, during: DuringRebuild) -> Self {
        self.config.during_rebuild = during;
        self
    }

    /// `max_rebuild_wait_seconds`: the longest a call waits for a rebuild.
    pub fn max_rebuild_wait(mut self, wait: Duration) -> Self {
        self.config.max_rebuild_wait_seconds = wait.as_secs_f64();
        self
    }

    /// `rebuild_timeout_seconds`: the longest a recovery action (rebuild or hook) may run
    /// before it is abandoned as failed (default 60 s).
    pub fn rebuild_timeout(mut self, timeout: Duration) -> Self {
        self.config.rebuild_timeout_seconds = timeout.as_secs_f64();
        self
    }

    /// `seed`: makes the hold-off jitter reproducible.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// The classifier that decides what a failure is (default `ErrorsAsFailures`; for HTTP
    /// `HttpStatus`).
    pub fn classifier<C2>(self, classifier: C2) -> RecoveryBuilder<C2, A> {
        RecoveryBuilder {
            config: self.config,
            classifier,
            escalation: self.escalation,
            _answer: PhantomData,
        }
    }

    /// Calls `listener` on each escalation. It must be quick and must not panic.
    pub fn on_escalation(
        mut self,
        listener: impl Fn(&Escalation<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.escalation = Some(Arc::new(listener));
        self
    }

    /// HTTP mode: a call rejected during a rebuild is answered 503; the inner error type is
    /// kept.
    #[cfg(feature = "http")]
    pub fn http(self) -> RecoveryBuilder<C, HttpAnswer> {
        RecoveryBuilder {
            config: self.config,
            classifier: self.classifier,
            escalation: self.escalation,
            _answer: PhantomData,
        }
    }

    fn finish<S>(self, action: Action<S>) -> Result<RecoveryLayer<S, C, A>, ConfigError> {
        let settings = self.config.settings()?;
        let health = Health::new(self.config.name.into(), settings, action, self.escalation);
        Ok(RecoveryLayer {
            health: Arc::new(health),
            classifier: self.classifier,
            _answer: PhantomData,
        })
    }

    /// Builds the layer with a recovery hook: an async closure run on each recovery while
    /// calls go on.
    ///
    /// # Errors
    /// The first invalid value (see [`RecoveryConfig::validate`]).
    pub fn hook<S, H, F, E>(self, hook: H) -> Result<RecoveryLayer<S, C, A>, ConfigError>
    where
        H: Fn() -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let hook = move || -> BoxFuture<Result<(), BoxError>> {
            let run = hook();
            Box::pin(async move { run.await.map_err(Into::into) })
        };
        self.finish(Action::Hook(Arc::new(hook)))
    }

    /// Builds the layer with a factory: each recovery builds a new inner service, which
    /// replaces the old one in every clone. Calls arriving during the rebuild wait for it or
    /// are rejected ([`during_rebuild`](Self::during_rebuild)); none goes to the old instance.
    /// If the factory fails, panics or runs past `rebuild_timeout`, the old instance keeps
    /// serving and the waiting calls go on to it (after its own `poll_ready`).
    ///
    /// # Errors
    /// The first invalid value (see [`RecoveryConfig::validate`]).
    pub fn rebuild<S, M, F, E>(self, factory: M) -> Result<RecoveryLayer<S, C, A>, ConfigError>
    where
        M: Fn() -> F + Send + Sync + 'static,
        F: Future<Output = Result<S, E>> + Send + 'static,
        E: Into<BoxError>,
        S: Send + 'static,
    {
        let factory = move || -> BoxFuture<Result<S, BoxError>> {
            let run = factory();
            Box::pin(async move { run.await.map_err(Into::into) })
        };
        self.finish(Action::Rebuild(Arc::new(factory)))
    }
}

impl<C, A> fmt::Debug for RecoveryBuilder<C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryBuilder")
            .field("config", &self.config)
            .finish()
    }
}

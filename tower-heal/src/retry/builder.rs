//! The builder: typed setters named after the configuration's fields.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::budget::{Budget, BudgetKind};
use crate::replay::CloneRequest;
use crate::retry::config::Settings;
use crate::retry::state::{Hook, RetryEvent, Shared};
use crate::{
    AnyRequest, Backoff, BackoffKind, Class, ClassPolicy, ConfigError, DefaultClasses, Jitter,
    RetryBudget, RetryConfig, RetryIf, RetryLayer, Throttle,
};

/// Builds a [`RetryLayer`].
///
/// Setters have the names of [`RetryConfig`]'s fields and take typed values;
/// [`build`](Self::build) checks them all and returns a [`ConfigError`] for the first bad one.
///
/// ```
/// use std::time::Duration;
/// use tower_heal::{Backoff, Class, ClassPolicy, Jitter, RetryBudget, RetryLayer};
///
/// let layer = RetryLayer::builder().http_client()
///     .name("llm")
///     .max_retries(3)
///     .initial_delay(Duration::from_millis(500))
///     .max_delay(Duration::from_secs(20))
///     .jitter(Jitter::Decorrelated)
///     .policy(Class::RATE_LIMIT_429, ClassPolicy::new(3, Backoff::fixed(Duration::from_secs(60))))
///     .max_retry_after(Duration::from_secs(120))
///     .budget(RetryBudget::new().ratio(0.1))
///     .on_retry(|event| eprintln!("{} retry {} in {:?}", event.name, event.attempt, event.delay))
///     .build()
///     .unwrap();
/// assert_eq!(layer.name(), "llm");
///
/// let bad = RetryLayer::builder().multiplier(0.5).build();
/// assert_eq!(bad.unwrap_err().to_string(), "multiplier must be a number between 1 and 100, got 0.5");
/// ```
#[must_use]
pub struct RetryBuilder<C = DefaultClasses, G = AnyRequest, R = CloneRequest> {
    settings: Settings,
    error: Option<ConfigError>,
    classifier: C,
    gate: G,
    replay: R,
    hook: Option<Hook>,
}

impl RetryBuilder {
    pub(crate) fn new() -> Self {
        Self::with(DefaultClasses, AnyRequest, CloneRequest)
    }
}

impl<C, G, R> RetryBuilder<C, G, R> {
    pub(crate) fn with(classifier: C, gate: G, replay: R) -> Self {
        Self {
            settings: Settings::default(),
            error: None,
            classifier,
            gate,
            replay,
            hook: None,
        }
    }

    #[cfg(feature = "http")]
    fn preset<C2, G2, R2>(self, classifier: C2, gate: G2, replay: R2) -> RetryBuilder<C2, G2, R2> {
        RetryBuilder {
            settings: self.settings,
            error: self.error,
            classifier,
            gate,
            replay,
            hook: self.hook,
        }
    }

    /// Replaces the whole configuration (classifier, gate, replay and hook stay). Takes the
    /// configuration by reference or by value.
    pub fn config(mut self, config: impl std::borrow::Borrow<RetryConfig>) -> Self {
        match config.borrow().settings() {
            Ok(settings) => self.settings = settings,
            Err(error) => self.error = self.error.or(Some(error)),
        }
        self
    }

    /// `name`: the `retry` label of the metrics and events.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// `max_retries` of the default policy (default 2: 3 attempts).
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.settings.policies.default.max_retries = max_retries;
        self
    }

    /// The default policy's whole back-off.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.policies.default.backoff = backoff;
        self
    }

    /// `initial_delay` of the default (exponential) back-off.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        let backoff = &mut self.settings.policies.default.backoff;
        backoff.kind = BackoffKind::Exponential;
        backoff.initial = delay;
        backoff.max = backoff.max.max(delay);
        self
    }

    /// `delay`: a fixed back-off for the default policy.
    pub fn delay(mut self, delay: Duration) -> Self {
        let jitter = self.settings.policies.default.backoff.jitter;
        self.settings.policies.default.backoff = Backoff::fixed(delay).jitter(jitter);
        self
    }

    /// `max_delay` of the default back-off.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.settings.policies.default.backoff.max = max_delay;
        self
    }

    /// `multiplier` of the default back-off.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.settings.policies.default.backoff.multiplier = multiplier;
        self
    }

    /// `jitter` of the default back-off.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.settings.policies.default.backoff.jitter = jitter;
        self
    }

    /// The policy of one class (replacing the default for it).
    pub fn policy(mut self, class: Class, policy: ClassPolicy) -> Self {
        self.settings.policies.set(class.as_str(), policy);
        self
    }

    /// `max_retry_after`: the longest `Retry-After`, pushback or rejection `retry_after`
    /// honoured (default 60 s); beyond it the last result is returned without retry.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.settings.max_retry_after = max;
        self
    }

    /// `max_rejection_wait`: the longest `retry_after` of a family rejection (a full bulkhead;
    /// an open breaker when `circuit_open` is configured to retry) that the layer waits out
    /// (default 10 s, and never beyond `max_retry_after`): a full bulkhead's second is waited
    /// out. With the defaults a breaker's rejection is returned at once, whatever its
    /// `retry_after` (see the table in the crate docs).
    pub fn max_rejection_wait(mut self, max: Duration) -> Self {
        self.settings.max_rejection_wait = max;
        self
    }

    /// `max_total_delay`: bound on the summed back-off of one call; a back-off that would
    /// overrun it is not started.
    pub fn max_total_delay(mut self, max: Duration) -> Self {
        self.settings.max_total_delay = Some(max);
        self
    }

    /// The retry budget (on by default, with [`RetryBudget::default`]).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.settings.budget = BudgetKind::Ratio(budget);
        self
    }

    /// gRPC's retry throttle instead of the budget.
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.settings.budget = BudgetKind::Throttle(throttle);
        self
    }

    /// No budget: only the per-class retry counts bound the retries.
    pub fn no_budget(mut self) -> Self {
        self.settings.budget = BudgetKind::None;
        self
    }

    /// `seed` of the jitter's random numbers: the same seed and the same order of calls give
    /// the same delays.
    pub fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = Some(seed);
        self
    }

    /// `retry_non_idempotent`: retry a failure that may have reached the server (a timeout,
    /// a connection lost mid-call) even when the gate says the request is not idempotent
    /// (default `false`). The gate's [`allows`](crate::RetryGate::allows) still decides
    /// which requests are retried at all: over [`http_client`](Self::http_client), a POST without an
    /// `Idempotency-Key` is never retried.
    pub fn retry_non_idempotent(mut self, retry: bool) -> Self {
        self.settings.retry_non_idempotent = retry;
        self
    }

    /// Called before each retry's back-off, with what the tracing event says.
    pub fn on_retry(mut self, hook: impl Fn(&RetryEvent<'_>) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Classifies results with `classifier` (a [`ClassifyRetry`](crate::ClassifyRetry)).
    pub fn classifier<C2>(self, classifier: C2) -> RetryBuilder<C2, G, R> {
        RetryBuilder {
            settings: self.settings,
            error: self.error,
            classifier,
            gate: self.gate,
            replay: self.replay,
            hook: self.hook,
        }
    }

    /// Decides which requests may be retried with `gate` (a [`RetryGate`](crate::RetryGate)).
    pub fn gate<G2>(self, gate: G2) -> RetryBuilder<C, G2, R> {
        RetryBuilder {
            settings: self.settings,
            error: self.error,
            classifier: self.classifier,
            gate,
            replay: self.replay,
            hook: self.hook,
        }
    }

    /// Retries only the requests `predicate` accepts.
    pub fn retry_if<F>(self, predicate: F) -> RetryBuilder<C, RetryIf<F>, R> {
        self.gate(RetryIf::new(predicate))
    }

    /// Replays HTTP request bodies that are not `Clone` from a buffer of at most `max_bytes`.
    #[cfg(feature = "http")]
    pub fn replay_bodies(self, max_bytes: usize) -> RetryBuilder<C, G, crate::ReplayBodies> {
        RetryBuilder {
            settings: self.settings,
            error: self.error,
            classifier: self.classifier,
            gate: self.gate,
            replay: crate::ReplayBodies::new(max_bytes),
            hook: self.hook,
        }
    }

    /// Checks the settings and builds the layer.
    ///
    /// # Errors
    /// The first invalid value.
    pub fn build(self) -> Result<RetryLayer<C, G, R>, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        self.settings.validate()?;
        let settings = self.settings;
        let seed = settings.seed.unwrap_or_else(|| fastrand::u64(..));
        Ok(RetryLayer {
            shared: Arc::new(Shared::new(
                Arc::from(settings.name.as_str()),
                self.classifier,
                self.gate,
                self.replay,
                settings.policies,
                (
                    settings.max_retry_after,
                    settings.max_rejection_wait,
                    settings.max_total_delay,
                ),
                settings.retry_non_idempotent,
                Arc::new(Budget::new(settings.budget)),
                self.hook,
                seed,
            )),
        })
    }
}

#[cfg(feature = "http")]
impl<C, G, R> RetryBuilder<C, G, R> {
    /// The preset for HTTP clients: [`HttpClasses`](crate::HttpClasses) (502, 503, 504, 408,
    /// 429 with `Retry-After`), [`IdempotentMethods`](crate::IdempotentMethods) (only
    /// idempotent methods or requests with an `Idempotency-Key`), requests cloned (use
    /// [`replay_bodies`](RetryBuilder::replay_bodies) for bodies that are not `Clone`). Errors
    /// stay errors: the caller gets the last answer or error. The preset replaces the
    /// classifier, gate and replay set before it; the settings stay.
    ///
    /// ```
    /// use tower_heal::RetryLayer;
    ///
    /// let retry = RetryLayer::builder().http_client().max_retries(3).build().unwrap();
    /// # let _ = retry;
    /// ```
    pub fn http_client(
        self,
    ) -> RetryBuilder<crate::HttpClasses, crate::IdempotentMethods, CloneRequest> {
        self.preset(
            crate::HttpClasses::new(),
            crate::IdempotentMethods,
            CloneRequest,
        )
    }

    /// The preset for gRPC clients (over tonic's `Channel`), after gRPC's retry design (A6):
    /// [`GrpcClasses`](crate::GrpcClasses) retries `UNAVAILABLE` answers (honouring
    /// `grpc-retry-pushback-ms`) and RPCs that never left the client (a refused connection
    /// or stream); [`GrpcGate`](crate::GrpcGate) retries a timeout or a connection lost
    /// after the RPC went out only for the methods marked
    /// [`idempotent_method`](RetryBuilder::idempotent_method). The RPC's deadline
    /// (`grpc-timeout`, or a [`Deadline`](crate::Deadline) extension) bounds every back-off,
    /// and each retry's `grpc-timeout` is the time left. Bodies are replayed from a buffer of
    /// up to 64 KiB. The preset replaces the classifier, gate and replay set before it.
    ///
    /// tonic's `Channel` fails with its own error type, which the classes cannot look into:
    /// such an error counts as possibly sent. Map it into a `BoxError` under the layer
    /// (`.map_err(BoxError::from)`) so a refused connection is recognised.
    pub fn grpc_client(
        self,
    ) -> RetryBuilder<crate::GrpcClasses, crate::GrpcGate, crate::ReplayBodies> {
        self.preset(
            crate::GrpcClasses::new(),
            crate::GrpcGate::new(),
            crate::ReplayBodies::new(64 * 1024),
        )
    }
}

#[cfg(feature = "http")]
impl RetryLayer {
    /// The old spelling of `RetryLayer::builder().http_client()`.
    #[deprecated(since = "0.1.0", note = "use `RetryLayer::builder().http_client()`")]
    pub fn http() -> RetryBuilder<crate::HttpClasses, crate::IdempotentMethods, CloneRequest> {
        RetryLayer::builder().http_client()
    }

    /// The old spelling of `RetryLayer::builder().grpc_client()`.
    #[deprecated(since = "0.1.0", note = "use `RetryLayer::builder().grpc_client()`")]
    pub fn grpc() -> RetryBuilder<crate::GrpcClasses, crate::GrpcGate, crate::ReplayBodies> {
        RetryLayer::builder().grpc_client()
    }
}

#[cfg(feature = "http")]
impl<C, R> RetryBuilder<C, crate::GrpcGate, R> {
    /// Marks the gRPC method at `path` (`/package.Service/Method`) idempotent: a timeout or a
    /// connection lost after it went out is retried too.
    pub fn idempotent_method(mut self, path: impl Into<String>) -> Self {
        self.gate = self.gate.idempotent_method(path);
        self
    }
}

impl<C, G, R> fmt::Debug for RetryBuilder<C, G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("settings", &self.settings)
            .field("classifier", &std::any::type_name::<C>())
            .field("gate", &std::any::type_name::<G>())
            .field("replay", &std::any::type_name::<R>())
            .finish_non_exhaustive()
    }
}

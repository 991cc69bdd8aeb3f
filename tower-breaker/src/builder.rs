//! The builder: typed setters named after the configuration's fields.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tower_outcome::BoxErrorAnswer;
#[cfg(feature = "http")]
use tower_outcome::{GrpcAnswer, GrpcStatus, HttpAnswer, HttpStatus};

use crate::call_event::{CallListener, NoCallListener};
#[cfg(feature = "http")]
use crate::classifier::ImplyClassifier;
use crate::classifier::{Chosen, ClassifierChoice, DefaultClassifier};
use crate::common::Common;
use crate::event::{Listener, Transition, debug_listener};
use crate::{
    CircuitBreakerConfig, CircuitBreakerLayer, ConfigError, KeyedCircuitBreakerLayer, WindowConfig,
};

/// Builds a [`CircuitBreakerLayer`] (or a [`KeyedCircuitBreakerLayer`]).
///
/// Setters have the names of [`CircuitBreakerConfig`]'s fields and take typed values;
/// [`build`](Self::build) checks them all and returns a [`ConfigError`] for the first bad one.
///
/// ```
/// use std::time::Duration;
/// use tower_breaker::{CircuitBreakerLayer, HttpStatus};
///
/// let layer = CircuitBreakerLayer::builder()
///     .name("payments")
///     .failure_threshold(None)             // rate rule only
///     .failure_rate_threshold(0.5)
///     .count_window(50)
///     .minimum_calls(10)
///     .reset_timeout(Duration::from_secs(10))
///     .half_open_max_calls(3)
///     .success_threshold(2)
///     .classifier(HttpStatus::new())
///     .on_transition(|t| println!("{} {} -> {}", t.name, t.from, t.to))
///     .http()
///     .build()
///     .unwrap();
/// assert_eq!(layer.name(), "payments");
///
/// let bad = CircuitBreakerLayer::builder().failure_rate_threshold(1.5).build();
/// assert_eq!(bad.unwrap_err().to_string(), "failure_rate_threshold must be a rate above 0 and at most 1, got 1.5");
/// ```
#[must_use]
pub struct CircuitBreakerBuilder<C = DefaultClassifier, A = BoxErrorAnswer, L = NoCallListener> {
    config: CircuitBreakerConfig,
    classifier: C,
    listener: Option<Listener>,
    call_listener: L,
    _answer: PhantomData<fn() -> A>,
}

impl CircuitBreakerBuilder {
    pub(crate) fn new() -> Self {
        Self {
            config: CircuitBreakerConfig::default(),
            classifier: DefaultClassifier,
            listener: None,
            call_listener: NoCallListener,
            _answer: PhantomData,
        }
    }
}

impl<C, A, L> CircuitBreakerBuilder<C, A, L> {
    /// Replaces the whole configuration (classifier, listener and answer mode stay). Takes the
    /// configuration by reference or by value.
    pub fn config(mut self, config: impl Borrow<CircuitBreakerConfig>) -> Self {
        config.borrow().clone_into(&mut self.config);
        self
    }

    /// `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// `failure_threshold`: consecutive failures that open the circuit; `None` turns the rule off.
    pub fn failure_threshold(mut self, threshold: impl Into<Option<u32>>) -> Self {
        self.config.failure_threshold = threshold.into();
        self
    }

    /// `failure_rate_threshold`: the failure rate over the window that opens the circuit.
    pub fn failure_rate_threshold(mut self, rate: f64) -> Self {
        self.config.failure_rate_threshold = Some(rate);
        self
    }

    /// `slow_call_rate_threshold` and `slow_call_duration_seconds`: open when this share of
    /// the window's calls took at least `duration`.
    pub fn slow_call_rate_threshold(mut self, rate: f64, duration: Duration) -> Self {
        self.config.slow_call_rate_threshold = Some(rate);
        self.config.slow_call_duration_seconds = Some(duration.as_secs_f64());
        self
    }

    /// `window`: the last `size` calls.
    pub fn count_window(mut self, size: u32) -> Self {
        self.config.window = WindowConfig::Count { size };
        self
    }

    /// `window`: the last `length` of time, in `buckets` slices.
    pub fn time_window(mut self, length: Duration, buckets: u32) -> Self {
        self.config.window = WindowConfig::Time {
            seconds: length.as_secs_f64(),
            buckets,
        };
        self
    }

    /// `minimum_calls`: rate rules wait for this many calls in the window.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// `reset_timeout_seconds`: how long the circuit stays open before probing.
    pub fn reset_timeout(mut self, timeout: Duration) -> Self {
        self.config.reset_timeout_seconds = timeout.as_secs_f64();
        self
    }

    /// `half_open_max_calls`: probes in flight at once.
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.config.half_open_max_calls = calls;
        self
    }

    /// `success_threshold`: successful probes that close the circuit.
    pub fn success_threshold(mut self, successes: u32) -> Self {
        self.config.success_threshold = successes;
        self
    }

    /// `half_open_max_wait_seconds`: a probe stuck this long re-opens the circuit.
    pub fn half_open_max_wait(mut self, wait: Duration) -> Self {
        self.config.half_open_max_wait_seconds = Some(wait.as_secs_f64());
        self
    }

    /// `open_backoff`: double the open time on each consecutive re-open (capped at 10 × the
    /// reset timeout, jittered by up to 10 %).
    pub fn open_backoff(mut self, enabled: bool) -> Self {
        self.config.open_backoff = enabled;
        self
    }

    /// `seed`: makes the backoff jitter reproducible.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// `max_keys`: per-key breakers kept at once.
    pub fn max_keys(mut self, keys: u32) -> Self {
        self.config.max_keys = keys;
        self
    }

    /// `key_idle_timeout_seconds`: a key idle this long is forgotten.
    pub fn key_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.key_idle_timeout_seconds = timeout.as_secs_f64();
        self
    }

    /// Sets the classifier that decides what counts as a failure, whatever the answer mode.
    ///
    /// Without one, the answer mode implies it ([`DefaultClassifier`]):
    /// [`ErrorsAsFailures`](crate::ErrorsAsFailures) by default,
    /// [`HttpStatus`](crate::HttpStatus) with [`http`](Self::http),
    /// [`GrpcStatus`](crate::GrpcStatus) with [`grpc`](Self::grpc). For `reqwest::Client`, use
    /// [`http_client`](Self::http_client) or set `ReqwestStatus` (feature `reqwest`).
    ///
    /// A classifier that panics leaves its call without an outcome: it counts for nothing, as
    /// a cancelled call, and frees its probe slot.
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerBuilder<Chosen<C2>, A, L> {
        CircuitBreakerBuilder {
            config: self.config,
            classifier: Chosen(classifier),
            listener: self.listener,
            call_listener: self.call_listener,
            _answer: PhantomData,
        }
    }

    /// Tells `listener` how every call went: success, failure, ignored or rejected, with its
    /// duration (see [`CallListener`]). A closure does; so does a type of your own
    /// implementing [`CallListener`], which keeps the layer's type nameable.
    ///
    /// Without one, nothing is spent on it: no clock read, no branch.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use tower_breaker::{CallEvent, CallOutcome, CircuitBreakerLayer};
    ///
    /// let rejected = Arc::new(AtomicU64::new(0));
    /// let counter = rejected.clone();
    /// let breaker = CircuitBreakerLayer::builder()
    ///     .name("db")
    ///     .on_call(move |call: &CallEvent<'_>| {
    ///         if call.outcome == CallOutcome::Rejected {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build()
    ///     .unwrap();
    /// breaker.handle().force_open();
    /// assert!(breaker.acquire().is_err());
    /// assert_eq!(rejected.load(Ordering::Relaxed), 1);
    /// ```
    pub fn on_call<L2: CallListener>(self, listener: L2) -> CircuitBreakerBuilder<C, A, L2> {
        CircuitBreakerBuilder {
            config: self.config,
            classifier: self.classifier,
            listener: self.listener,
            call_listener: listener,
            _answer: PhantomData,
        }
    }

    /// Calls `listener` on every transition (after the new state is in force). It must be
    /// quick. Should it panic, the transition stands, the transitions made meanwhile are still
    /// reported in order, and then the panic carries on to the caller that made the transition.
    pub fn on_transition(
        mut self,
        listener: impl Fn(&Transition<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Answers rejections with HTTP responses: 503 with `Retry-After` and a one-line
    /// `text/plain` body naming the breaker. The inner error type is kept, so axum's
    /// `Infallible` stays (no `HandleErrorLayer` needed). Unless you set a
    /// [`classifier`](Self::classifier), the breaker classifies by HTTP status
    /// ([`HttpStatus`](crate::HttpStatus)): five 500s in a row open it.
    #[cfg(feature = "http")]
    pub fn http(self) -> CircuitBreakerBuilder<C, HttpAnswer, L> {
        self.answer()
    }

    /// Answers rejections with gRPC Trailers-Only responses: `grpc-status` 14 `UNAVAILABLE`,
    /// a `grpc-message` naming the breaker, `grpc-retry-pushback-ms`. The inner error type is
    /// kept. Unless you set a [`classifier`](Self::classifier), the breaker classifies by gRPC
    /// status ([`GrpcStatus`](crate::GrpcStatus)).
    #[cfg(feature = "http")]
    pub fn grpc(self) -> CircuitBreakerBuilder<C, GrpcAnswer, L> {
        self.answer()
    }

    /// The preset for a breaker in front of an HTTP client (`reqwest`, a hyper client, a
    /// `tower::Service` calling another server): classifies by HTTP status
    /// ([`HttpStatus`](crate::HttpStatus): 500, 502, 503, 504, 408 and transport errors fail)
    /// unless you set a [`classifier`](Self::classifier), and answers a rejection with an error
    /// (the breaker's [`Rejected`](crate::Rejected) in a `BoxError`), which is what a client's
    /// caller expects. [`http`](Self::http) is the server-side mode: answer the HTTP caller
    /// yourself. In front of `reqwest::Client` it needs the `reqwest` feature, with which
    /// `HttpStatus` reads a `reqwest::Response` too.
    ///
    /// ```
    /// use tower_breaker::{BoxErrorAnswer, CircuitBreakerLayer, HttpStatus};
    ///
    /// let layer: CircuitBreakerLayer<HttpStatus, BoxErrorAnswer> =
    ///     CircuitBreakerLayer::builder().name("billing-api").http_client().build().unwrap();
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "http")]
    pub fn http_client(self) -> CircuitBreakerBuilder<C::Choice, BoxErrorAnswer, L>
    where
        C: ImplyClassifier<HttpStatus>,
    {
        CircuitBreakerBuilder {
            config: self.config,
            classifier: self.classifier.imply(HttpStatus::new()),
            listener: self.listener,
            call_listener: self.call_listener,
            _answer: PhantomData,
        }
    }

    /// The preset for a breaker in front of a gRPC client (a tonic `Channel`): classifies by
    /// `grpc-status` ([`GrpcStatus`](crate::GrpcStatus)) unless you set a
    /// [`classifier`](Self::classifier), and answers a rejection with an error (the breaker's
    /// [`Rejected`](crate::Rejected) in a `BoxError`). [`grpc`](Self::grpc) is the server-side
    /// mode: answer the gRPC caller yourself.
    #[cfg(feature = "http")]
    pub fn grpc_client(self) -> CircuitBreakerBuilder<C::Choice, BoxErrorAnswer, L>
    where
        C: ImplyClassifier<GrpcStatus>,
    {
        CircuitBreakerBuilder {
            config: self.config,
            classifier: self.classifier.imply(GrpcStatus::new()),
            listener: self.listener,
            call_listener: self.call_listener,
            _answer: PhantomData,
        }
    }

    #[cfg(feature = "http")]
    fn answer<A2>(self) -> CircuitBreakerBuilder<C, A2, L> {
        CircuitBreakerBuilder {
            config: self.config,
            classifier: self.classifier,
            listener: self.listener,
            call_listener: self.call_listener,
            _answer: PhantomData,
        }
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// The first invalid value (see [`CircuitBreakerConfig::validate`]).
    pub fn build(self) -> Result<CircuitBreakerLayer<C::Classifier, A, L>, ConfigError>
    where
        C: ClassifierChoice<A>,
    {
        let settings = self.config.settings()?;
        let classifier = self.classifier.into_classifier();
        let common = Common::new(
            &settings,
            classifier,
            self.listener,
            self.call_listener,
            false,
        );
        Ok(CircuitBreakerLayer::from_parts(Arc::new(common)))
    }

    /// Checks the configuration and builds a per-key layer: `key` maps each request to the
    /// key whose breaker it goes through (a host, a tenant, a route template; never a raw path).
    ///
    /// # Errors
    /// The first invalid value (see [`CircuitBreakerConfig::validate`]).
    pub fn build_keyed<K, F>(
        self,
        key: F,
    ) -> Result<KeyedCircuitBreakerLayer<K, F, C::Classifier, A, L>, ConfigError>
    where
        K: Hash + Eq,
        C: ClassifierChoice<A>,
    {
        let settings = self.config.settings()?;
        let classifier = self.classifier.into_classifier();
        let common = Common::new(
            &settings,
            classifier,
            self.listener,
            self.call_listener,
            true,
        );
        Ok(KeyedCircuitBreakerLayer::from_parts(Arc::new(common), key))
    }
}

impl<C, A, L> fmt::Debug for CircuitBreakerBuilder<C, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("CircuitBreakerBuilder");
        s.field("config", &self.config)
            .field("classifier", &std::any::type_name::<C>());
        debug_listener(&self.listener, &mut s);
        s.field("answer", &std::any::type_name::<A>())
            .field("call_listener", &std::any::type_name::<L>())
            .finish()
    }
}

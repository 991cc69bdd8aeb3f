//! The builder: typed setters named after the configuration's fields.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use tower_outcome::BoxErrorAnswer;
#[cfg(feature = "http")]
use tower_outcome::{GrpcAnswer, HttpAnswer};

use crate::compartment::Compartment;
use crate::cost::TypeName;
#[cfg(feature = "http")]
use crate::hold::UntilBodyEnd;
use crate::{
    BulkheadConfig, BulkheadLayer, ConfigError, EstimateStands, KeyedBulkheadConfig,
    KeyedBulkheadLayer, Overflow, PerRequest, UntilResponse,
};

/// Builds a [`BulkheadLayer`] (or a [`KeyedBulkheadLayer`]).
///
/// Setters have the names of [`BulkheadConfig`]'s fields and take typed values;
/// [`build`](Self::build) checks them all and returns a [`ConfigError`] for the first bad one.
///
/// ```
/// use std::time::Duration;
/// use tower_bulkhead::{BulkheadLayer, HeaderCost};
///
/// let layer = BulkheadLayer::builder()
///     .name("llm")
///     .max_concurrent(8)
///     .max_wait(Duration::from_secs(2))               // wait up to 2 s, FIFO
///     .token_budget(20_000)                           // tokens in flight at once
///     .refill(100_000, Duration::from_secs(60))       // and 100k tokens per minute
///     .cost(HeaderCost::new("x-estimated-tokens").fallback(500))
///     .actual_cost(HeaderCost::new("x-usage-tokens"))
///     .http()
///     .build()
///     .unwrap();
/// assert_eq!(layer.name(), "llm");
///
/// let bad = BulkheadLayer::builder().max_concurrent(0).build();
/// assert_eq!(bad.unwrap_err().to_string(), "max_concurrent must be between 1 and 16777216, got 0");
/// ```
#[must_use]
pub struct BulkheadBuilder<
    E = PerRequest,
    R = EstimateStands,
    H = UntilResponse,
    A = BoxErrorAnswer,
> {
    config: BulkheadConfig,
    keyed: KeyedBulkheadConfig,
    cost: E,
    actual: R,
    _mode: PhantomData<fn() -> (H, A)>,
}

impl BulkheadBuilder {
    pub(crate) fn new() -> Self {
        Self {
            config: BulkheadConfig::default(),
            keyed: KeyedBulkheadConfig::default(),
            cost: PerRequest,
            actual: EstimateStands,
            _mode: PhantomData,
        }
    }
}

impl<E, R, H, A> BulkheadBuilder<E, R, H, A> {
    /// Replaces the whole configuration (cost functions and modes stay).
    pub fn config(mut self, config: BulkheadConfig) -> Self {
        self.config = config;
        self
    }

    /// `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// `max_concurrent`: calls in flight at once.
    pub const fn max_concurrent(mut self, calls: u32) -> Self {
        self.config.max_concurrent = calls;
        self
    }

    /// `max_wait_seconds`: how long a call may wait for room (FIFO); zero rejects at once.
    pub const fn max_wait(mut self, wait: Duration) -> Self {
        self.config.max_wait_seconds = wait.as_secs_f64();
        self
    }

    /// `max_waiters`: calls waiting at once.
    pub const fn max_waiters(mut self, waiters: u32) -> Self {
        self.config.max_waiters = waiters;
        self
    }

    /// `token_budget`: the in-flight budget (tokens held by calls in flight, given back when
    /// they end).
    pub const fn token_budget(mut self, tokens: u64) -> Self {
        self.config.token_budget = Some(tokens);
        self
    }

    /// `refill_tokens` and `refill_period_seconds`: the rate budget (tokens spent, refilled by
    /// `tokens` every `period`, up to `burst_tokens`, by default `tokens`).
    pub const fn refill(mut self, tokens: u64, period: Duration) -> Self {
        self.config.refill_tokens = Some(tokens);
        self.config.refill_period_seconds = Some(period.as_secs_f64());
        self
    }

    /// `burst_tokens`: the most the rate budget holds.
    pub const fn burst_tokens(mut self, tokens: u64) -> Self {
        self.config.burst_tokens = Some(tokens);
        self
    }

    /// `retry_after_seconds`: the `Retry-After` of a full compartment.
    pub const fn retry_after(mut self, delay: Duration) -> Self {
        self.config.retry_after_seconds = delay.as_secs_f64();
        self
    }

    /// Per-key layers: `max_keys`.
    pub const fn max_keys(mut self, keys: u32) -> Self {
        self.keyed.max_keys = keys;
        self
    }

    /// Per-key layers: `key_idle_timeout_seconds`.
    pub const fn key_idle_timeout(mut self, timeout: Duration) -> Self {
        self.keyed.key_idle_timeout_seconds = timeout.as_secs_f64();
        self
    }

    /// Per-key layers: `max_key_length`, in bytes of the key's `Debug` form.
    pub const fn max_key_length(mut self, bytes: u32) -> Self {
        self.keyed.max_key_length = bytes;
        self
    }

    /// Per-key layers: `overflow`.
    pub const fn overflow(mut self, overflow: Overflow) -> Self {
        self.keyed.overflow = overflow;
        self
    }

    /// Per-key layers: the configuration of the key named `key` (its `name` is ignored).
    pub fn key_config(mut self, key: impl Into<String>, config: BulkheadConfig) -> Self {
        self.keyed.bulkheads.insert(key.into(), config);
        self
    }

    /// Sets how a request's cost is estimated (default [`PerRequest`]: 1 token). Runs only
    /// when the compartment has a token budget.
    pub fn cost<E2>(self, cost: E2) -> BulkheadBuilder<E2, R, H, A> {
        BulkheadBuilder {
            config: self.config,
            keyed: self.keyed,
            cost,
            actual: self.actual,
            _mode: PhantomData,
        }
    }

    /// Sets how the actual cost is read from a response (default [`EstimateStands`]).
    pub fn actual_cost<R2>(self, actual: R2) -> BulkheadBuilder<E, R2, H, A> {
        BulkheadBuilder {
            config: self.config,
            keyed: self.keyed,
            cost: self.cost,
            actual,
            _mode: PhantomData,
        }
    }

    #[cfg(feature = "http")]
    fn mode<H2, A2>(self) -> BulkheadBuilder<E, R, H2, A2> {
        BulkheadBuilder {
            config: self.config,
            keyed: self.keyed,
            cost: self.cost,
            actual: self.actual,
            _mode: PhantomData,
        }
    }

    /// Answers rejections with HTTP 503/429 + `Retry-After` (see [`BulkheadLayer::http`]).
    #[cfg(feature = "http")]
    pub fn http(self) -> BulkheadBuilder<E, R, H, HttpAnswer> {
        self.mode()
    }

    /// Answers rejections with gRPC `RESOURCE_EXHAUSTED` (see [`BulkheadLayer::grpc`]).
    #[cfg(feature = "http")]
    pub fn grpc(self) -> BulkheadBuilder<E, R, H, GrpcAnswer> {
        self.mode()
    }

    /// Holds permits until the response body ends (see [`BulkheadLayer::hold_until_body_end`]).
    #[cfg(feature = "http")]
    pub fn hold_until_body_end(self) -> BulkheadBuilder<E, R, UntilBodyEnd, A> {
        self.mode()
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    /// The first invalid value (see [`BulkheadConfig::validate`]).
    pub fn build(self) -> Result<BulkheadLayer<E, R, H, A>, ConfigError> {
        let limits = self.config.limits()?;
        let common = BulkheadLayer::<E, R, H, A>::common(limits.name.clone());
        let compartment = Compartment::new(&limits, common, None);
        Ok(BulkheadLayer::from_parts(
            compartment,
            self.cost,
            self.actual,
        ))
    }

    /// Checks the configuration and builds a per-key layer: `key` maps each request to the
    /// key of its compartment (an agent's name, a tenant, a route template; never a raw path).
    /// Every key gets this builder's configuration, or its own from
    /// [`key_config`](Self::key_config).
    ///
    /// # Errors
    /// The first invalid value (see [`KeyedBulkheadConfig::validate`]), or a `key_config`
    /// name that is not a valid key.
    pub fn build_keyed<Req, K, F>(
        self,
        key: F,
    ) -> Result<KeyedBulkheadLayer<K, F, E, R, H, A>, ConfigError>
    where
        F: Fn(&Req) -> K,
        K: Hash + Eq + std::str::FromStr,
    {
        let name = self.config.name.clone();
        let config = KeyedBulkheadConfig {
            name,
            default: self.config,
            ..self.keyed
        };
        KeyedBulkheadLayer::from_limits(config.limits()?, key, self.cost, self.actual)
    }
}

impl<E, R, H, A> fmt::Debug for BulkheadBuilder<E, R, H, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadBuilder")
            .field("config", &self.config)
            .field("keyed", &self.keyed)
            .field("cost", &TypeName::<E>::new())
            .field("actual", &TypeName::<R>::new())
            .field("hold", &TypeName::<H>::new())
            .field("answer", &TypeName::<A>::new())
            .finish()
    }
}

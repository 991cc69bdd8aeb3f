//! The operator's handle: read the state, force it, change thresholds live.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::clock::nanos;
use crate::common::Common;
use crate::config::{MAX_DURATION, MAX_PROBES, count, rate};
use crate::event::TransitionReason;
use crate::machine::Core;
use crate::{ConfigError, State};

/// What a handle needs of a breaker, without its classifier type.
pub(crate) trait Breaker: Send + Sync {
    fn name(&self) -> &str;
    fn key(&self) -> Option<&str>;
    fn state(&self) -> State;
    fn force(&self, to: State);
    fn open_remaining(&self) -> Option<Duration>;
    fn consecutive_failures(&self) -> u32;
    fn window_totals(&self) -> Option<(u32, u32, u32)>;
    fn thresholds(&self) -> Thresholds<'_>;
}

impl<C: Send + Sync + 'static, L: Send + Sync + 'static> Breaker for Core<C, L> {
    fn name(&self) -> &str {
        &self.common.name
    }
    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    fn state(&self) -> State {
        Core::state(self)
    }
    fn force(&self, to: State) {
        self.transition(None, to, TransitionReason::Handle);
    }
    fn open_remaining(&self) -> Option<Duration> {
        self.open_until()
    }
    fn consecutive_failures(&self) -> u32 {
        Core::consecutive_failures(self)
    }
    fn window_totals(&self) -> Option<(u32, u32, u32)> {
        Core::window_totals(self)
    }
    fn thresholds(&self) -> Thresholds<'_> {
        Thresholds::of(&self.common)
    }
}

/// The live-changeable thresholds of a layer, shared by all its breakers.
pub(crate) struct Thresholds<'a> {
    limits: &'a crate::common::Limits,
    has_window: bool,
    has_slow_duration: bool,
}

impl<'a> Thresholds<'a> {
    pub(crate) fn of<C, L>(common: &'a Common<C, L>) -> Self {
        Self {
            limits: &common.limits,
            has_window: common.window.is_some(),
            has_slow_duration: common.slow_call_duration.is_some(),
        }
    }

    fn rules_left(
        &self,
        failure_threshold: u32,
        failure_rate: u64,
        slow_rate: u64,
    ) -> Result<(), ConfigError> {
        if failure_threshold == 0 && failure_rate == 0 && slow_rate == 0 {
            return Err(ConfigError::Missing {
                field: "failure_threshold",
                needs: "a value, or a rate rule (no trip rule would be left)",
            });
        }
        Ok(())
    }

    pub(crate) fn set_failure_threshold(&self, value: Option<u32>) -> Result<(), ConfigError> {
        let value = value
            .map(|n| count("failure_threshold", n, u32::MAX))
            .transpose()?
            .unwrap_or(0);
        self.rules_left(
            value,
            self.limits.failure_rate.load(Relaxed),
            self.limits.slow_rate.load(Relaxed),
        )?;
        self.limits.failure_threshold.store(value, Relaxed);
        Ok(())
    }

    pub(crate) fn set_failure_rate_threshold(&self, value: Option<f64>) -> Result<(), ConfigError> {
        let bits = self.rate_bits("failure_rate_threshold", value)?;
        self.rules_left(
            self.limits.failure_threshold.load(Relaxed),
            bits,
            self.limits.slow_rate.load(Relaxed),
        )?;
        self.limits.failure_rate.store(bits, Relaxed);
        Ok(())
    }

    pub(crate) fn set_slow_call_rate_threshold(
        &self,
        value: Option<f64>,
    ) -> Result<(), ConfigError> {
        if value.is_some() && !self.has_slow_duration {
            return Err(ConfigError::Missing {
                field: "slow_call_rate_threshold",
                needs: "slow_call_duration_seconds when the layer is built",
            });
        }
        let bits = self.rate_bits("slow_call_rate_threshold", value)?;
        self.rules_left(
            self.limits.failure_threshold.load(Relaxed),
            self.limits.failure_rate.load(Relaxed),
            bits,
        )?;
        self.limits.slow_rate.store(bits, Relaxed);
        Ok(())
    }

    fn rate_bits(&self, field: &'static str, value: Option<f64>) -> Result<u64, ConfigError> {
        match value {
            None => Ok(0),
            Some(_) if !self.has_window => Err(ConfigError::Missing {
                field,
                needs: "a rate rule when the layer is built (the window is made then)",
            }),
            Some(r) => rate(field, r).map(f64::to_bits),
        }
    }

    pub(crate) fn set_minimum_calls(&self, value: u32) -> Result<(), ConfigError> {
        self.limits
            .minimum_calls
            .store(count("minimum_calls", value, u32::MAX)?, Relaxed);
        Ok(())
    }

    pub(crate) fn set_reset_timeout(&self, value: Duration) -> Result<(), ConfigError> {
        let ns = positive("reset_timeout_seconds", value)?;
        self.limits.reset_timeout_ns.store(ns, Relaxed);
        Ok(())
    }

    pub(crate) fn set_half_open_max_calls(&self, value: u32) -> Result<(), ConfigError> {
        let value = count("half_open_max_calls", value, MAX_PROBES)?;
        self.limits.half_open_max_calls.store(value, Relaxed);
        Ok(())
    }

    pub(crate) fn set_success_threshold(&self, value: u32) -> Result<(), ConfigError> {
        let value = count("success_threshold", value, MAX_PROBES)?;
        self.limits.success_threshold.store(value, Relaxed);
        Ok(())
    }

    pub(crate) fn set_half_open_max_wait(&self, value: Duration) -> Result<(), ConfigError> {
        let ns = positive("half_open_max_wait_seconds", value)?;
        self.limits.half_open_max_wait_ns.store(ns, Relaxed);
        Ok(())
    }
}

fn positive(field: &'static str, value: Duration) -> Result<u64, ConfigError> {
    if value.is_zero() || value > MAX_DURATION {
        return Err(ConfigError::Duration {
            field,
            seconds: value.as_secs_f64(),
        });
    }
    Ok(nanos(value))
}

/// A handle on one circuit breaker: read its state, force it, change its thresholds live.
///
/// Cheap to clone; every clone and the layer it came from control the same breaker.
///
/// ```
/// use tower_breaker::{CircuitBreakerLayer, State};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = CircuitBreakerLayer::new();
/// let handle = layer.handle();
/// assert_eq!(handle.state(), State::Closed);
/// handle.force_open();
/// assert_eq!(handle.state(), State::ForcedOpen);
/// handle.set_failure_threshold(Some(3)).unwrap();
/// assert!(handle.set_failure_threshold(Some(0)).is_err());
/// handle.reset();
/// assert_eq!(handle.state(), State::Closed);
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct CircuitBreakerHandle {
    breaker: Arc<dyn Breaker>,
}

impl CircuitBreakerHandle {
    pub(crate) fn new(breaker: Arc<dyn Breaker>) -> Self {
        Self { breaker }
    }

    /// The breaker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.breaker.name()
    }

    /// For a per-key breaker, its key (`Debug` form).
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.breaker.key()
    }

    /// The state a call arriving now would find. Reading it changes nothing: an open breaker
    /// whose reset timeout has passed reads as [`State::HalfOpen`] (so a breaker nobody calls
    /// does not read as open for ever), and the transition itself, with its listener call, log
    /// line and metrics, is made by the next call. Until then the `breaker_state` gauge still
    /// shows `open`: the gauge and `breaker_transitions_total` move only on transitions that
    /// happened, never because something looked. Likewise, probes stuck past
    /// `half_open_max_wait` read as half-open until the next call re-opens the circuit.
    #[must_use]
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// How long until probing may start, while [`state`](Self::state) reads open; `None` once
    /// the reset timeout has passed (the breaker then reads half-open).
    #[must_use]
    pub fn open_remaining(&self) -> Option<Duration> {
        self.breaker.open_remaining()
    }

    /// The current run of consecutive failures while closed.
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        self.breaker.consecutive_failures()
    }

    /// `(calls, failures, slow calls)` in the rate window, if the breaker has one.
    #[must_use]
    pub fn window_totals(&self) -> Option<(u32, u32, u32)> {
        self.breaker.window_totals()
    }

    /// Rejects every call until [`reset`](Self::reset) (or another forcing call).
    ///
    /// Forcing the state the breaker is already in changes nothing and reports nothing: no
    /// transition event, no listener call. So do [`disable`](Self::disable) and
    /// [`metrics_only`](Self::metrics_only).
    pub fn force_open(&self) {
        self.breaker.force(State::ForcedOpen);
    }

    /// Lets every call through, recording metrics and nothing else, until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.breaker.force(State::Disabled);
    }

    /// Lets every call through and evaluates the trip rules, reporting (as a `tracing` event)
    /// when one would open the circuit, without ever opening it, until [`reset`](Self::reset).
    pub fn metrics_only(&self) {
        self.breaker.force(State::MetricsOnly);
    }

    /// Closes the circuit with clean windows and failure counts.
    ///
    /// On a breaker that is already closed it still clears the counts, but reports no
    /// transition (closed to closed is no change of state): no event, no listener call, no
    /// `breaker_transitions_total` (resilience4j likewise publishes no state-transition event
    /// when the state does not change).
    pub fn reset(&self) {
        self.breaker.force(State::Closed);
    }

    /// Changes `failure_threshold` (`None` turns the consecutive rule off).
    ///
    /// # Errors
    /// A zero threshold, or turning off the last trip rule.
    pub fn set_failure_threshold(&self, value: Option<u32>) -> Result<(), ConfigError> {
        self.breaker.thresholds().set_failure_threshold(value)
    }

    /// Changes `failure_rate_threshold` (`None` turns the rule off).
    ///
    /// # Errors
    /// A rate outside (0, 1]; a breaker built without a rate rule (it has no window).
    pub fn set_failure_rate_threshold(&self, value: Option<f64>) -> Result<(), ConfigError> {
        self.breaker.thresholds().set_failure_rate_threshold(value)
    }

    /// Changes `slow_call_rate_threshold` (`None` turns the rule off).
    ///
    /// # Errors
    /// A rate outside (0, 1]; a breaker built without a window or a slow-call duration.
    pub fn set_slow_call_rate_threshold(&self, value: Option<f64>) -> Result<(), ConfigError> {
        self.breaker
            .thresholds()
            .set_slow_call_rate_threshold(value)
    }

    /// Changes `minimum_calls`.
    ///
    /// # Errors
    /// Zero.
    pub fn set_minimum_calls(&self, value: u32) -> Result<(), ConfigError> {
        self.breaker.thresholds().set_minimum_calls(value)
    }

    /// Changes the reset timeout, for circuits opened from now on.
    ///
    /// # Errors
    /// Zero, or more than [`MAX_DURATION`](crate::MAX_DURATION).
    pub fn set_reset_timeout(&self, value: Duration) -> Result<(), ConfigError> {
        self.breaker.thresholds().set_reset_timeout(value)
    }

    /// Changes `half_open_max_calls`.
    ///
    /// # Errors
    /// Zero, or more than 65535.
    pub fn set_half_open_max_calls(&self, value: u32) -> Result<(), ConfigError> {
        self.breaker.thresholds().set_half_open_max_calls(value)
    }

    /// Changes `success_threshold`.
    ///
    /// # Errors
    /// Zero, or more than 65535.
    pub fn set_success_threshold(&self, value: u32) -> Result<(), ConfigError> {
        self.breaker.thresholds().set_success_threshold(value)
    }

    /// Changes `half_open_max_wait`.
    ///
    /// # Errors
    /// Zero, or more than [`MAX_DURATION`](crate::MAX_DURATION).
    pub fn set_half_open_max_wait(&self, value: Duration) -> Result<(), ConfigError> {
        self.breaker.thresholds().set_half_open_max_wait(value)
    }
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerHandle")
            .field("name", &self.name())
            .field("key", &self.key())
            .finish_non_exhaustive()
    }
}

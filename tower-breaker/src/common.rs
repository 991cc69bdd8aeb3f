//! What every breaker of one layer shares: name, limits, classifier, listener, metrics, clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use crate::clock::{Clock, nanos};
use crate::config::{Settings, WindowSpec};
use crate::event::Listener;
use crate::metrics::Metrics;

/// Thresholds that a handle may change while the breaker runs.
pub(crate) struct Limits {
    pub(crate) failure_threshold: AtomicU32,
    /// `f64` bits; 0 means the rule is off.
    pub(crate) failure_rate: AtomicU64,
    pub(crate) slow_rate: AtomicU64,
    pub(crate) minimum_calls: AtomicU32,
    pub(crate) reset_timeout_ns: AtomicU64,
    pub(crate) half_open_max_calls: AtomicU32,
    pub(crate) success_threshold: AtomicU32,
    /// 0 means "the reset timeout".
    pub(crate) half_open_max_wait_ns: AtomicU64,
}

fn rate_bits(rate: Option<f64>) -> u64 {
    rate.map_or(0, f64::to_bits)
}

#[inline]
pub(crate) fn rate_of(bits: u64) -> Option<f64> {
    (bits != 0).then(|| f64::from_bits(bits))
}

/// What every breaker of one layer shares (one breaker, or all keys of a per-key layer).
pub(crate) struct Common<C, L> {
    pub(crate) name: Arc<str>,
    clock: Clock,
    pub(crate) limits: Limits,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) window: Option<WindowSpec>,
    pub(crate) open_backoff: bool,
    pub(crate) seed: u64,
    pub(crate) classifier: C,
    pub(crate) listener: Option<Listener>,
    /// Told about every call; `NoCallListener` (compiled away) unless one is set.
    pub(crate) call_listener: L,
    pub(crate) metrics: Metrics,
    pub(crate) max_keys: u32,
    pub(crate) key_idle_timeout: Duration,
}

impl<C, L> Common<C, L> {
    pub(crate) fn new(
        settings: &Settings,
        classifier: C,
        listener: Option<Listener>,
        call_listener: L,
        keyed: bool,
    ) -> Self {
        Self {
            name: Arc::clone(&settings.name),
            clock: Clock::new(),
            limits: Limits {
                failure_threshold: AtomicU32::new(settings.failure_threshold),
                failure_rate: AtomicU64::new(rate_bits(settings.failure_rate)),
                slow_rate: AtomicU64::new(rate_bits(settings.slow_rate)),
                minimum_calls: AtomicU32::new(settings.minimum_calls),
                reset_timeout_ns: AtomicU64::new(nanos(settings.reset_timeout)),
                half_open_max_calls: AtomicU32::new(settings.half_open_max_calls),
                success_threshold: AtomicU32::new(settings.success_threshold),
                half_open_max_wait_ns: AtomicU64::new(settings.half_open_max_wait.map_or(0, nanos)),
            },
            slow_call_duration: settings.slow_call_duration,
            window: settings.window,
            open_backoff: settings.open_backoff,
            seed: settings.seed.unwrap_or_else(|| fastrand::u64(..)),
            classifier,
            listener,
            call_listener,
            metrics: Metrics::new(&settings.name, keyed),
            max_keys: settings.max_keys,
            key_idle_timeout: settings.key_idle_timeout,
        }
    }

    /// Nanoseconds since the layer was built, on tokio's (pausable) clock.
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    #[inline]
    pub(crate) fn reset_timeout(&self) -> Duration {
        Duration::from_nanos(self.limits.reset_timeout_ns.load(Relaxed))
    }

    #[inline]
    pub(crate) fn half_open_max_wait_ns(&self) -> u64 {
        match self.limits.half_open_max_wait_ns.load(Relaxed) {
            0 => self.limits.reset_timeout_ns.load(Relaxed),
            ns => ns,
        }
    }
}

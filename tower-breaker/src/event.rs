//! Transition events and listeners.

use std::fmt;
use std::sync::Arc;

use crate::State;

/// Why the breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionReason {
    /// `failure_threshold` consecutive failures.
    ConsecutiveFailures,
    /// The failure rate over the window reached `failure_rate_threshold`.
    FailureRate,
    /// The slow-call rate over the window reached `slow_call_rate_threshold`.
    SlowCallRate,
    /// `reset_timeout` elapsed while open: probing may start.
    ResetTimeoutElapsed,
    /// `success_threshold` probes succeeded.
    ProbesSucceeded,
    /// A probe failed (or was slow).
    ProbeFailed,
    /// A probe neither finished nor was dropped within `half_open_max_wait`.
    ProbeTimedOut,
    /// A handle asked for it.
    Handle,
}

impl TransitionReason {
    /// A snake-case label, used in events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConsecutiveFailures => "consecutive_failures",
            Self::FailureRate => "failure_rate",
            Self::SlowCallRate => "slow_call_rate",
            Self::ResetTimeoutElapsed => "reset_timeout_elapsed",
            Self::ProbesSucceeded => "probes_succeeded",
            Self::ProbeFailed => "probe_failed",
            Self::ProbeTimedOut => "probe_timed_out",
            Self::Handle => "handle",
        }
    }

    /// What happened, in words, for logs and messages.
    const fn describe(self) -> &'static str {
        match self {
            Self::ConsecutiveFailures => "consecutive failures reached failure_threshold",
            Self::FailureRate => "the failure rate reached failure_rate_threshold",
            Self::SlowCallRate => "the slow-call rate reached slow_call_rate_threshold",
            Self::ResetTimeoutElapsed => "the reset timeout elapsed",
            Self::ProbesSucceeded => "the probes succeeded",
            Self::ProbeFailed => "a probe failed",
            Self::ProbeTimedOut => "a probe outlived half_open_max_wait",
            Self::Handle => "set through a handle",
        }
    }
}

/// Reads as a clause: "consecutive failures reached failure_threshold".
///
/// ```
/// use tower_breaker::TransitionReason;
///
/// assert_eq!(TransitionReason::ProbeFailed.to_string(), "a probe failed");
/// ```
impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.describe())
    }
}

/// A state change, as handed to a listener and emitted as a `tracing` event.
///
/// `from` and `to` always differ: forcing the state a breaker is already in (`force_open()`
/// twice, `reset()` of a closed breaker) is not reported.
///
/// Transitions are reported one at a time and in the order they were made, even when callers
/// race: each one's `from` is the previous one's `to`. Each is reported by the caller that
/// made it, after the breaker's lock is released, or, while another caller is busy reporting
/// one, by that caller right after it. So a listener may use the handle, even force the state:
/// that transition is reported as soon as the listener returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition<'a> {
    /// The breaker's `name`.
    pub name: &'a str,
    /// For a per-key breaker, the key (its `Debug` form); `None` otherwise.
    pub key: Option<&'a str>,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: TransitionReason,
}

/// Reads as a log line: `circuit breaker "inventory" closed -> open: consecutive failures
/// reached failure_threshold` (with `key "eu"` after the name for a per-key breaker).
///
/// ```
/// use tower_breaker::CircuitBreakerLayer;
///
/// let layer = CircuitBreakerLayer::builder()
///     .name("inventory")
///     .on_transition(|t| println!("{t}"))
///     .build()
///     .unwrap();
/// layer.handle().force_open(); // prints: circuit breaker "inventory" closed -> forced_open: set through a handle
/// ```
impl fmt::Display for Transition<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker {:?} ", self.name)?;
        if let Some(key) = self.key {
            write!(f, "key {key} ")?;
        }
        write!(f, "{} -> {}: {}", self.from, self.to, self.reason)
    }
}

/// A callback run on every transition, after the new state is in force.
///
/// It runs on the task whose call caused the transition (or the thread calling the handle),
/// so it must be quick. A panic in it is caught, and resumed once the queued transitions are
/// reported. It may call the breaker's handle.
pub(crate) type Listener = Arc<dyn Fn(&Transition<'_>) + Send + Sync>;

pub(crate) fn debug_listener(listener: &Option<Listener>, f: &mut fmt::DebugStruct<'_, '_>) {
    f.field("listener", &listener.as_ref().map(|_| "Fn(&Transition)"));
}

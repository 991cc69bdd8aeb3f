//! What the other layers report to the runner: retries, fallbacks, breaker transitions.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// A breaker transition as the runner saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionRecord {
    /// Time since injection started.
    pub at: Duration,
    /// The state before.
    pub from: String,
    /// The state after.
    pub to: String,
}

#[derive(Default)]
struct Inner {
    retries: AtomicU64,
    fallbacks: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    start: Option<Instant>,
    detected: Option<Duration>,
    transitions: Vec<TransitionRecord>,
}

/// Signals the layers under test send to the experiment runner. Cheap to clone; wire a clone
/// into each hook:
///
/// ```
/// use tower_chaos::experiment::Signals;
///
/// let signals = Signals::new();
/// let s = signals.clone();
/// // In a tower-breaker listener: `.on_transition(move |t| s.transition(t.from.as_str(), t.to.as_str()))`
/// s.transition("closed", "open");
/// signals.retried();
/// signals.fallback();
/// assert_eq!(signals.retries(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Signals {
    inner: Arc<Inner>,
}

impl Signals {
    /// Fresh signals.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn elapsed(state: &State) -> Duration {
        state.start.map_or(Duration::ZERO, |s| s.elapsed())
    }

    /// A retry was attempted.
    pub fn retried(&self) {
        self.inner.retries.fetch_add(1, Relaxed);
    }

    /// A fallback answered. The runner counts the call it answered as a fallback answer, not
    /// a real one: it counts in the success rate, never towards recovery.
    pub fn fallback(&self) {
        self.inner.fallbacks.fetch_add(1, Relaxed);
    }

    /// A breaker changed state. Opening (`open`, `forced_open`) counts as detecting the failure.
    pub fn transition(&self, from: &str, to: &str) {
        let mut state = self.state();
        let at = Self::elapsed(&state);
        if matches!(to, "open" | "forced_open") && state.detected.is_none() && state.start.is_some()
        {
            state.detected = Some(at);
        }
        state.transitions.push(TransitionRecord {
            at,
            from: from.to_owned(),
            to: to.to_owned(),
        });
    }

    /// The failure was detected (by your own means: an alert, a health check).
    pub fn detected(&self) {
        let mut state = self.state();
        if state.detected.is_none() && state.start.is_some() {
            state.detected = Some(Self::elapsed(&state));
        }
    }

    /// Retries so far.
    #[must_use]
    pub fn retries(&self) -> u64 {
        self.inner.retries.load(Relaxed)
    }

    /// Fallbacks so far.
    #[must_use]
    pub fn fallbacks(&self) -> u64 {
        self.inner.fallbacks.load(Relaxed)
    }

    /// Starts the injection phase's clock and clears what the steady-state phase left.
    pub(crate) fn start(&self) {
        let mut state = self.state();
        *state = State {
            start: Some(Instant::now()),
            ..State::default()
        };
        self.inner.retries.store(0, Relaxed);
        self.inner.fallbacks.store(0, Relaxed);
    }

    pub(crate) fn detection(&self) -> Option<Duration> {
        self.state().detected
    }

    pub(crate) fn transitions(&self) -> Vec<TransitionRecord> {
        self.state().transitions.clone()
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field("retries", &self.retries())
            .field("fallbacks", &self.fallbacks())
            .finish_non_exhaustive()
    }
}

//! Per-call events: an opt-in listener told how each call went.

use std::fmt;
use std::time::Duration;

/// How one call went, as a [`CallListener`] is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallOutcome {
    /// Classified a success.
    Success,
    /// Classified a failure: it counts against the trip rules.
    Failure,
    /// Classified as saying nothing about the dependency (a 404, a family rejection).
    Ignored,
    /// Refused by the breaker (open, half-open and full, or forced open); never sent.
    Rejected,
}

impl CallOutcome {
    /// The snake-case label, as in the `outcome` label of `breaker_calls_total`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
        }
    }
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl From<tower_outcome::Outcome> for CallOutcome {
    fn from(outcome: tower_outcome::Outcome) -> Self {
        match outcome {
            tower_outcome::Outcome::Success => Self::Success,
            tower_outcome::Outcome::Failure => Self::Failure,
            tower_outcome::Outcome::Ignore => Self::Ignored,
        }
    }
}

/// One call, as handed to a [`CallListener`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallEvent<'a> {
    /// The breaker's `name`.
    pub name: &'a str,
    /// For a per-key breaker, the key (its `Debug` form); `None` otherwise.
    pub key: Option<&'a str>,
    /// How it went.
    pub outcome: CallOutcome,
    /// From the call to its response (to the response's head, when the body is streamed and
    /// classified at its end, as the slow-call rule times it); `None` for a rejected call, or
    /// one whose inner service failed before it was called.
    pub duration: Option<Duration>,
}

/// Told about every call a breaker sees: its outcome and duration. Set one with
/// [`on_call`](crate::CircuitBreakerBuilder::on_call); a closure
/// `Fn(&CallEvent<'_>) + Send + Sync + 'static` is one.
///
/// It runs on the task that finished the call (or was refused), after the outcome is
/// recorded: keep it quick. Should it panic, the breaker is left as if it had returned (the
/// outcome stays recorded, the probe slot released once) and the panic carries on to the
/// caller. A call dropped before it finished (cancelled) is not reported, as it counts for
/// nothing.
///
/// Without a listener the breaker is built with [`NoCallListener`], which compiles to nothing:
/// no clock read, no branch.
pub trait CallListener: Send + Sync + 'static {
    /// `false` only for [`NoCallListener`]: lets the breaker skip timing calls entirely.
    const ENABLED: bool = true;

    /// Called once per call.
    fn on_call(&self, event: &CallEvent<'_>);
}

/// No per-call listener (the default): costs nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoCallListener;

impl CallListener for NoCallListener {
    const ENABLED: bool = false;

    #[inline(always)]
    fn on_call(&self, _: &CallEvent<'_>) {}
}

impl<F> CallListener for F
where
    F: Fn(&CallEvent<'_>) + Send + Sync + 'static,
{
    #[inline]
    fn on_call(&self, event: &CallEvent<'_>) {
        self(event);
    }
}

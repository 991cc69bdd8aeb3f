//! The state a breaker is in, as users see it.

use std::fmt;

/// A breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum State {
    /// Calls pass; outcomes are counted against the trip rules.
    Closed = 0,
    /// Calls are rejected at once until the reset timeout has passed.
    Open = 1,
    /// A limited number of probe calls pass; the rest are rejected.
    HalfOpen = 2,
    /// Rejecting everything until a handle says otherwise.
    ForcedOpen = 3,
    /// Passing everything and recording metrics, never transitioning, until a handle says otherwise.
    Disabled = 4,
    /// Passing everything, counting outcomes and reporting when a rule would trip, never
    /// transitioning, until a handle says otherwise.
    MetricsOnly = 5,
}

impl State {
    pub(crate) const COUNT: usize = 6;
    pub(crate) const ALL: [Self; Self::COUNT] = [
        Self::Closed,
        Self::Open,
        Self::HalfOpen,
        Self::ForcedOpen,
        Self::Disabled,
        Self::MetricsOnly,
    ];

    /// The snake-case label used in metrics and events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
            Self::MetricsOnly => "metrics_only",
        }
    }

    pub(crate) const fn from_bits(bits: u64) -> Self {
        match bits {
            0 => Self::Closed,
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::ForcedOpen,
            4 => Self::Disabled,
            _ => Self::MetricsOnly,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

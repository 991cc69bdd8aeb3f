//! Back-off: how long to wait before each retry.

use std::time::Duration;

use crate::Jitter;
use crate::jitter::seconds_to_duration;
use crate::retry::ConfigError;
use crate::retry::error::check_duration;

/// The shape of a back-off: `exponential`, `fixed` or `none` (retry at once), as the
/// configuration's `backoff` (or `backoff_type`) field names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum BackoffKind {
    /// `initial_delay × multiplier^n`, capped at `max_delay`.
    #[default]
    Exponential,
    /// The same delay before every retry.
    Fixed,
    /// No wait at all.
    None,
}

/// How long to wait before retry `n` (counting from 0): the computed delay
/// `min(max_delay, initial_delay × multiplier^n)` randomised by a [`Jitter`] mode.
///
/// Defaults: exponential from 100 ms, × 2, capped at 10 s, full jitter.
///
/// ```
/// use std::time::Duration;
/// use tower_heal::{Backoff, Jitter};
///
/// let backoff = Backoff::exponential(Duration::from_secs(1))
///     .max_delay(Duration::from_secs(30))
///     .jitter(Jitter::None);
/// let delays: Vec<_> = (0..6).map(|n| backoff.base_delay(n).as_secs()).collect();
/// assert_eq!(delays, [1, 2, 4, 8, 16, 30]);
///
/// let fixed = Backoff::fixed(Duration::from_secs(60));
/// assert_eq!(fixed.base_delay(3), Duration::from_secs(60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[must_use]
pub struct Backoff {
    pub(crate) kind: BackoffKind,
    pub(crate) initial: Duration,
    pub(crate) multiplier: f64,
    pub(crate) max: Duration,
    pub(crate) jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            kind: BackoffKind::Exponential,
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(10),
            jitter: Jitter::Full,
        }
    }
}

impl Backoff {
    /// Exponential from `initial_delay`, with the default multiplier (2), cap (10 s, or the
    /// initial delay if that is longer) and jitter (full).
    pub fn exponential(initial_delay: Duration) -> Self {
        let defaults = Self::default();
        Self {
            initial: initial_delay,
            max: defaults.max.max(initial_delay),
            ..defaults
        }
    }

    /// The same `delay` before every retry, without jitter unless one is set.
    pub fn fixed(delay: Duration) -> Self {
        Self {
            kind: BackoffKind::Fixed,
            initial: delay,
            multiplier: 1.0,
            max: delay,
            jitter: Jitter::None,
        }
    }

    /// Retry at once.
    pub fn none() -> Self {
        Self {
            kind: BackoffKind::None,
            initial: Duration::ZERO,
            multiplier: 1.0,
            max: Duration::ZERO,
            jitter: Jitter::None,
        }
    }

    /// `multiplier`: the growth factor of an exponential back-off (at least 1).
    pub const fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// `max_delay`: the cap on one computed delay.
    pub const fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max = max_delay;
        self
    }

    /// `jitter`: how the delay is randomised.
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The shape of this back-off.
    #[must_use]
    pub const fn kind(&self) -> BackoffKind {
        self.kind
    }

    /// The jitter mode.
    #[must_use]
    pub const fn jitter_mode(&self) -> Jitter {
        self.jitter
    }

    /// The delay before retry `n` (from 0) before jitter:
    /// `min(max_delay, initial_delay × multiplier^n)`.
    #[must_use]
    pub fn base_delay(&self, n: u32) -> Duration {
        match self.kind {
            BackoffKind::None => Duration::ZERO,
            BackoffKind::Fixed => self.initial,
            BackoffKind::Exponential => {
                let exponent = i32::try_from(n).unwrap_or(i32::MAX);
                let seconds = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
                seconds_to_duration(seconds).min(self.max)
            }
        }
    }

    /// The delay before retry `n`, jittered. `previous` is the delay slept before the last
    /// attempt (used by [`Jitter::Decorrelated`]; pass the initial delay before the first retry).
    #[must_use]
    pub fn delay(&self, n: u32, previous: Duration, rng: &mut fastrand::Rng) -> Duration {
        let base = self.base_delay(n);
        if self.kind == BackoffKind::None {
            return base;
        }
        let max = self.max.max(self.initial);
        self.jitter.apply(base, previous, self.initial, max, rng)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.jitter.validate()?;
        match self.kind {
            BackoffKind::None => Ok(()),
            BackoffKind::Fixed => check_duration("delay_ms", self.initial, true),
            BackoffKind::Exponential => {
                check_duration("initial_delay_ms", self.initial, false)?;
                check_duration("max_delay_ms", self.max, false)?;
                if !self.multiplier.is_finite() || self.multiplier < 1.0 || self.multiplier > 100.0
                {
                    return Err(ConfigError::Number {
                        field: "multiplier",
                        value: self.multiplier,
                        range: "a number between 1 and 100",
                    });
                }
                if self.max < self.initial {
                    return Err(ConfigError::Missing {
                        field: "max_delay_ms",
                        needs: "to be at least initial_delay_ms",
                    });
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_and_saturating() {
        let b = Backoff::exponential(Duration::from_secs(1)).jitter(Jitter::None);
        assert_eq!(b.base_delay(3), Duration::from_secs(8));
        assert_eq!(b.base_delay(4), Duration::from_secs(10));
        assert_eq!(b.base_delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn validation() {
        assert!(Backoff::default().validate().is_ok());
        assert!(
            Backoff::exponential(Duration::ZERO)
                .validate()
                .unwrap_err()
                .to_string()
                .contains("initial_delay_ms")
        );
        assert!(Backoff::default().multiplier(0.5).validate().is_err());
        assert!(Backoff::default().multiplier(f64::NAN).validate().is_err());
        assert!(
            Backoff::default()
                .jitter(Jitter::Proportional(2.0))
                .validate()
                .is_err()
        );
    }
}

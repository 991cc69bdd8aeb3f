//! Jitter: spreading retries of many clients apart so they do not arrive in lockstep.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::retry::ConfigError;

/// How a computed back-off delay `d` is randomised.
///
/// | mode | delay |
/// |---|---|
/// | `None` | `d` |
/// | `Full` (the default) | `U(0, d)` |
/// | `Equal` | `d/2 + U(0, d/2)` |
/// | `Decorrelated` | `min(max_delay, U(initial_delay, 3 × previous delay))` |
/// | `Proportional(f)` | `d × U(1 − f, 1 + f)`, capped at `max_delay` |
///
/// `Full` is what the published comparison of jitter modes found spends the fewest calls; see
/// the thundering-herd figures in the repository's `benches/README.md`. The random numbers
/// come from a seedable [`fastrand::Rng`], so a run reproduces with the same seed.
///
/// Modes parse from their configuration names:
///
/// ```
/// use tower_heal::Jitter;
///
/// assert_eq!("full".parse::<Jitter>().unwrap(), Jitter::Full);
/// assert_eq!("proportional(0.1)".parse::<Jitter>().unwrap(), Jitter::Proportional(0.1));
/// assert!("sometimes".parse::<Jitter>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Jitter {
    /// No randomness: exactly the computed delay.
    None,
    /// Uniform between zero and the computed delay.
    #[default]
    Full,
    /// Half the computed delay, plus uniform up to the other half.
    Equal,
    /// Uniform between the initial delay and three times the previous delay, capped.
    Decorrelated,
    /// Uniform within `±f` of the computed delay (`f` in 0..=1).
    Proportional(f64),
}

impl Jitter {
    /// The configuration name: `none`, `full`, `equal`, `decorrelated`, `proportional(f)`.
    #[must_use]
    pub fn name(self) -> String {
        match self {
            Self::None => "none".into(),
            Self::Full => "full".into(),
            Self::Equal => "equal".into(),
            Self::Decorrelated => "decorrelated".into(),
            Self::Proportional(f) => format!("proportional({f})"),
        }
    }

    pub(crate) fn validate(self) -> Result<(), ConfigError> {
        match self {
            Self::Proportional(f) if !(0.0..=1.0).contains(&f) => Err(ConfigError::Number {
                field: "jitter",
                value: f,
                range: "a proportional factor between 0 and 1",
            }),
            _ => Ok(()),
        }
    }

    /// Randomises `delay` (the capped exponential delay for this attempt). `previous` is the
    /// delay slept before the last attempt (the initial delay before the first retry), used
    /// by `Decorrelated`; `initial` and `max` are the back-off's bounds.
    pub(crate) fn apply(
        self,
        delay: Duration,
        previous: Duration,
        initial: Duration,
        max: Duration,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        let d = delay.as_secs_f64();
        let seconds = match self {
            Self::None => return delay,
            Self::Full => d * rng.f64(),
            Self::Equal => d / 2.0 + d / 2.0 * rng.f64(),
            Self::Decorrelated => {
                let low = initial.as_secs_f64();
                let high = (previous.as_secs_f64() * 3.0).max(low);
                low + (high - low) * rng.f64()
            }
            Self::Proportional(f) => d * (1.0 - f + 2.0 * f * rng.f64()),
        };
        seconds_to_duration(seconds).min(max)
    }
}

/// A duration from seconds, saturating instead of panicking on overflow or NaN.
pub(crate) fn seconds_to_duration(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(if seconds > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Jitter {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let name = s.trim();
        let jitter = match name {
            "none" | "false" => Self::None,
            "full" | "true" => Self::Full,
            "equal" => Self::Equal,
            "decorrelated" => Self::Decorrelated,
            _ => {
                let factor = name
                    .strip_prefix("proportional(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .and_then(|f| f.trim().parse::<f64>().ok())
                    .ok_or_else(|| ConfigError::Jitter(s.to_owned()))?;
                Self::Proportional(factor)
            }
        };
        jitter.validate()?;
        Ok(jitter)
    }
}

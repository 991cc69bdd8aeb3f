//! Configuration: plain data in its JSON shape, validated once.

use std::time::Duration;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// What calls do while the inner service is being rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum DuringRebuild {
    /// Wait for the new instance (up to `max_rebuild_wait_seconds`, then rejected).
    #[default]
    Wait,
    /// Rejected at once with the family's `Rejected`.
    Reject,
}

/// A recovery layer's configuration, field for field as it reads from JSON.
///
/// `Default` gives the documented defaults: recover when the success rate over the last 30 s
/// drops below 0.8 with at least 5 calls, or after 5 consecutive failures; wait 5 s between
/// recoveries, doubling up to 300 s, jittered; escalate after 3 recoveries without
/// improvement.
///
/// With the `serde` feature it reads
/// `{"success_rate_threshold": 0.8, "window_seconds": 30, "minimum_calls": 5, "max_attempts": 3}`
/// (`min_calls`, the old name, is read too);
/// unknown fields are an error, so a typo never leaves a default in force silently.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct RecoveryConfig {
    /// The component's name, in events, rejections and metric labels. Default `"default"`.
    pub name: String,
    /// Recover when the success rate over the window drops below this, in (0, 1]. Default 0.8.
    pub success_rate_threshold: f64,
    /// The window's length. Default 30.
    pub window_seconds: f64,
    /// The rate rule waits for this many calls in the window. Default 5. (Named as the
    /// breaker's `minimum_calls`; the JSON field `min_calls` is read too.)
    #[cfg_attr(feature = "serde", serde(alias = "min_calls"))]
    pub minimum_calls: u32,
    /// Recover after this many failures in a row, whatever the rate; `None` turns the rule
    /// off. Default 5.
    pub consecutive_failures: Option<u32>,
    /// Escalate after this many recoveries in a row without improvement. Default 3.
    pub max_attempts: u32,
    /// The hold-off after the first recovery; it doubles after each one. Default 5.
    pub holdoff_seconds: f64,
    /// The longest hold-off. Default 300.
    pub max_holdoff_seconds: f64,
    /// Calls arriving during a rebuild wait or are rejected. Default `wait`.
    pub during_rebuild: DuringRebuild,
    /// The longest a call waits for a rebuild before it is rejected. Default 30.
    pub max_rebuild_wait_seconds: f64,
    /// The longest a recovery action (a factory's rebuild or a hook) may run. One that runs
    /// longer is abandoned as failed: the old instance keeps serving, waiting calls are
    /// released and the next recovery comes after the hold-off. Default 60.
    pub rebuild_timeout_seconds: f64,
    /// Seed for the hold-off jitter, for reproducible runs. Default `None`: seeded per process.
    pub seed: Option<u64>,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            success_rate_threshold: 0.8,
            window_seconds: 30.0,
            minimum_calls: 5,
            consecutive_failures: Some(5),
            max_attempts: 3,
            holdoff_seconds: 5.0,
            max_holdoff_seconds: 300.0,
            during_rebuild: DuringRebuild::Wait,
            max_rebuild_wait_seconds: 30.0,
            rebuild_timeout_seconds: 60.0,
            seed: None,
        }
    }
}

/// The longest duration any setting takes (7 days): the crate's one bound, shared with the
/// retry layer.
pub use crate::retry::MAX_DURATION;

/// Validated settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) threshold: f64,
    pub(crate) window: Duration,
    pub(crate) min_calls: u64,
    pub(crate) consecutive: Option<u64>,
    pub(crate) max_attempts: u32,
    pub(crate) holdoff: Duration,
    pub(crate) max_holdoff: Duration,
    pub(crate) during_rebuild: DuringRebuild,
    pub(crate) max_rebuild_wait: Duration,
    pub(crate) rebuild_timeout: Duration,
    pub(crate) seed: Option<u64>,
}

fn duration(field: &'static str, seconds: f64) -> Result<Duration, ConfigError> {
    if seconds.is_finite() && seconds > 0.0 && seconds <= MAX_DURATION.as_secs_f64() {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(ConfigError::Duration { field, seconds })
    }
}

fn count(field: &'static str, value: u32) -> Result<u32, ConfigError> {
    if value >= 1 {
        Ok(value)
    } else {
        Err(ConfigError::Count { field, value })
    }
}

impl RecoveryConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// The first invalid value: a rate outside (0, 1], a zero count, a duration not positive
    /// or over 7 days, a hold-off longer than its maximum.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.settings().map(|_| ())
    }

    pub(crate) fn settings(&self) -> Result<Settings, ConfigError> {
        let rate = self.success_rate_threshold;
        if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
            return Err(ConfigError::Rate {
                field: "success_rate_threshold",
                value: rate,
            });
        }
        let holdoff = duration("holdoff_seconds", self.holdoff_seconds)?;
        let max_holdoff = duration("max_holdoff_seconds", self.max_holdoff_seconds)?;
        if max_holdoff < holdoff {
            return Err(ConfigError::Order {
                field: "max_holdoff_seconds",
                below: "holdoff_seconds",
            });
        }
        Ok(Settings {
            threshold: rate,
            window: duration("window_seconds", self.window_seconds)?,
            min_calls: u64::from(count("minimum_calls", self.minimum_calls)?),
            consecutive: match self.consecutive_failures {
                Some(n) => Some(u64::from(count("consecutive_failures", n)?)),
                None => None,
            },
            max_attempts: count("max_attempts", self.max_attempts)?,
            holdoff,
            max_holdoff,
            during_rebuild: self.during_rebuild,
            max_rebuild_wait: duration("max_rebuild_wait_seconds", self.max_rebuild_wait_seconds)?,
            rebuild_timeout: duration("rebuild_timeout_seconds", self.rebuild_timeout_seconds)?,
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        RecoveryConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut c = RecoveryConfig {
            success_rate_threshold: 1.5,
            ..RecoveryConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "success_rate_threshold must be a rate in (0, 1], got 1.5"
        );
        c.success_rate_threshold = 0.8;
        c.minimum_calls = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("minimum_calls")
        );
        c.minimum_calls = 5;
        c.window_seconds = f64::NAN;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("window_seconds")
        );
        c.window_seconds = 30.0;
        c.max_holdoff_seconds = 1.0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("max_holdoff_seconds")
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn minimum_calls_is_read_under_its_new_and_old_names() {
        for field in ["minimum_calls", "min_calls"] {
            let c: RecoveryConfig = serde_json::from_str(&format!(r#"{{"{field}": 9}}"#)).unwrap();
            assert_eq!(c.minimum_calls, 9, "{field}");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn reads_the_users_json() {
        #[derive(serde::Deserialize)]
        struct Settings {
            recovery: RecoveryConfig,
        }
        let s: Settings = serde_json::from_str(
            r#"{"recovery": {"success_rate_threshold": 0.8, "window_seconds": 30, "min_calls": 5, "max_attempts": 3}}"#,
        )
        .unwrap();
        assert_eq!(s.recovery, RecoveryConfig::default());
        assert!(serde_json::from_str::<RecoveryConfig>(r#"{"min_call": 5}"#).is_err());
    }
}

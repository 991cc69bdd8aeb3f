//! Configuration: plain data in the shape of your JSON, validated once.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The largest count window, in calls.
pub const MAX_COUNT_WINDOW: u32 = 10_000;
/// The most buckets a time window may have.
pub const MAX_TIME_BUCKETS: u32 = 1_000;
/// The largest `half_open_max_calls` and `success_threshold`.
pub const MAX_PROBES: u32 = u16::MAX as u32;
/// The longest duration any setting takes (7 days): `retry_after` and the open-duration backoff
/// (up to 10 × the reset timeout) stay exact below it.
pub use tower_outcome::MAX_DURATION;

/// A circuit breaker's configuration, field for field as you write it in JSON.
///
/// `Default` gives the documented defaults: trip on 5 consecutive failures, stay open 60 s,
/// then let 1 probe through and close after 1 success. A rate rule is added by setting
/// `failure_rate_threshold` (and/or `slow_call_rate_threshold`), measured over `window`.
///
/// With the `serde` feature it deserializes from JSON such as
/// `{"name": "mcp_filesystem", "failure_threshold": 5, "reset_timeout_seconds": 60, "half_open_max_calls": 1}`
/// (`timeout_seconds` is accepted for `reset_timeout_seconds`; giving both is an error naming
/// both); unknown fields are an error, so a typo never silently leaves a default in force. Values are checked when the layer is
/// built: [`CircuitBreakerLayer::from_config`](crate::CircuitBreakerLayer::from_config).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(try_from = "crate::config_serde::Written"))]
pub struct CircuitBreakerConfig {
    /// The breaker's name, used in rejections, events and metric labels. Default empty: an
    /// unnamed breaker is called `unnamed-1`, `unnamed-2`, … in the order layers are built, so
    /// two unnamed breakers never report into one metric series. Name your breakers for labels
    /// that stay the same from run to run.
    pub name: String,
    /// Open after this many consecutive failures; `None` turns the rule off. Default `Some(5)`.
    pub failure_threshold: Option<u32>,
    /// Open when the failure rate over `window` reaches this rate, above 0 and at most 1.
    /// Default `None` (off).
    pub failure_rate_threshold: Option<f64>,
    /// Open when the rate of slow calls over `window` reaches this rate, above 0 and at most 1.
    /// Default `None` (off).
    pub slow_call_rate_threshold: Option<f64>,
    /// A call taking at least this long is slow. Needed by `slow_call_rate_threshold`.
    pub slow_call_duration_seconds: Option<f64>,
    /// The window rate rules are measured over. Default: the last 100 calls.
    pub window: WindowConfig,
    /// Rate rules fire only once the window holds this many calls (capped at a count
    /// window's size, as in resilience4j). Default 20.
    pub minimum_calls: u32,
    /// How long the circuit stays open before probing, in seconds (also read from
    /// `timeout_seconds`). Default 60.
    pub reset_timeout_seconds: f64,
    /// Probes let through at once while half-open. Default 1.
    pub half_open_max_calls: u32,
    /// Successful probes needed to close. Default 1.
    pub success_threshold: u32,
    /// A probe neither finished nor dropped after this long re-opens the circuit.
    /// Default `None`: the reset timeout.
    pub half_open_max_wait_seconds: Option<f64>,
    /// Double the open time on each consecutive re-open, up to 10 × the reset timeout, with up
    /// to 10 % jitter. Default `false`.
    pub open_backoff: bool,
    /// Seed for the backoff jitter, for reproducible runs. Default `None`: seeded per process.
    pub seed: Option<u64>,
    /// Per-key breakers: the most keys kept at once. Default 1000.
    pub max_keys: u32,
    /// Per-key breakers: a key idle this long (no call in flight) is forgotten. Default 300.
    pub key_idle_timeout_seconds: f64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            failure_threshold: Some(5),
            failure_rate_threshold: None,
            slow_call_rate_threshold: None,
            slow_call_duration_seconds: None,
            window: WindowConfig::default(),
            minimum_calls: 20,
            reset_timeout_seconds: 60.0,
            half_open_max_calls: 1,
            success_threshold: 1,
            half_open_max_wait_seconds: None,
            open_backoff: false,
            seed: None,
            max_keys: 1000,
            key_idle_timeout_seconds: 300.0,
        }
    }
}

/// The window a rate rule is measured over.
///
/// In JSON: `{"type": "count", "size": 100}` or `{"type": "time", "seconds": 10, "buckets": 10}`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum WindowConfig {
    /// The last `size` calls (at most [`MAX_COUNT_WINDOW`]). Default size 100.
    Count {
        /// Calls in the window.
        #[cfg_attr(feature = "serde", serde(default = "default_count"))]
        size: u32,
    },
    /// The last `seconds`, in `buckets` equal slices that expire one by one. Default 10 s in 10.
    Time {
        /// Length of the window.
        #[cfg_attr(feature = "serde", serde(default = "default_seconds"))]
        seconds: f64,
        /// Slices of the window (at most [`MAX_TIME_BUCKETS`]).
        #[cfg_attr(feature = "serde", serde(default = "default_buckets"))]
        buckets: u32,
    },
}

#[cfg(feature = "serde")]
const fn default_count() -> u32 {
    100
}
#[cfg(feature = "serde")]
const fn default_seconds() -> f64 {
    10.0
}
#[cfg(feature = "serde")]
const fn default_buckets() -> u32 {
    10
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self::Count { size: 100 }
    }
}

/// The window, validated.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WindowSpec {
    Count(u32),
    Time { width: Duration, buckets: u32 },
}

/// A configuration that passed [`CircuitBreakerConfig::validate`], in the units the breaker uses.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) name: Arc<str>,
    pub(crate) failure_threshold: u32,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_rate: Option<f64>,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) window: Option<WindowSpec>,
    pub(crate) minimum_calls: u32,
    pub(crate) reset_timeout: Duration,
    pub(crate) half_open_max_calls: u32,
    pub(crate) success_threshold: u32,
    pub(crate) half_open_max_wait: Option<Duration>,
    pub(crate) open_backoff: bool,
    pub(crate) seed: Option<u64>,
    pub(crate) max_keys: u32,
    pub(crate) key_idle_timeout: Duration,
}

/// A name of its own for a breaker left unnamed.
fn unnamed() -> Arc<str> {
    static UNNAMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = UNNAMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    format!("unnamed-{n}").into()
}

pub(crate) fn count(field: &'static str, value: u32, max: u32) -> Result<u32, ConfigError> {
    if value == 0 || value > max {
        return Err(ConfigError::Count {
            field,
            value: value.into(),
            max: max.into(),
        });
    }
    Ok(value)
}

pub(crate) fn rate(field: &'static str, value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(ConfigError::Rate { field, value })
    }
}

pub(crate) fn seconds(field: &'static str, value: f64) -> Result<Duration, ConfigError> {
    match Duration::try_from_secs_f64(value) {
        Ok(d) if !d.is_zero() && d <= MAX_DURATION => Ok(d),
        _ => Err(ConfigError::Duration {
            field,
            seconds: value,
        }),
    }
}

impl CircuitBreakerConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// The first value out of range, naming its field: a zero threshold or count, a rate
    /// outside (0, 1], a duration that is not a finite positive number of seconds, a zero or
    /// oversized window, a slow-call rule without its duration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Checking uses up no `unnamed-N`.
        self.settings_named(|| Arc::from("")).map(drop)
    }

    pub(crate) fn settings(&self) -> Result<Settings, ConfigError> {
        self.settings_named(unnamed)
    }

    fn settings_named(&self, unnamed: impl FnOnce() -> Arc<str>) -> Result<Settings, ConfigError> {
        let failure_threshold = match self.failure_threshold {
            Some(n) => count("failure_threshold", n, u32::MAX)?,
            None => 0,
        };
        let failure_rate = self
            .failure_rate_threshold
            .map(|r| rate("failure_rate_threshold", r))
            .transpose()?;
        let slow_rate = self
            .slow_call_rate_threshold
            .map(|r| rate("slow_call_rate_threshold", r))
            .transpose()?;
        let slow_call_duration = self
            .slow_call_duration_seconds
            .map(|s| seconds("slow_call_duration_seconds", s))
            .transpose()?;
        match (slow_rate, slow_call_duration) {
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    field: "slow_call_rate_threshold",
                    needs: "slow_call_duration_seconds",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    field: "slow_call_duration_seconds",
                    needs: "slow_call_rate_threshold",
                });
            }
            _ => {}
        }
        let window = match self.window {
            WindowConfig::Count { size } => {
                WindowSpec::Count(count("window.size", size, MAX_COUNT_WINDOW)?)
            }
            WindowConfig::Time {
                seconds: secs,
                buckets,
            } => {
                let length = seconds("window.seconds", secs)?;
                let buckets = count("window.buckets", buckets, MAX_TIME_BUCKETS)?;
                let width = length / buckets;
                if width < Duration::from_millis(1) {
                    return Err(ConfigError::Duration {
                        field: "window.seconds / window.buckets",
                        seconds: width.as_secs_f64(),
                    });
                }
                WindowSpec::Time { width, buckets }
            }
        };
        if failure_threshold == 0 && failure_rate.is_none() && slow_rate.is_none() {
            return Err(ConfigError::Missing {
                field: "failure_threshold",
                needs: "a value, or failure_rate_threshold or slow_call_rate_threshold (no trip rule is set)",
            });
        }
        Ok(Settings {
            name: if self.name.is_empty() {
                unnamed()
            } else {
                Arc::from(self.name.as_str())
            },
            failure_threshold,
            failure_rate,
            slow_rate,
            slow_call_duration,
            window: (failure_rate.is_some() || slow_rate.is_some()).then_some(window),
            minimum_calls: count("minimum_calls", self.minimum_calls, u32::MAX)?,
            reset_timeout: seconds("reset_timeout_seconds", self.reset_timeout_seconds)?,
            half_open_max_calls: count(
                "half_open_max_calls",
                self.half_open_max_calls,
                MAX_PROBES,
            )?,
            success_threshold: count("success_threshold", self.success_threshold, MAX_PROBES)?,
            half_open_max_wait: self
                .half_open_max_wait_seconds
                .map(|s| seconds("half_open_max_wait_seconds", s))
                .transpose()?,
            open_backoff: self.open_backoff,
            seed: self.seed,
            max_keys: count("max_keys", self.max_keys, u32::MAX)?,
            key_idle_timeout: seconds("key_idle_timeout_seconds", self.key_idle_timeout_seconds)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(f: impl FnOnce(&mut CircuitBreakerConfig)) -> ConfigError {
        let mut c = CircuitBreakerConfig::default();
        f(&mut c);
        c.validate().unwrap_err()
    }

    #[test]
    fn defaults_are_valid() {
        CircuitBreakerConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert_eq!(
            err(|c| c.failure_threshold = Some(0)).to_string(),
            "failure_threshold must be between 1 and 4294967295, got 0"
        );
        assert!(matches!(
            err(|c| c.failure_rate_threshold = Some(1.5)),
            ConfigError::Rate { .. }
        ));
        assert!(matches!(
            err(|c| c.failure_rate_threshold = Some(-0.1)),
            ConfigError::Rate { .. }
        ));
        assert!(matches!(
            err(|c| c.failure_rate_threshold = Some(f64::NAN)),
            ConfigError::Rate { .. }
        ));
        assert!(matches!(
            err(|c| c.window = WindowConfig::Count { size: 0 }),
            ConfigError::Count {
                field: "window.size",
                ..
            }
        ));
        assert!(matches!(
            err(|c| c.window = WindowConfig::Time {
                seconds: 0.0,
                buckets: 10
            }),
            ConfigError::Duration { .. }
        ));
        assert!(matches!(
            err(|c| c.window = WindowConfig::Time {
                seconds: 0.005,
                buckets: 10
            }),
            ConfigError::Duration { .. }
        ));
        assert!(matches!(
            err(|c| c.reset_timeout_seconds = -1.0),
            ConfigError::Duration { .. }
        ));
        assert!(matches!(
            err(|c| c.reset_timeout_seconds = f64::INFINITY),
            ConfigError::Duration { .. }
        ));
        assert!(matches!(
            err(|c| c.half_open_max_calls = 0),
            ConfigError::Count { .. }
        ));
        assert!(matches!(
            err(|c| c.half_open_max_calls = 70_000),
            ConfigError::Count { .. }
        ));
        assert!(matches!(
            err(|c| c.success_threshold = 0),
            ConfigError::Count { .. }
        ));
        assert!(matches!(
            err(|c| c.slow_call_rate_threshold = Some(0.5)),
            ConfigError::Missing { .. }
        ));
        assert!(matches!(
            err(|c| c.failure_threshold = None),
            ConfigError::Missing { .. }
        ));
    }
}

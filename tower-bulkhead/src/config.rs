//! Configuration: plain data in the JSON shape, validated once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The largest `max_concurrent` and `max_waiters`.
pub const MAX_CONCURRENT: u32 = 1 << 24;
/// The largest token amount any setting takes (a budget, a refill, a burst, a cost is clamped
/// to it): `2^31 - 1`, so a rate budget's level and its debt fit one atomic word.
pub const MAX_TOKENS: u64 = i32::MAX as u64;
/// The longest duration any setting takes (7 days).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);
/// The shortest `refill_period_seconds` (1 ms).
pub const MIN_PERIOD: Duration = Duration::from_millis(1);
/// The most keys a per-key layer may keep.
pub const MAX_KEYS: u32 = 1 << 20;
/// The largest `max_key_length` (64 KiB).
pub const MAX_KEY_LENGTH: u32 = 1 << 16;

/// One compartment's configuration, field for field as written in JSON.
///
/// `Default` gives the documented defaults: 25 calls in flight, no waiting (a full compartment
/// rejects at once), no token budget. A compartment may add an **in-flight budget**
/// (`token_budget`: a call holds its cost while it runs and gives it back when it ends) and/or
/// a **rate budget** (`refill_tokens` per `refill_period_seconds`, refilled continuously, up
/// to `burst_tokens`: tokens are spent, not given back, as tokens-per-minute quotas work).
///
/// With the `serde` feature it deserializes from JSON such as
/// `{"max_concurrent": 4, "token_budget": 1000, "max_wait_seconds": 2}`; unknown fields are an
/// error, so a typo never silently leaves a default in force. Values are checked when the layer
/// is built: [`BulkheadLayer::from_config`](crate::BulkheadLayer::from_config).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct BulkheadConfig {
    /// The compartment's name, used in rejections, events and metric labels. Default
    /// `"default"`. In a per-key configuration the key names the compartment instead.
    pub name: String,
    /// Calls in flight at once, 1 to [`MAX_CONCURRENT`]. Default 25.
    pub max_concurrent: u32,
    /// How long a call may wait for room, in strict FIFO order; 0 rejects at once. Default 0.
    pub max_wait_seconds: f64,
    /// Calls waiting at once; one more is rejected at once. Default 1024.
    pub max_waiters: u32,
    /// The in-flight budget: tokens held by the calls in flight at once. Default `None` (none).
    pub token_budget: Option<u64>,
    /// The rate budget: tokens added per `refill_period_seconds`, continuously (one every
    /// `refill_period_seconds / refill_tokens`). Default `None` (none).
    pub refill_tokens: Option<u64>,
    /// The rate budget's period. Needed with `refill_tokens`. Default `None` (60 when
    /// `refill_tokens` is set).
    pub refill_period_seconds: Option<f64>,
    /// The most tokens the rate budget holds (it starts full; a new key too). Default:
    /// `refill_tokens`. At most what refills in about 146 years.
    pub burst_tokens: Option<u64>,
    /// The `Retry-After` given when the compartment (or a per-key layer's key map) is full or
    /// its in-flight budget exhausted (an exhausted rate budget gives the time until enough
    /// refill). Default 1.
    pub retry_after_seconds: f64,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            max_concurrent: 25,
            max_wait_seconds: 0.0,
            max_waiters: 1024,
            token_budget: None,
            refill_tokens: None,
            refill_period_seconds: None,
            burst_tokens: None,
            retry_after_seconds: 1.0,
        }
    }
}

/// What a per-key layer does with a new key when it holds `max_keys` keys, none at rest (or
/// with a key longer than `max_key_length`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Overflow {
    /// Such keys share one overflow compartment (key `<overflow>`, the default limits).
    #[default]
    Shared,
    /// Such keys are rejected ([`Reason::BulkheadFull`](crate::Reason::BulkheadFull), with
    /// the default `retry_after_seconds`).
    Reject,
}

/// Per-key compartments, as in
/// `{"bulkheads": {"research_agent": {"max_concurrent": 4, "token_budget": 1000}}}`.
///
/// Each entry of `bulkheads` is the configuration of the key of that name; every other key
/// gets `default`. Keys are created when first seen and forgotten after
/// `key_idle_timeout_seconds` without a call, once at rest (nothing in flight, budgets full
/// again); at most `max_keys` are kept. Named keys are kept for the layer's life.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use tower_bulkhead::{BulkheadLayer, KeyedBulkheadConfig};
///
/// let config: KeyedBulkheadConfig = serde_json::from_str(r#"{"bulkheads": {
///     "research_agent": {"max_concurrent": 4, "token_budget": 1000, "max_wait_seconds": 2},
///     "writing_agent": {"max_concurrent": 2, "token_budget": 500}
/// }}"#).unwrap();
/// let layer = BulkheadLayer::keyed_from_config(config, |agent: &String| agent.clone()).unwrap();
/// let handle = layer.handle();
/// assert_eq!(handle.keys(), 0); // compartments are created on first use
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct KeyedBulkheadConfig {
    /// The layer's name, used in metric labels and events. Default `"default"`.
    pub name: String,
    /// The configuration of keys without an entry in `bulkheads` (and of the overflow
    /// compartment).
    pub default: BulkheadConfig,
    /// Named compartments: the configuration of each key by name.
    pub bulkheads: BTreeMap<String, BulkheadConfig>,
    /// The most keys kept at once. Default 1000.
    pub max_keys: u32,
    /// A key at rest (no call in flight or waiting, budgets full again) unused for this long
    /// is forgotten. Default 300.
    pub key_idle_timeout_seconds: f64,
    /// What a new key gets when `max_keys` busy keys are live. Default `shared`.
    pub overflow: Overflow,
    /// The longest key kept in the map, in bytes of its `Debug` form (as events show it,
    /// quotes included); a longer key is treated as one that finds the map full (`overflow`).
    /// Keys often come from the client (a header): this bounds what one key costs. Default 256.
    pub max_key_length: u32,
}

impl Default for KeyedBulkheadConfig {
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            default: BulkheadConfig::default(),
            bulkheads: BTreeMap::new(),
            max_keys: 1000,
            key_idle_timeout_seconds: 300.0,
            overflow: Overflow::Shared,
            max_key_length: 256,
        }
    }
}

/// A rate budget, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateSpec {
    pub(crate) refill: u64,
    pub(crate) period: Duration,
    pub(crate) burst: u64,
}

/// A compartment's configuration that passed validation, in the units the bulkhead uses.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) name: Arc<str>,
    pub(crate) max_concurrent: u32,
    pub(crate) max_wait: Duration,
    pub(crate) max_waiters: u32,
    pub(crate) token_budget: Option<u64>,
    pub(crate) rate: Option<RateSpec>,
    pub(crate) retry_after: Duration,
}

/// A per-key configuration that passed validation.
#[derive(Clone, Debug)]
pub(crate) struct KeyedLimits {
    pub(crate) name: Arc<str>,
    pub(crate) default: Limits,
    pub(crate) named: BTreeMap<String, Limits>,
    pub(crate) max_keys: u32,
    pub(crate) key_idle_timeout: Duration,
    pub(crate) overflow: Overflow,
    pub(crate) max_key_length: usize,
}

pub(crate) fn count(field: &'static str, value: u64, max: u64) -> Result<u64, ConfigError> {
    if value == 0 || value > max {
        return Err(ConfigError::Count { field, value, max });
    }
    Ok(value)
}

/// The longest a rate budget may take to refill from empty: `2^62` ns, about 146 years.
const MAX_REFILL_NS: u64 = 1 << 62;

/// A rate budget whose burst would take longer than [`MAX_REFILL_NS`] to refill is refused
/// (its state would not fit the one word it is kept in).
pub(crate) fn check_rate(refill: u64, period: Duration, burst: u64) -> Result<(), ConfigError> {
    let interval = crate::budget::interval(refill, period);
    if crate::budget::span(burst, interval) > MAX_REFILL_NS {
        let max = crate::budget::tokens_in(MAX_REFILL_NS, interval).saturating_sub(1);
        return Err(ConfigError::Count {
            field: "burst_tokens",
            value: burst,
            max: u64::try_from(max).unwrap_or(MAX_TOKENS),
        });
    }
    Ok(())
}

pub(crate) fn seconds(
    field: &'static str,
    value: f64,
    zero_allowed: bool,
) -> Result<Duration, ConfigError> {
    match Duration::try_from_secs_f64(value) {
        Ok(d) if (zero_allowed || !d.is_zero()) && d <= MAX_DURATION => Ok(d),
        _ => Err(ConfigError::Duration {
            field,
            seconds: value,
            zero_allowed,
        }),
    }
}

impl BulkheadConfig {
    /// Checks every value; the first bad one is the error.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field: `max_concurrent` or `max_waiters` of 0 or above
    /// [`MAX_CONCURRENT`]; a token amount of 0 or above [`MAX_TOKENS`]; a negative, non-finite
    /// or too long duration; a `refill_period_seconds` below [`MIN_PERIOD`] or without
    /// `refill_tokens`; a `burst_tokens` without `refill_tokens`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits().map(drop)
    }

    pub(crate) fn limits(&self) -> Result<Limits, ConfigError> {
        let max_concurrent = count(
            "max_concurrent",
            self.max_concurrent.into(),
            MAX_CONCURRENT.into(),
        )? as u32;
        let max_wait = seconds("max_wait_seconds", self.max_wait_seconds, true)?;
        let max_waiters = count(
            "max_waiters",
            self.max_waiters.into(),
            MAX_CONCURRENT.into(),
        )? as u32;
        let token_budget = self
            .token_budget
            .map(|t| count("token_budget", t, MAX_TOKENS))
            .transpose()?;
        let rate = match self.refill_tokens {
            None => {
                if self.refill_period_seconds.is_some() {
                    return Err(ConfigError::Missing {
                        field: "refill_period_seconds",
                        needs: "refill_tokens",
                    });
                }
                if self.burst_tokens.is_some() {
                    return Err(ConfigError::Missing {
                        field: "burst_tokens",
                        needs: "refill_tokens",
                    });
                }
                None
            }
            Some(refill) => {
                let refill = count("refill_tokens", refill, MAX_TOKENS)?;
                let period = seconds(
                    "refill_period_seconds",
                    self.refill_period_seconds.unwrap_or(60.0),
                    false,
                )?;
                if period < MIN_PERIOD {
                    return Err(ConfigError::Duration {
                        field: "refill_period_seconds",
                        seconds: period.as_secs_f64(),
                        zero_allowed: false,
                    });
                }
                let burst = self
                    .burst_tokens
                    .map(|b| count("burst_tokens", b, MAX_TOKENS))
                    .transpose()?
                    .unwrap_or(refill);
                check_rate(refill, period, burst)?;
                Some(RateSpec {
                    refill,
                    period,
                    burst,
                })
            }
        };
        let retry_after = seconds("retry_after_seconds", self.retry_after_seconds, true)?;
        Ok(Limits {
            name: self.name.as_str().into(),
            max_concurrent,
            max_wait,
            max_waiters,
            token_budget,
            rate,
            retry_after,
        })
    }
}

impl KeyedBulkheadConfig {
    /// Checks every value, the default's and each named compartment's; the first bad one is
    /// the error.
    ///
    /// # Errors
    /// As [`BulkheadConfig::validate`], and `max_keys` of 0 or above [`MAX_KEYS`], a zero or
    /// too long `key_idle_timeout_seconds`, a `max_key_length` of 0 or above
    /// [`MAX_KEY_LENGTH`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits().map(drop)
    }

    pub(crate) fn limits(&self) -> Result<KeyedLimits, ConfigError> {
        let mut default = self.default.limits()?;
        default.name = self.name.as_str().into();
        let mut named = BTreeMap::new();
        for (key, config) in &self.bulkheads {
            let mut limits = config.limits()?;
            limits.name = self.name.as_str().into();
            named.insert(key.clone(), limits);
        }
        Ok(KeyedLimits {
            name: self.name.as_str().into(),
            default,
            named,
            max_keys: count("max_keys", self.max_keys.into(), MAX_KEYS.into())? as u32,
            key_idle_timeout: seconds(
                "key_idle_timeout_seconds",
                self.key_idle_timeout_seconds,
                false,
            )?,
            overflow: self.overflow,
            max_key_length: count(
                "max_key_length",
                self.max_key_length.into(),
                MAX_KEY_LENGTH.into(),
            )? as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let limits = BulkheadConfig::default().limits().unwrap();
        assert_eq!(limits.max_concurrent, 25);
        assert_eq!(limits.max_wait, Duration::ZERO);
        assert!(limits.token_budget.is_none() && limits.rate.is_none());
        KeyedBulkheadConfig::default().validate().unwrap();
    }

    #[test]
    fn burst_defaults_to_refill() {
        let config = BulkheadConfig {
            refill_tokens: Some(100),
            refill_period_seconds: Some(1.0),
            ..BulkheadConfig::default()
        };
        let rate = config.limits().unwrap().rate.unwrap();
        assert_eq!((rate.refill, rate.burst), (100, 100));
        assert_eq!(rate.period, Duration::from_secs(1));
    }
}

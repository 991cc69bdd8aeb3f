//! Reading the configuration from your JSON: the shape as written, checked for what serde's
//! derive cannot say well (both `timeout_seconds` and `reset_timeout_seconds` given; which
//! profile an error is in).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::{CircuitBreakerConfig, CircuitBreakerProfiles, WindowConfig};

/// [`CircuitBreakerConfig`] as written: every field optional, the alias a field of its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Written {
    name: Option<String>,
    #[serde(default, deserialize_with = "some")]
    failure_threshold: Option<Option<u32>>,
    failure_rate_threshold: Option<f64>,
    slow_call_rate_threshold: Option<f64>,
    slow_call_duration_seconds: Option<f64>,
    window: Option<WindowConfig>,
    minimum_calls: Option<u32>,
    reset_timeout_seconds: Option<f64>,
    timeout_seconds: Option<f64>,
    half_open_max_calls: Option<u32>,
    success_threshold: Option<u32>,
    half_open_max_wait_seconds: Option<f64>,
    open_backoff: Option<bool>,
    seed: Option<u64>,
    max_keys: Option<u32>,
    key_idle_timeout_seconds: Option<f64>,
}

/// `"failure_threshold": null` turns the rule off; an absent field keeps the default.
fn some<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Both spellings of the reset timeout were given.
pub(crate) struct BothTimeouts;

impl fmt::Display for BothTimeouts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "both reset_timeout_seconds and timeout_seconds are given (timeout_seconds is another \
             name for reset_timeout_seconds): keep one",
        )
    }
}

impl TryFrom<Written> for CircuitBreakerConfig {
    type Error = BothTimeouts;

    fn try_from(w: Written) -> Result<Self, BothTimeouts> {
        let d = Self::default();
        let reset_timeout_seconds = match (w.reset_timeout_seconds, w.timeout_seconds) {
            (Some(_), Some(_)) => return Err(BothTimeouts),
            (Some(s), None) | (None, Some(s)) => s,
            (None, None) => d.reset_timeout_seconds,
        };
        Ok(Self {
            name: w.name.unwrap_or(d.name),
            failure_threshold: w.failure_threshold.unwrap_or(d.failure_threshold),
            failure_rate_threshold: w.failure_rate_threshold.or(d.failure_rate_threshold),
            slow_call_rate_threshold: w.slow_call_rate_threshold.or(d.slow_call_rate_threshold),
            slow_call_duration_seconds: w
                .slow_call_duration_seconds
                .or(d.slow_call_duration_seconds),
            window: w.window.unwrap_or(d.window),
            minimum_calls: w.minimum_calls.unwrap_or(d.minimum_calls),
            reset_timeout_seconds,
            half_open_max_calls: w.half_open_max_calls.unwrap_or(d.half_open_max_calls),
            success_threshold: w.success_threshold.unwrap_or(d.success_threshold),
            half_open_max_wait_seconds: w
                .half_open_max_wait_seconds
                .or(d.half_open_max_wait_seconds),
            open_backoff: w.open_backoff.unwrap_or(d.open_backoff),
            seed: w.seed.or(d.seed),
            max_keys: w.max_keys.unwrap_or(d.max_keys),
            key_idle_timeout_seconds: w
                .key_idle_timeout_seconds
                .unwrap_or(d.key_idle_timeout_seconds),
        })
    }
}

impl<'de> Deserialize<'de> for CircuitBreakerProfiles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ProfilesVisitor)
    }
}

struct ProfilesVisitor;

impl<'de> Visitor<'de> for ProfilesVisitor {
    type Value = CircuitBreakerProfiles;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from profile names to circuit breaker configurations")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut profiles = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let config = map.next_value::<CircuitBreakerConfig>().map_err(|e| {
                de::Error::custom(format_args!("in circuit breaker profile {name:?}: {e}"))
            })?;
            if profiles.insert(name.clone(), config).is_some() {
                return Err(de::Error::custom(format_args!(
                    "circuit breaker profile {name:?} is given twice"
                )));
            }
        }
        Ok(CircuitBreakerProfiles { profiles })
    }
}

impl Serialize for CircuitBreakerProfiles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.profiles.serialize(serializer)
    }
}

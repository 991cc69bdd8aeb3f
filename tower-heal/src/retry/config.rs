//! Configuration in its JSON shape (`retry_policies` and the default policy's fields).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::budget::BudgetKind;
use crate::retry::error::check_duration;
use crate::retry::policy::{Policies, canonical};
use crate::{Backoff, BackoffKind, ClassPolicy, ConfigError, Jitter, RetryBudget, Throttle};

/// The most retries a policy may allow.
pub const MAX_RETRIES: u32 = 100;

/// A retry layer's configuration (with the `serde` feature it reads from JSON: the default
/// policy's fields at the top level, per-class policies under `retry_policies`).
///
/// The top-level fields are the default policy, used by every class not listed under
/// `retry_policies`. A class's policy inherits each back-off field it does not set from the
/// default; its `jitter` defaults to `none` for a `fixed` back-off and to the default
/// policy's otherwise. `validation_error` is never retried unless configured.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use tower_heal::{RetryConfig, RetryLayer};
///
/// let config: RetryConfig = serde_json::from_str(r#"{"retry_policies": {
///     "network_error": {"max_retries": 5, "backoff": "exponential", "initial_delay_ms": 1000, "max_delay_ms": 30000, "jitter": true},
///     "rate_limit_429": {"max_retries": 3, "backoff": "fixed", "delay_ms": 60000},
///     "validation_error": {"max_retries": 0}
/// }}"#).unwrap();
/// let layer = RetryLayer::from_config(config).unwrap();
/// # let _ = layer;
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct RetryConfig {
    /// The `retry` label of the metrics and events.
    pub name: String,
    /// Retries after the first attempt (default 2).
    pub max_retries: u32,
    /// `exponential` (default), `fixed` or `none`; also read as `backoff_type`.
    #[cfg_attr(feature = "serde", serde(alias = "backoff_type"))]
    pub backoff: BackoffKind,
    /// First delay of an exponential back-off (default 100).
    pub initial_delay_ms: u64,
    /// The delay of a fixed back-off (default: `initial_delay_ms`).
    pub delay_ms: Option<u64>,
    /// Cap on one delay (default 10 000).
    pub max_delay_ms: u64,
    /// Growth factor (default 2).
    pub multiplier: f64,
    /// `true` (= `full`), `false` (= `none`), or a mode name (default `full`).
    pub jitter: Jitter,
    /// The longest server-requested delay honoured (default 60 000); beyond it, no retry.
    pub max_retry_after_ms: u64,
    /// Bound on the summed back-off of one call (default: none beyond the retry counts).
    pub max_total_delay_ms: Option<u64>,
    /// The retry budget (default ratio 0.2, 10 per second, 10 s); `null` turns it off.
    #[cfg_attr(feature = "serde", serde(default = "default_budget"))]
    pub budget: Option<BudgetConfig>,
    /// gRPC's throttle instead of the budget.
    pub throttle: Option<ThrottleConfig>,
    /// Seed of the jitter's random numbers (default: random per layer).
    pub seed: Option<u64>,
    /// Retries a failure that may have reached the server (a timeout, a connection lost
    /// mid-call) even for a request that is not idempotent (a POST without an
    /// `Idempotency-Key`); default `false`: such a request is sent once.
    pub retry_non_idempotent: bool,
    /// Per-class policies, by class name.
    pub retry_policies: BTreeMap<String, PolicyConfig>,
}

#[cfg(feature = "serde")]
#[allow(clippy::unnecessary_wraps)]
fn default_budget() -> Option<BudgetConfig> {
    Some(BudgetConfig::default())
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            name: "retry".into(),
            max_retries: 2,
            backoff: BackoffKind::Exponential,
            initial_delay_ms: 100,
            delay_ms: None,
            max_delay_ms: 10_000,
            multiplier: 2.0,
            jitter: Jitter::Full,
            max_retry_after_ms: 60_000,
            max_total_delay_ms: None,
            budget: Some(BudgetConfig::default()),
            throttle: None,
            seed: None,
            retry_non_idempotent: false,
            retry_policies: BTreeMap::new(),
        }
    }
}

/// One class's policy under `retry_policies`.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Retries for this class (`0`: never retried); default: the top-level value.
    pub max_retries: Option<u32>,
    /// `exponential`, `fixed` or `none`; also read as `backoff_type`.
    #[cfg_attr(feature = "serde", serde(alias = "backoff_type"))]
    pub backoff: Option<BackoffKind>,
    /// First delay of an exponential back-off.
    pub initial_delay_ms: Option<u64>,
    /// The delay of a fixed back-off.
    pub delay_ms: Option<u64>,
    /// Cap on one delay.
    pub max_delay_ms: Option<u64>,
    /// Growth factor.
    pub multiplier: Option<f64>,
    /// Jitter: a bool or a mode name.
    pub jitter: Option<Jitter>,
}

/// The retry budget's configuration.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct BudgetConfig {
    /// Retries earned per first attempt (default 0.2).
    pub ratio: f64,
    /// Retries per second always allowed (default 10).
    pub min_per_second: u32,
    /// How long deposits count (default 10 000).
    pub ttl_ms: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 10,
            ttl_ms: 10_000,
        }
    }
}

/// gRPC's retry throttle's configuration.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// The most tokens, and the start.
    pub max_tokens: u32,
    /// Tokens given back per success.
    pub token_ratio: f64,
}

/// Checked settings, ready for a layer.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) policies: Policies,
    pub(crate) max_retry_after: Duration,
    pub(crate) max_rejection_wait: Duration,
    pub(crate) max_total_delay: Option<Duration>,
    pub(crate) budget: BudgetKind,
    pub(crate) seed: Option<u64>,
    pub(crate) retry_non_idempotent: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            name: "retry".into(),
            policies: Policies {
                default: ClassPolicy::new(2, Backoff::default()),
                classes: Vec::new(),
            },
            max_retry_after: Duration::from_secs(60),
            max_rejection_wait: Duration::from_secs(10),
            max_total_delay: None,
            budget: BudgetKind::Ratio(RetryBudget::default()),
            seed: None,
            retry_non_idempotent: false,
        }
    }
}

impl Settings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_policy(&self.policies.default)?;
        for (class, policy) in &self.policies.classes {
            check_policy(policy).map_err(|error| ConfigError::Class {
                class: class.clone(),
                error: Box::new(error),
            })?;
        }
        check_duration("max_retry_after_ms", self.max_retry_after, true)?;
        check_duration("max_rejection_wait", self.max_rejection_wait, true)?;
        if let Some(max) = self.max_total_delay {
            check_duration("max_total_delay_ms", max, true)?;
        }
        match self.budget {
            BudgetKind::None => Ok(()),
            BudgetKind::Ratio(budget) => budget.validate(),
            BudgetKind::Throttle(throttle) => throttle.validate(),
        }
    }
}

fn check_policy(policy: &ClassPolicy) -> Result<(), ConfigError> {
    if policy.max_retries > MAX_RETRIES {
        return Err(ConfigError::Count {
            field: "max_retries",
            value: policy.max_retries.into(),
            max: MAX_RETRIES.into(),
        });
    }
    policy.backoff.validate()
}

fn backoff_from(
    kind: BackoffKind,
    initial_ms: u64,
    delay_ms: Option<u64>,
    max_ms: u64,
    multiplier: f64,
    jitter: Jitter,
) -> Backoff {
    match kind {
        BackoffKind::Exponential => Backoff::exponential(Duration::from_millis(initial_ms))
            .max_delay(Duration::from_millis(max_ms))
            .multiplier(multiplier)
            .jitter(jitter),
        BackoffKind::Fixed => {
            Backoff::fixed(Duration::from_millis(delay_ms.unwrap_or(initial_ms))).jitter(jitter)
        }
        BackoffKind::None => Backoff::none(),
    }
}

impl RetryConfig {
    /// Checks the configuration without building a layer.
    ///
    /// # Errors
    /// The first invalid value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.settings().map(|_| ())
    }

    pub(crate) fn settings(&self) -> Result<Settings, ConfigError> {
        let default = ClassPolicy::new(
            self.max_retries,
            backoff_from(
                self.backoff,
                self.initial_delay_ms,
                self.delay_ms,
                self.max_delay_ms,
                self.multiplier,
                self.jitter,
            ),
        );
        let mut policies = Policies {
            default,
            classes: Vec::new(),
        };
        for (class, p) in &self.retry_policies {
            if class.trim().is_empty() {
                return Err(ConfigError::Missing {
                    field: "retry_policies",
                    needs: "non-empty class names",
                });
            }
            let kind = p.backoff.unwrap_or(self.backoff);
            let jitter = p.jitter.unwrap_or(if kind == BackoffKind::Fixed {
                Jitter::None
            } else {
                self.jitter
            });
            let backoff = backoff_from(
                kind,
                p.initial_delay_ms.unwrap_or(self.initial_delay_ms),
                p.delay_ms.or(self.delay_ms),
                p.max_delay_ms
                    .unwrap_or(self.max_delay_ms)
                    .max(p.initial_delay_ms.unwrap_or(0)),
                p.multiplier.unwrap_or(self.multiplier),
                jitter,
            );
            let policy = ClassPolicy::new(p.max_retries.unwrap_or(self.max_retries), backoff);
            policies.set(canonical(class), policy);
        }
        let budget = match (&self.throttle, &self.budget) {
            (Some(t), _) => BudgetKind::Throttle(Throttle::new(t.max_tokens, t.token_ratio)),
            (None, Some(b)) => BudgetKind::Ratio(
                RetryBudget::new()
                    .ratio(b.ratio)
                    .min_per_second(b.min_per_second)
                    .ttl(Duration::from_millis(b.ttl_ms)),
            ),
            (None, None) => BudgetKind::None,
        };
        let settings = Settings {
            name: self.name.clone(),
            policies,
            max_retry_after: Duration::from_millis(self.max_retry_after_ms),
            max_rejection_wait: Settings::default().max_rejection_wait,
            max_total_delay: self.max_total_delay_ms.map(Duration::from_millis),
            budget,
            seed: self.seed,
            retry_non_idempotent: self.retry_non_idempotent,
        };
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(feature = "serde")]
mod jitter_serde {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Jitter;

    impl Serialize for Jitter {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(&self.name())
        }
    }

    impl<'de> Deserialize<'de> for Jitter {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct JitterVisitor;
            impl Visitor<'_> for JitterVisitor {
                type Value = Jitter;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a bool or one of none, full, equal, decorrelated, proportional(f)")
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Jitter, E> {
                    Ok(if v { Jitter::Full } else { Jitter::None })
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Jitter, E> {
                    v.parse().map_err(E::custom)
                }
            }
            deserializer.deserialize_any(JitterVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(RetryConfig::default().validate().is_ok());
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn a_bad_class_is_named() {
        let mut config = RetryConfig::default();
        config.retry_policies.insert(
            "network_error".into(),
            PolicyConfig {
                max_retries: Some(1000),
                ..PolicyConfig::default()
            },
        );
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "retry_policies.network_error: max_retries must be at most 100, got 1000"
        );
    }
}

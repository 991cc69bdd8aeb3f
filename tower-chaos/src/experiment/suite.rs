//! Experiment suites as files (JSON with the `serde` feature): the experiments, the chaos layer
//! they target and its seed, so that the file alone reproduces a run.

use std::time::Duration;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use super::{Expectation, Experiment, Load, RecoveryCheck, SteadyState};
use crate::config::FaultConfig;
use crate::error::seconds;
use crate::{ChaosLayer, ConfigError, Fault, FaultProfile};

/// The steady state as a file gives it. Defaults: 20 calls, 95 %, no latency bound.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct SteadyStateConfig {
    /// Calls sent.
    pub calls: u64,
    /// The success rate needed.
    pub min_success_rate: f64,
    /// The p99 latency needed.
    pub max_p99_seconds: Option<f64>,
}

impl Default for SteadyStateConfig {
    fn default() -> Self {
        Self {
            calls: 20,
            min_success_rate: 0.95,
            max_p99_seconds: None,
        }
    }
}

/// One expected behaviour, tagged by `behavior`, with an optional `weight` (default 1).
///
/// ```json
/// {"behavior": "detection_time", "max_seconds": 10}
/// {"behavior": "retries_attempted", "equals": 3}
/// {"behavior": "success_rate", "min": 0.95, "weight": 3}
/// {"behavior": "p99_latency", "max_seconds": 2}
/// {"behavior": "graceful_failure"}
/// {"behavior": "recovery_time", "max_seconds": 30}
/// {"behavior": "fallbacks", "min": 1}
/// ```
///
/// Checks of your own ("no state corrupted") go in code: add them to the
/// [`Experiment`] that [`ExperimentConfig::experiment`] returns.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "behavior", rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum ExpectationConfig {
    /// [`Expectation::detection_within`].
    DetectionTime {
        /// The bound.
        max_seconds: f64,
        /// The weight.
        #[cfg_attr(feature = "serde", serde(default))]
        weight: Option<f64>,
    },
    /// [`Expectation::retries_attempted`].
    RetriesAttempted {
        /// The count.
        equals: u64,
        /// The weight.
        #[cfg_attr(feature = "serde", serde(default))]
        weight: Option<f64>,
    },
    /// [`Expectation::success_rate_at_least`].
    SuccessRate {
        /// The bound.
        min: f64,
        /// The weight.
        #[cfg_attr(feature = "serde", serde(default))]
        weight: Option<f64>,
    },
    /// [`Expectation::p99_below`].
    P99Latency {
        /// The bound.
        max_seconds: f64,
        /// The weight.
        #[cfg_attr(feature = "serde", serde(default))]
        weight: Option<f64>,
    },
    /// [`Expectation::graceful_failure`].
    GracefulFailure {
        /// The weight.
        #[cfg_attr(feature = "serde", serde(default))]
        weight: Option<f64>,
    },
    /// [`Expectation::recovery_within`].
    RecoveryTime {
        /// The bound.
        max_seconds: f64,
        /// The weight.
        #[cfg_attr(feature = "serde", serde(default))]
        weight: Option<f64>,
    },
    /// [`Expectation::fallbacks_at_least`].
    Fallbacks {
        /// The bound.
        min: u64,
        /// The weight.
        #[cfg_attr(feature = "serde", serde(default))]
        weight: Option<f64>,
    },
}

/// One experiment as a suite file gives it.
///
/// Load: `calls` or `duration_seconds` (default 100 calls, at least 1 call or a positive
/// duration); `interval_ms` apart (default 100); `callers` at once (default 1). Faults: a
/// built-in `fault_profile` and/or a list of `faults`, checked when the suite is read (rates
/// in 0..=1, one kind per fault, latency ranges in order, HTTP statuses 400 to 599, schedule
/// counts of at least 1).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ExperimentConfig {
    /// The name (unique in its suite).
    pub name: String,
    /// The hypothesis, in words.
    pub hypothesis: String,
    /// The steady state.
    pub steady_state: SteadyStateConfig,
    /// How the failure is injected, in words.
    pub method: String,
    /// What it affects, in words.
    pub scope: String,
    /// A built-in profile.
    pub fault_profile: Option<FaultProfile>,
    /// Faults of your own.
    pub faults: Vec<FaultConfig>,
    /// Calls in the injection phase.
    pub calls: Option<u64>,
    /// Or its length.
    pub duration_seconds: Option<f64>,
    /// Pause between calls.
    pub interval_ms: f64,
    /// The longest wait for one call.
    pub call_timeout_seconds: f64,
    /// The expectations.
    pub expectations: Vec<ExpectationConfig>,
    /// Stop early when a probe fails for good.
    pub stop_on_failure: bool,
    /// Rollback steps, for the report.
    pub rollback: Vec<String>,
    /// Consecutive real answers that count as recovered (at least 1).
    pub recovery_successes: u32,
    /// Concurrent callers (at least 1).
    pub callers: usize,
    /// How long to wait for recovery.
    pub recovery_timeout_seconds: f64,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            hypothesis: String::new(),
            steady_state: SteadyStateConfig::default(),
            method: String::new(),
            scope: String::new(),
            fault_profile: None,
            faults: Vec::new(),
            calls: None,
            duration_seconds: None,
            interval_ms: 100.0,
            call_timeout_seconds: 30.0,
            expectations: Vec::new(),
            stop_on_failure: false,
            rollback: Vec::new(),
            recovery_successes: 5,
            recovery_timeout_seconds: 60.0,
            callers: 1,
        }
    }
}

impl ExperimentConfig {
    fn at(&self, field: &str) -> String {
        format!("experiments.{}.{field}", self.name)
    }

    /// The experiment.
    ///
    /// # Errors
    /// The first invalid value, naming its field (`experiments.<name>.<field>`).
    pub fn experiment(&self) -> Result<Experiment, ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::Missing {
                field: "experiments[].name".to_owned(),
                needs: "every experiment needs a name",
            });
        }
        let count = |field: &str, value: u64| {
            if value == 0 {
                Err(ConfigError::Count {
                    field: self.at(field),
                    value,
                })
            } else {
                Ok(value)
            }
        };
        count("steady_state.calls", self.steady_state.calls)?;
        if let Some(calls) = self.calls {
            count("calls", calls)?;
        }
        count("recovery_successes", u64::from(self.recovery_successes))?;
        count("callers", self.callers as u64)?;
        if let Some(profile) = &self.fault_profile {
            profile.check(&self.at("fault_profile"))?;
        }
        for (i, fault) in self.faults.iter().enumerate() {
            fault.check(&self.at(&format!("faults[{i}]")))?;
        }
        let rate = |field: &str, value: f64| crate::error::check_rate(|| self.at(field), value);
        let secs = |field: &str, value: f64| seconds(|| self.at(field), value);
        let load = match (self.calls, self.duration_seconds) {
            (Some(n), None) => Load::Calls(n),
            (None, Some(s)) if s > 0.0 => Load::Duration(secs("duration_seconds", s)?),
            (None, Some(s)) => {
                return Err(ConfigError::Duration {
                    field: self.at("duration_seconds"),
                    seconds: s,
                });
            }
            (None, None) => Load::Calls(100),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: self.at("calls"),
                    reason: "give calls or duration_seconds, not both".to_owned(),
                });
            }
        };
        let mut experiment = Experiment::new(self.name.as_str())
            .hypothesis(self.hypothesis.as_str())
            .steady_state(SteadyState {
                calls: self.steady_state.calls,
                min_success_rate: rate(
                    "steady_state.min_success_rate",
                    self.steady_state.min_success_rate,
                )?,
                max_p99: self
                    .steady_state
                    .max_p99_seconds
                    .map(|s| secs("steady_state.max_p99_seconds", s))
                    .transpose()?,
            })
            .injection(self.method.as_str(), self.scope.as_str())
            .load(load)
            .interval(secs("interval_ms", self.interval_ms / 1000.0)?)
            .call_timeout(secs("call_timeout_seconds", self.call_timeout_seconds)?)
            .stop_on_failure(self.stop_on_failure)
            .callers(self.callers)
            .recovery(RecoveryCheck {
                successes: self.recovery_successes,
                timeout: secs("recovery_timeout_seconds", self.recovery_timeout_seconds)?,
            });
        for step in &self.rollback {
            experiment = experiment.rollback(step.as_str());
        }
        for (i, e) in self.expectations.iter().enumerate() {
            let field = format!("expectations[{i}]");
            let d = |s: f64| -> Result<Duration, ConfigError> {
                secs(&format!("{field}.max_seconds"), s)
            };
            let (expectation, weight) = match e {
                ExpectationConfig::DetectionTime {
                    max_seconds,
                    weight,
                } => (Expectation::detection_within(d(*max_seconds)?), weight),
                ExpectationConfig::RetriesAttempted { equals, weight } => {
                    (Expectation::retries_attempted(*equals), weight)
                }
                ExpectationConfig::SuccessRate { min, weight } => (
                    Expectation::success_rate_at_least(rate(&format!("{field}.min"), *min)?),
                    weight,
                ),
                ExpectationConfig::P99Latency {
                    max_seconds,
                    weight,
                } => (Expectation::p99_below(d(*max_seconds)?), weight),
                ExpectationConfig::GracefulFailure { weight } => {
                    (Expectation::graceful_failure(), weight)
                }
                ExpectationConfig::RecoveryTime {
                    max_seconds,
                    weight,
                } => (Expectation::recovery_within(d(*max_seconds)?), weight),
                ExpectationConfig::Fallbacks { min, weight } => {
                    (Expectation::fallbacks_at_least(*min), weight)
                }
            };
            if let Some(w) = weight
                && !(w.is_finite() && *w >= 0.0)
            {
                return Err(ConfigError::Invalid {
                    field: self.at(&format!("{field}.weight")),
                    reason: format!("a weight is a finite number ≥ 0, got {w}"),
                });
            }
            experiment = experiment.expect(expectation.weight(weight.unwrap_or(1.0)));
        }
        Ok(experiment)
    }

    /// The experiment's faults (the profile's, then its own) for a service of any type.
    ///
    /// # Errors
    /// As [`FaultConfig::fault`] and [`FaultProfile::faults`].
    pub fn faults<Req, Res>(&self) -> Result<Vec<Fault<Req, Res>>, ConfigError> {
        let mut faults = match &self.fault_profile {
            Some(profile) => profile.faults()?,
            None => Vec::new(),
        };
        for (i, fault) in self.faults.iter().enumerate() {
            faults.push(fault.fault(&self.at(&format!("faults[{i}]")))?);
        }
        Ok(faults)
    }

    /// The experiment's faults for an HTTP service.
    ///
    /// # Errors
    /// As [`FaultConfig::http_fault`] and [`FaultProfile::http_faults`].
    #[cfg(feature = "http")]
    pub fn http_faults<ReqB, B>(
        &self,
    ) -> Result<Vec<crate::profiles::HttpFault<ReqB, B>>, ConfigError>
    where
        B: Default + From<bytes::Bytes>,
    {
        let mut faults = match &self.fault_profile {
            Some(profile) => profile.http_faults()?,
            None => Vec::new(),
        };
        for (i, fault) in self.faults.iter().enumerate() {
            faults.push(fault.http_fault(&self.at(&format!("faults[{i}]")))?);
        }
        Ok(faults)
    }
}

/// A chaos experiment suite: `{"layer": "…", "seed": …, "experiments": [...]}`.
///
/// `layer` and `seed` (default `"chaos"` and 0, the layer builder's defaults) name the chaos
/// layer the experiments target and fix which calls it faults, so the file alone reproduces
/// a run: [`layer`](Self::layer) builds that layer for one experiment, and every experiment
/// reports them.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use tower_chaos::experiment::SuiteConfig;
///
/// let suite = SuiteConfig::from_json(r#"{"layer": "mcp-chaos", "seed": 2026, "experiments": [{
///     "name": "MCP server failure",
///     "hypothesis": "When the filesystem MCP server is unavailable, the agent detects it within 10 s.",
///     "steady_state": {"calls": 20, "min_success_rate": 1.0},
///     "fault_profile": {"profile": "dependency_unavailable", "rate": 1.0},
///     "duration_seconds": 60,
///     "expectations": [
///         {"behavior": "detection_time", "max_seconds": 10},
///         {"behavior": "retries_attempted", "equals": 3},
///         {"behavior": "graceful_failure"}
///     ],
///     "rollback": ["Restore MCP config", "Verify connectivity restored"]
/// }]}"#).unwrap();
/// let experiments = suite.experiments().unwrap();
/// assert_eq!(experiments[0].name(), "MCP server failure");
/// let layer = suite.layer::<String, String>("MCP server failure").unwrap();
/// assert_eq!(layer.handle().name(), "mcp-chaos"); // seeded 2026, not armed
///
/// let bad_rate = SuiteConfig::from_json(r#"{"experiments": [{"name": "x",
///     "faults": [{"error": "refused", "rate": 1.5}]}]}"#);
/// assert_eq!(
///     bad_rate.unwrap_err().to_string(),
///     "experiments.x.faults[0].rate must be a rate between 0 and 1, got 1.5"
/// );
///
/// let typo = SuiteConfig::from_json(r#"{"experiments": [{"name": "x", "duration_secs": 60}]}"#);
/// assert!(typo.unwrap_err().to_string().contains("unknown field `duration_secs`"));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct SuiteConfig {
    /// The chaos layer's name (default `"chaos"`).
    pub layer: String,
    /// The chaos layer's seed (default 0).
    pub seed: u64,
    /// The experiments, in order.
    pub experiments: Vec<ExperimentConfig>,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        Self {
            layer: "chaos".to_owned(),
            seed: 0,
            experiments: Vec::new(),
        }
    }
}

impl SuiteConfig {
    /// Reads and checks a suite from JSON.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] (line, column, what was wrong), or the first invalid value.
    #[cfg(feature = "serde")]
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let suite: Self =
            serde_json::from_str(json).map_err(|e| ConfigError::Parse(e.to_string()))?;
        suite.experiments()?;
        Ok(suite)
    }

    /// Every experiment, checked.
    ///
    /// # Errors
    /// The first invalid value, or two experiments with one name.
    pub fn experiments(&self) -> Result<Vec<Experiment>, ConfigError> {
        let mut out: Vec<Experiment> = Vec::new();
        for config in &self.experiments {
            let experiment = config.experiment()?.target(self.layer.as_str(), self.seed);
            if out.iter().any(|e| e.name() == experiment.name()) {
                return Err(ConfigError::Duplicate {
                    field: "experiments".to_owned(),
                    name: experiment.name().to_owned(),
                });
            }
            out.push(experiment);
        }
        Ok(out)
    }

    fn config(&self, experiment: &str) -> Result<&ExperimentConfig, ConfigError> {
        self.experiments
            .iter()
            .find(|e| e.name == experiment)
            .ok_or_else(|| ConfigError::Invalid {
                field: "experiments".to_owned(),
                reason: format!("no experiment named {experiment:?}"),
            })
    }

    /// The chaos layer of experiment `experiment`: the suite's name and seed, the
    /// experiment's faults, the default guard; not armed (the runner arms it).
    ///
    /// # Errors
    /// No such experiment, or an invalid fault.
    pub fn layer<Req, Res: 'static>(
        &self,
        experiment: &str,
    ) -> Result<ChaosLayer<Req, Res>, ConfigError> {
        ChaosLayer::builder()
            .name(self.layer.as_str())
            .seed(self.seed)
            .faults(self.config(experiment)?.faults()?)
            .build()
    }

    /// [`layer`](Self::layer) for an HTTP service, in the `.http()` answer mode.
    ///
    /// # Errors
    /// No such experiment, or an invalid fault.
    #[cfg(feature = "http")]
    pub fn http_layer<ReqB, B>(
        &self,
        experiment: &str,
    ) -> Result<ChaosLayer<http::Request<ReqB>, http::Response<B>, crate::HttpAnswer>, ConfigError>
    where
        B: Default + From<bytes::Bytes> + 'static,
    {
        ChaosLayer::builder()
            .name(self.layer.as_str())
            .seed(self.seed)
            .faults(self.config(experiment)?.http_faults()?)
            .http()
            .build()
    }
}

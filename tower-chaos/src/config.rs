//! Configuration: faults and layers as plain data (JSON with the `serde` feature), validated
//! when the layer is built.

use std::time::Duration;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::error::{check_rate, seconds};
use crate::{ChaosBuilder, ChaosLayer, ConfigError, Fault, FaultProfile, Latency, Schedule};

/// A latency in a fault's configuration: exactly one of `ms`, `low_ms` + `high_ms`, or
/// `p50_ms` + `p99_ms` (log-normal).
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct LatencyConfig {
    /// A fixed delay.
    pub ms: Option<f64>,
    /// The low end of a uniform delay.
    pub low_ms: Option<f64>,
    /// The high end of a uniform delay.
    pub high_ms: Option<f64>,
    /// The median of a log-normal delay.
    pub p50_ms: Option<f64>,
    /// The 99th percentile of a log-normal delay.
    pub p99_ms: Option<f64>,
}

/// A schedule in a fault's configuration: at most one of `first_calls`, `every`, or
/// `from_seconds` / `until_seconds` (after arming). None: always.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ScheduleConfig {
    /// The first N calls after arming.
    pub first_calls: Option<u64>,
    /// Every k-th call after arming.
    pub every: Option<u64>,
    /// From this long after arming (default 0 when `until_seconds` is given).
    pub from_seconds: Option<f64>,
    /// Until this long after arming.
    pub until_seconds: Option<f64>,
}

/// One fault as a file gives it: a `rate` (required), optional `name` and `schedule`, and
/// exactly one action: `error` (its message), `latency`, `abort: true`, `hang: true`,
/// `http_status` (with optional `retry_after_seconds`), or `grpc_status` (with optional
/// `grpc_message` and `retry_after_seconds`).
///
/// ```json
/// {"name": "slow_ai", "rate": 0.3, "latency": {"p50_ms": 800, "p99_ms": 65000}}
/// {"rate": 0.1, "http_status": 429, "retry_after_seconds": 30, "schedule": {"first_calls": 100}}
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct FaultConfig {
    /// The fault's name (default: its kind, such as `latency` or `http_503`).
    pub name: Option<String>,
    /// The share of calls it hits, 0..=1. Required.
    pub rate: Option<f64>,
    /// When it may fire.
    pub schedule: Option<ScheduleConfig>,
    /// An error fault, with this message.
    pub error: Option<String>,
    /// A latency fault.
    pub latency: Option<LatencyConfig>,
    /// An abort fault.
    pub abort: bool,
    /// A hang fault.
    pub hang: bool,
    /// An HTTP status fault.
    pub http_status: Option<u16>,
    /// A gRPC status fault.
    pub grpc_status: Option<u16>,
    /// The gRPC status fault's message.
    pub grpc_message: Option<String>,
    /// `Retry-After` (HTTP) or `grpc-retry-pushback-ms` (gRPC) for a status fault.
    pub retry_after_seconds: Option<f64>,
}

/// The guard's configuration. Default: on, 30 s, 50 %, 10 calls.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct GuardConfig {
    /// Whether the guard runs.
    pub enabled: bool,
    /// The window the real error rate is measured over.
    pub window_seconds: f64,
    /// The error rate past which the layer disarms, (0, 1].
    pub error_rate: f64,
    /// Calls the window must hold first.
    pub minimum_calls: u64,
    /// The p99 latency past which the layer disarms (none: latency not watched).
    pub latency_p99_ms: Option<f64>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window_seconds: crate::DEFAULT_GUARD_WINDOW.as_secs_f64(),
            error_rate: crate::DEFAULT_GUARD_ERROR_RATE,
            minimum_calls: crate::DEFAULT_GUARD_MINIMUM_CALLS,
            latency_p99_ms: None,
        }
    }
}

/// A chaos layer's configuration.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use tower_chaos::{ChaosConfig, ChaosLayer};
///
/// let config = ChaosConfig::from_json(r#"{
///     "name": "search-chaos",
///     "seed": 7,
///     "faults": [
///         {"rate": 0.2, "latency": {"low_ms": 100, "high_ms": 900}},
///         {"rate": 0.05, "error": "connection reset by peer"}
///     ],
///     "profiles": [{"profile": "dependency_unavailable", "rate": 0.01}],
///     "max_active_faults": 20,
///     "auto_disarm_after_seconds": 600,
///     "guard": {"error_rate": 0.3, "latency_p99_ms": 5000}
/// }"#).unwrap();
/// let layer = ChaosLayer::<u32, u32>::from_config(&config).unwrap();
/// assert!(!layer.handle().is_armed(), "armed only when the file says so");
///
/// let bad = ChaosConfig::from_json(r#"{"faults": [{"rate": 1.5, "abort": true}]}"#).unwrap();
/// assert_eq!(
///     ChaosLayer::<u32, u32>::from_config(&bad).unwrap_err().to_string(),
///     "faults[0].rate must be a rate between 0 and 1, got 1.5"
/// );
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(Deserialize, Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ChaosConfig {
    /// The layer's name. Default `"chaos"`.
    pub name: String,
    /// The seed. Default 0.
    pub seed: u64,
    /// Start armed. Default `false`.
    pub armed: bool,
    /// Dry run. Default `false`.
    pub dry_run: bool,
    /// Faults.
    pub faults: Vec<FaultConfig>,
    /// Built-in profiles, added after `faults`.
    pub profiles: Vec<FaultProfile>,
    /// Bound on faulted calls in progress. Default none.
    pub max_active_faults: Option<u32>,
    /// The guard.
    pub guard: GuardConfig,
    /// Disarm by itself this long after arming. Default none.
    pub auto_disarm_after_seconds: Option<f64>,
    /// Disarming releases the calls held by hang and latency faults. Default `true`.
    pub release_on_disarm: bool,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self {
            name: "chaos".to_owned(),
            seed: 0,
            armed: false,
            dry_run: false,
            faults: Vec::new(),
            profiles: Vec::new(),
            max_active_faults: None,
            guard: GuardConfig::default(),
            auto_disarm_after_seconds: None,
            release_on_disarm: true,
        }
    }
}

fn ms(field: impl FnOnce() -> String, value: f64) -> Result<Duration, ConfigError> {
    let field = field();
    seconds(|| field.clone(), value / 1000.0).map_err(|_| ConfigError::Duration {
        field,
        seconds: value / 1000.0,
    })
}

impl LatencyConfig {
    fn latency(&self, at: &str) -> Result<Latency, ConfigError> {
        let f = |name: &str| format!("{at}.latency.{name}");
        match (self.ms, self.low_ms, self.high_ms, self.p50_ms, self.p99_ms) {
            (Some(v), None, None, None, None) => Ok(Latency::Fixed(ms(|| f("ms"), v)?)),
            (None, Some(low), Some(high), None, None) => Ok(Latency::Uniform {
                low: ms(|| f("low_ms"), low)?,
                high: ms(|| f("high_ms"), high)?,
            }),
            (None, None, None, Some(p50), Some(p99)) => Ok(Latency::LogNormal {
                p50: ms(|| f("p50_ms"), p50)?,
                p99: ms(|| f("p99_ms"), p99)?,
            }),
            _ => Err(ConfigError::Invalid {
                field: format!("{at}.latency"),
                reason: "give exactly one of: ms; low_ms and high_ms; p50_ms and p99_ms".to_owned(),
            }),
        }
    }
}

impl ScheduleConfig {
    fn schedule(&self, at: &str) -> Result<Schedule, ConfigError> {
        let f = |name: &str| format!("{at}.schedule.{name}");
        match (
            self.first_calls,
            self.every,
            self.from_seconds,
            self.until_seconds,
        ) {
            (None, None, None, None) => Ok(Schedule::Always),
            (Some(n), None, None, None) => Ok(Schedule::FirstCalls(n)),
            (None, Some(k), None, None) => Ok(Schedule::EveryKth(k)),
            (None, None, from, Some(until)) => Ok(Schedule::AfterArming {
                from: seconds(|| f("from_seconds"), from.unwrap_or(0.0))?,
                until: seconds(|| f("until_seconds"), until)?,
            }),
            _ => Err(ConfigError::Invalid {
                field: format!("{at}.schedule"),
                reason:
                    "give one of: first_calls; every; until_seconds (with an optional from_seconds)"
                        .to_owned(),
            }),
        }
    }
}

enum Kind<'a> {
    Error(&'a str),
    Latency(&'a LatencyConfig),
    Abort,
    Hang,
    Http(u16),
    Grpc(u16),
}

impl FaultConfig {
    fn kind(&self, at: &str) -> Result<Kind<'_>, ConfigError> {
        let mut kinds = Vec::new();
        if let Some(message) = &self.error {
            kinds.push(Kind::Error(message));
        }
        if let Some(latency) = &self.latency {
            kinds.push(Kind::Latency(latency));
        }
        if self.abort {
            kinds.push(Kind::Abort);
        }
        if self.hang {
            kinds.push(Kind::Hang);
        }
        if let Some(status) = self.http_status {
            kinds.push(Kind::Http(status));
        }
        if let Some(code) = self.grpc_status {
            kinds.push(Kind::Grpc(code));
        }
        if kinds.len() != 1 {
            return Err(ConfigError::Invalid {
                field: at.to_owned(),
                reason: format!(
                    "give exactly one of error, latency, abort, hang, http_status, grpc_status (got {})",
                    kinds.len()
                ),
            });
        }
        Ok(kinds.remove(0))
    }

    fn finish<Req, Res>(
        &self,
        mut fault: Fault<Req, Res>,
        at: &str,
    ) -> Result<Fault<Req, Res>, ConfigError> {
        let rate = self.rate.ok_or_else(|| ConfigError::Missing {
            field: format!("{at}.rate"),
            needs: "every fault needs an explicit rate",
        })?;
        fault = fault.rate(check_rate(|| format!("{at}.rate"), rate)?);
        if let Some(name) = &self.name {
            fault = fault.named(name.as_str());
        }
        if let Some(schedule) = &self.schedule {
            fault = fault.schedule(schedule.schedule(at)?);
        }
        if let Some(secs) = self.retry_after_seconds {
            fault = fault.retry_after(seconds(|| format!("{at}.retry_after_seconds"), secs)?);
        }
        Ok(fault)
    }

    /// The fault, for a service of any request and response type; `at` names it in errors
    /// (such as `faults[2]`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field; HTTP and gRPC statuses need
    /// [`http_fault`](Self::http_fault).
    pub fn fault<Req, Res>(&self, at: &str) -> Result<Fault<Req, Res>, ConfigError> {
        let fault = match self.kind(at)? {
            Kind::Error(message) => {
                let message = message.to_owned();
                Fault::error(move || message.clone().into())
            }
            Kind::Latency(latency) => Fault::latency(latency.latency(at)?),
            Kind::Abort => Fault::abort(),
            Kind::Hang => Fault::hang(),
            Kind::Http(_) | Kind::Grpc(_) => {
                return Err(ConfigError::Invalid {
                    field: at.to_owned(),
                    reason: "http_status and grpc_status need an HTTP layer (http_layer)"
                        .to_owned(),
                });
            }
        };
        self.finish(fault, at)
    }

    /// The fault, for an HTTP service.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field.
    #[cfg(feature = "http")]
    pub fn http_fault<Req, B: Default>(
        &self,
        at: &str,
    ) -> Result<Fault<Req, http::Response<B>>, ConfigError> {
        let fault = match self.kind(at)? {
            Kind::Http(status) => {
                Fault::http_status(http::StatusCode::from_u16(status).map_err(|_| {
                    ConfigError::Invalid {
                        field: format!("{at}.http_status"),
                        reason: format!("{status} is not an HTTP status code"),
                    }
                })?)
            }
            Kind::Grpc(code) => Fault::grpc_status(
                code,
                self.grpc_message
                    .clone()
                    .unwrap_or_else(|| "injected".to_owned()),
            ),
            _ => return self.fault(at),
        };
        self.finish(fault, at)
    }
}

impl ChaosConfig {
    /// Reads a configuration from JSON.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the line, the column and what was wrong (unknown fields
    /// are an error, so a typo never leaves a default in force).
    #[cfg(feature = "serde")]
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(json).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    fn builder<Req, Res: 'static>(
        &self,
        faults: Vec<Fault<Req, Res>>,
    ) -> Result<ChaosBuilder<Req, Res>, ConfigError> {
        let mut builder = ChaosLayer::builder()
            .name(self.name.as_str())
            .seed(self.seed)
            .armed(self.armed)
            .dry_run(self.dry_run)
            .release_on_disarm(self.release_on_disarm)
            .faults(faults);
        if let Some(max) = self.max_active_faults {
            builder = builder.max_active_faults(max);
        }
        if let Some(secs) = self.auto_disarm_after_seconds {
            builder = builder
                .auto_disarm_after(seconds(|| "auto_disarm_after_seconds".to_owned(), secs)?);
        }
        Ok(builder)
    }

    fn guard<Req, Res, A>(
        &self,
        builder: ChaosBuilder<Req, Res, A>,
    ) -> Result<ChaosBuilder<Req, Res, A>, ConfigError> {
        if !self.guard.enabled {
            return Ok(builder.no_guard());
        }
        let window = seconds(
            || "guard.window_seconds".to_owned(),
            self.guard.window_seconds,
        )?;
        let mut builder = builder.guard(window, self.guard.error_rate, self.guard.minimum_calls);
        if let Some(p99) = self.guard.latency_p99_ms {
            builder = builder.guard_latency(ms(|| "guard.latency_p99_ms".to_owned(), p99)?);
        }
        Ok(builder)
    }

    /// The old spelling of [`ChaosLayer::from_config`].
    ///
    /// # Errors
    /// The first invalid value, naming its field.
    #[deprecated(since = "0.1.0", note = "use `ChaosLayer::from_config(&config)`")]
    pub fn layer<Req, Res: 'static>(&self) -> Result<ChaosLayer<Req, Res>, ConfigError> {
        ChaosLayer::from_config(self)
    }

    pub(crate) fn build_layer<Req, Res: 'static>(
        &self,
    ) -> Result<ChaosLayer<Req, Res>, ConfigError> {
        let mut faults = Vec::new();
        for (i, fault) in self.faults.iter().enumerate() {
            faults.push(fault.fault(&format!("faults[{i}]"))?);
        }
        for profile in &self.profiles {
            faults.extend(profile.faults()?);
        }
        self.guard(self.builder(faults)?)?.build()
    }

    /// Builds the layer for an HTTP service, in the `.http()` answer mode.
    ///
    /// # Errors
    /// The first invalid value, naming its field.
    #[cfg(feature = "http")]
    pub fn http_layer<ReqB, B>(
        &self,
    ) -> Result<ChaosLayer<http::Request<ReqB>, http::Response<B>, crate::HttpAnswer>, ConfigError>
    where
        B: Default + From<bytes::Bytes> + 'static,
    {
        let mut faults = Vec::new();
        for (i, fault) in self.faults.iter().enumerate() {
            faults.push(fault.http_fault(&format!("faults[{i}]"))?);
        }
        for profile in &self.profiles {
            faults.extend(profile.http_faults()?);
        }
        self.guard(self.builder(faults)?.http())?.build()
    }
}

impl FaultConfig {
    /// Checks every value of the fault without building it (for a suite file, whatever the
    /// service it will run against): one kind only (abort together with hang is an error), a
    /// rate in 0..=1, a latency range in order, an HTTP status from 400 to 599 and a gRPC
    /// code from 1 to 16 (a fault answers an error), schedule counts of at least 1, a time
    /// window in order. `at` names the fault in errors.
    pub(crate) fn check(&self, at: &str) -> Result<(), ConfigError> {
        let kind = self.kind(at)?;
        let rate = self.rate.ok_or_else(|| ConfigError::Missing {
            field: format!("{at}.rate"),
            needs: "every fault needs an explicit rate",
        })?;
        check_rate(|| format!("{at}.rate"), rate)?;
        match kind {
            Kind::Latency(latency) => match latency.latency(at)? {
                Latency::Uniform { low, high } if low > high => {
                    return Err(ConfigError::Invalid {
                        field: format!("{at}.latency.low_ms"),
                        reason: format!(
                            "low_ms ({} ms) is above high_ms ({} ms)",
                            low.as_secs_f64() * 1000.0,
                            high.as_secs_f64() * 1000.0
                        ),
                    });
                }
                Latency::LogNormal { p50, p99 } if p50 > p99 => {
                    return Err(ConfigError::Invalid {
                        field: format!("{at}.latency.p50_ms"),
                        reason: format!(
                            "p50_ms ({} ms) is above p99_ms ({} ms)",
                            p50.as_secs_f64() * 1000.0,
                            p99.as_secs_f64() * 1000.0
                        ),
                    });
                }
                _ => {}
            },
            Kind::Http(status) if !(400..=599).contains(&status) => {
                return Err(ConfigError::Invalid {
                    field: format!("{at}.http_status"),
                    reason: format!("a fault answers an error status, 400 to 599, got {status}"),
                });
            }
            Kind::Grpc(code) if !(1..=16).contains(&code) => {
                return Err(ConfigError::Invalid {
                    field: format!("{at}.grpc_status"),
                    reason: format!("a fault answers a gRPC error code, 1 to 16, got {code}"),
                });
            }
            _ => {}
        }
        if let Some(schedule) = &self.schedule {
            for (name, value) in [
                ("first_calls", schedule.first_calls),
                ("every", schedule.every),
            ] {
                if value == Some(0) {
                    return Err(ConfigError::Count {
                        field: format!("{at}.schedule.{name}"),
                        value: 0,
                    });
                }
            }
            if let Schedule::AfterArming { from, until } = schedule.schedule(at)?
                && from >= until
            {
                return Err(ConfigError::Invalid {
                    field: format!("{at}.schedule.until_seconds"),
                    reason: format!(
                        "until_seconds ({}) must come after from_seconds ({})",
                        until.as_secs_f64(),
                        from.as_secs_f64()
                    ),
                });
            }
        }
        if let Some(secs) = self.retry_after_seconds {
            seconds(|| format!("{at}.retry_after_seconds"), secs)?;
        }
        Ok(())
    }
}

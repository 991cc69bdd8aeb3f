//! Built-in fault profiles, one per common failure mode of a dependency.
//!
//! | catalogue entry | generic request/response | HTTP (`profiles::http`) |
//! |---|---|---|
//! | TF-001 dependency unavailable (MCP server down, connection refused) | [`dependency_unavailable`]: a `ConnectionRefused` I/O error | [`http::dependency_unavailable`]: `503` |
//! | AI response timeout (past a deadline) | [`ai_response_timeout`]: latency between 1× and 2× the deadline | the same |
//! | TF-002 API rate limit | — | [`http::api_rate_limit`]: `429` + `Retry-After` |
//! | malformed response | [`malformed_response`]: your corruption | [`http::malformed_response`]: the body replaced by truncated JSON |
//! | partial failure (one of several upstreams) | [`partial_failure`]: an error for the requests your predicate picks | [`http::partial_failure`]: `503` for one host |
//! | RF-001 resource exhaustion (a cost that blows a token budget) | — | [`http::resource_exhaustion`]: the answer reports a huge token usage |
//!
//! Each returns the faults to hand to [`ChaosBuilder::faults`](crate::ChaosBuilder::faults),
//! named after the profile. The same profiles can be read from a suite file as
//! [`FaultProfile`].
//!
//! ```
//! use std::time::Duration;
//! use tower_chaos::{ChaosLayer, profiles};
//!
//! let layer = ChaosLayer::<u32, u32>::builder()
//!     .faults(profiles::ai_response_timeout(0.3, Duration::from_secs(60)))
//!     .faults(profiles::dependency_unavailable(0.05))
//!     .build()
//!     .unwrap();
//! let names: Vec<String> = layer.handle().stats().faults.into_iter().map(|f| f.name).collect();
//! assert_eq!(names, ["ai_response_timeout", "dependency_unavailable"]);
//! ```

use std::time::Duration;

use crate::{ConfigError, Fault, Latency};

/// A fault over HTTP requests and responses.
#[cfg(feature = "http")]
pub type HttpFault<ReqB, B> = Fault<::http::Request<ReqB>, ::http::Response<B>>;

/// TF-001: the dependency refuses the connection (an `io::ErrorKind::ConnectionRefused`
/// error, which the layers above classify as a transport failure).
pub fn dependency_unavailable<Req, Res>(rate: f64) -> Vec<Fault<Req, Res>> {
    vec![
        Fault::error(|| Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)))
            .named("dependency_unavailable")
            .rate(rate),
    ]
}

/// The AI API takes longer than `deadline`: a delay uniform between the deadline (plus 1 ms)
/// and twice the deadline, so a timeout set at the deadline always fires.
pub fn ai_response_timeout<Req, Res>(rate: f64, deadline: Duration) -> Vec<Fault<Req, Res>> {
    vec![
        Fault::latency(Latency::Uniform {
            low: deadline + Duration::from_millis(1),
            high: deadline.saturating_mul(2) + Duration::from_millis(2),
        })
        .named("ai_response_timeout")
        .rate(rate),
    ]
}

/// Malformed data: `corrupt` changes the answer (truncate it, drop a field, swap a type).
pub fn malformed_response<Req, Res>(
    rate: f64,
    corrupt: impl Fn(Res) -> Res + Send + Sync + 'static,
) -> Vec<Fault<Req, Res>> {
    vec![
        Fault::mutate(corrupt)
            .named("malformed_response")
            .rate(rate),
    ]
}

/// One of several upstreams fails: a `ConnectionRefused` error for the requests `upstream`
/// picks; the others pass.
pub fn partial_failure<Req, Res>(
    rate: f64,
    upstream: impl Fn(&Req) -> bool + Send + Sync + 'static,
) -> Vec<Fault<Req, Res>> {
    vec![
        Fault::error(|| Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)))
            .named("partial_failure")
            .rate(rate)
            .when(upstream),
    ]
}

/// HTTP forms of the profiles.
#[cfg(feature = "http")]
pub mod http {
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderName, HeaderValue, Request, Response, StatusCode};

    use crate::Fault;

    /// The body [`malformed_response`] answers: JSON cut off mid-string.
    pub const TRUNCATED_JSON: &str =
        "{\"choices\": [{\"message\": {\"role\": \"assistant\", \"content\": \"The answer is";

    /// TF-001: `503 Service Unavailable`, as a proxy answers for a dead upstream.
    pub fn dependency_unavailable<Req, B: Default>(rate: f64) -> Vec<Fault<Req, Response<B>>> {
        vec![
            Fault::http_status(StatusCode::SERVICE_UNAVAILABLE)
                .named("dependency_unavailable")
                .rate(rate),
        ]
    }

    /// TF-002: `429 Too Many Requests` with `Retry-After`.
    pub fn api_rate_limit<Req, B: Default>(
        rate: f64,
        retry_after: Duration,
    ) -> Vec<Fault<Req, Response<B>>> {
        vec![
            Fault::http_status(StatusCode::TOO_MANY_REQUESTS)
                .retry_after(retry_after)
                .named("api_rate_limit")
                .rate(rate),
        ]
    }

    /// Malformed data: the status and headers stay, the body becomes [`TRUNCATED_JSON`].
    pub fn malformed_response<Req, B: From<Bytes>>(rate: f64) -> Vec<Fault<Req, Response<B>>> {
        vec![
            Fault::mutate(|res: Response<B>| {
                let (mut parts, _) = res.into_parts();
                parts.headers.remove(http::header::CONTENT_LENGTH);
                Response::from_parts(
                    parts,
                    B::from(Bytes::from_static(TRUNCATED_JSON.as_bytes())),
                )
            })
            .named("malformed_response")
            .rate(rate),
        ]
    }

    /// One of several upstreams fails: `503` for requests to `host` (the URI's host, else the
    /// `Host` header); requests to other hosts pass.
    pub fn partial_failure<ReqB, B: Default>(
        rate: f64,
        host: impl Into<String>,
    ) -> Vec<Fault<Request<ReqB>, Response<B>>> {
        let host = host.into();
        vec![
            Fault::http_status(StatusCode::SERVICE_UNAVAILABLE)
                .named("partial_failure")
                .rate(rate)
                .when(move |req: &Request<ReqB>| {
                    let target = req.uri().host().or_else(|| {
                        req.headers()
                            .get(http::header::HOST)
                            .and_then(|v| v.to_str().ok())
                            .map(|h| h.split(':').next().unwrap_or(h))
                    });
                    target == Some(host.as_str())
                }),
        ]
    }

    /// RF-001: the answer reports a cost that blows a token budget: `header` (such as
    /// `x-tokens-used`) set to `tokens`, for a bulkhead that settles the real cost from the
    /// response.
    pub fn resource_exhaustion<Req, B>(
        rate: f64,
        header: HeaderName,
        tokens: u64,
    ) -> Vec<Fault<Req, Response<B>>> {
        vec![
            Fault::mutate(move |mut res: Response<B>| {
                res.headers_mut()
                    .insert(header.clone(), HeaderValue::from(tokens));
                res
            })
            .named("resource_exhaustion")
            .rate(rate),
        ]
    }
}

/// A built-in profile as a suite file names it.
///
/// In JSON: `{"profile": "api_rate_limit", "rate": 0.3, "retry_after_seconds": 5}`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "profile", rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum FaultProfile {
    /// [`dependency_unavailable`] / [`http::dependency_unavailable`].
    DependencyUnavailable {
        /// The rate.
        rate: f64,
    },
    /// [`ai_response_timeout`].
    AiResponseTimeout {
        /// The rate.
        rate: f64,
        /// The deadline the latency goes past.
        deadline_seconds: f64,
    },
    /// [`http::api_rate_limit`].
    ApiRateLimit {
        /// The rate.
        rate: f64,
        /// The `Retry-After` answered.
        retry_after_seconds: f64,
    },
    /// [`http::malformed_response`].
    MalformedResponse {
        /// The rate.
        rate: f64,
    },
    /// [`http::partial_failure`].
    PartialFailure {
        /// The rate.
        rate: f64,
        /// The host that fails.
        upstream: String,
    },
    /// [`http::resource_exhaustion`].
    ResourceExhaustion {
        /// The rate.
        rate: f64,
        /// The usage header.
        header: String,
        /// The usage reported.
        tokens: u64,
    },
}

impl FaultProfile {
    /// The profile's name, as in the suite file.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::DependencyUnavailable { .. } => "dependency_unavailable",
            Self::AiResponseTimeout { .. } => "ai_response_timeout",
            Self::ApiRateLimit { .. } => "api_rate_limit",
            Self::MalformedResponse { .. } => "malformed_response",
            Self::PartialFailure { .. } => "partial_failure",
            Self::ResourceExhaustion { .. } => "resource_exhaustion",
        }
    }

    /// The faults for a service of any request and response type.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a profile that needs HTTP (use
    /// [`http_faults`](Self::http_faults)), or a bad deadline.
    pub fn faults<Req, Res>(&self) -> Result<Vec<Fault<Req, Res>>, ConfigError> {
        match self {
            Self::DependencyUnavailable { rate } => Ok(dependency_unavailable(*rate)),
            Self::AiResponseTimeout {
                rate,
                deadline_seconds,
            } => Ok(ai_response_timeout(
                *rate,
                self.deadline(*deadline_seconds)?,
            )),
            _ => Err(ConfigError::Invalid {
                field: "profile".to_owned(),
                reason: format!("{} needs an HTTP service (use http_faults)", self.name()),
            }),
        }
    }

    /// Checks every value of the profile without building its faults: its rate in 0..=1, its
    /// durations, its header name. `at` names it in errors.
    pub(crate) fn check(&self, at: &str) -> Result<(), ConfigError> {
        let rate = match self {
            Self::DependencyUnavailable { rate }
            | Self::AiResponseTimeout { rate, .. }
            | Self::ApiRateLimit { rate, .. }
            | Self::MalformedResponse { rate }
            | Self::PartialFailure { rate, .. }
            | Self::ResourceExhaustion { rate, .. } => *rate,
        };
        crate::error::check_rate(|| format!("{at}.rate"), rate)?;
        let secs = |name: &str, value: f64| {
            crate::error::seconds(|| format!("{at}.{name}"), value).map(|_| ())
        };
        match self {
            Self::AiResponseTimeout {
                deadline_seconds, ..
            } => secs("deadline_seconds", *deadline_seconds),
            Self::ApiRateLimit {
                retry_after_seconds,
                ..
            } => secs("retry_after_seconds", *retry_after_seconds),
            #[cfg(feature = "http")]
            Self::ResourceExhaustion { header, .. } => {
                ::http::HeaderName::try_from(header.as_str())
                    .map(|_| ())
                    .map_err(|_| ConfigError::Invalid {
                        field: format!("{at}.header"),
                        reason: format!("{header:?} is not a header name"),
                    })
            }
            _ => Ok(()),
        }
    }

    fn deadline(&self, seconds: f64) -> Result<Duration, ConfigError> {
        crate::error::seconds(|| format!("{}.deadline_seconds", self.name()), seconds)
    }

    /// The faults for an HTTP service.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad duration or header name.
    #[cfg(feature = "http")]
    pub fn http_faults<ReqB, B>(&self) -> Result<Vec<HttpFault<ReqB, B>>, ConfigError>
    where
        B: Default + From<bytes::Bytes>,
    {
        Ok(match self {
            Self::DependencyUnavailable { rate } => http::dependency_unavailable(*rate),
            Self::AiResponseTimeout {
                rate,
                deadline_seconds,
            } => ai_response_timeout(*rate, self.deadline(*deadline_seconds)?),
            Self::ApiRateLimit {
                rate,
                retry_after_seconds,
            } => http::api_rate_limit(
                *rate,
                crate::error::seconds(
                    || "api_rate_limit.retry_after_seconds".to_owned(),
                    *retry_after_seconds,
                )?,
            ),
            Self::MalformedResponse { rate } => http::malformed_response(*rate),
            Self::PartialFailure { rate, upstream } => {
                http::partial_failure(*rate, upstream.clone())
            }
            Self::ResourceExhaustion {
                rate,
                header,
                tokens,
            } => {
                let header = ::http::HeaderName::try_from(header.as_str()).map_err(|_| {
                    ConfigError::Invalid {
                        field: "resource_exhaustion.header".to_owned(),
                        reason: format!("{header:?} is not a header name"),
                    }
                })?;
                http::resource_exhaustion(*rate, header, *tokens)
            }
        })
    }
}

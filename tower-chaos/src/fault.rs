//! Faults: what to inject, how often, and when.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_outcome::BoxError;

use crate::ConfigError;
use crate::decide::Dist;
use crate::error::check_duration;

/// What kind of fault a [`Fault`] injects; its `as_str` is the default name and the `fault`
/// label of `chaos_injected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// An error from a user factory, instead of calling the service.
    Error,
    /// A delay before the request is sent to the service.
    Latency,
    /// A delay of the service's answer, after the service has answered.
    ResponseDelay,
    /// An immediate refusal: the family's [`Rejected`](crate::Rejected) with
    /// [`Reason::Injected`](crate::Reason::Injected).
    Abort,
    /// The request is held until released through the handle or a disarm (or dropped).
    Hang,
    /// An HTTP status answered instead of calling the service.
    HttpStatus,
    /// A gRPC Trailers-Only status answered instead of calling the service.
    GrpcStatus,
    /// The service's answer, changed by a closure.
    Mutate,
    /// The service's response body, slowed down or cut off.
    Body,
}

impl FaultKind {
    /// The label used for names and metrics: `error`, `latency`, `response_delay`, `abort`,
    /// `hang`, `http_status`, `grpc_status`, `mutate`, `body`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Latency => "latency",
            Self::ResponseDelay => "response_delay",
            Self::Abort => "abort",
            Self::Hang => "hang",
            Self::HttpStatus => "http_status",
            Self::GrpcStatus => "grpc_status",
            Self::Mutate => "mutate",
            Self::Body => "body",
        }
    }

    /// When the fault acts on a request: before the call (a gate), instead of the call
    /// (terminal), or on the answer (post).
    pub(crate) const fn stage(self) -> Stage {
        match self {
            Self::Latency | Self::Hang => Stage::Gate,
            Self::Error | Self::Abort | Self::HttpStatus | Self::GrpcStatus => Stage::Terminal,
            Self::Mutate | Self::Body | Self::ResponseDelay => Stage::Post,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Gate,
    Terminal,
    Post,
}

/// How long a latency fault delays a call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Uniform in `low..high`.
    Uniform {
        /// The shortest delay.
        low: Duration,
        /// The longest delay (exclusive).
        high: Duration,
    },
    /// Log-normal with the given median and 99th percentile, as latency tends to be; samples
    /// beyond 10 × `p99` are cut there.
    LogNormal {
        /// The median delay.
        p50: Duration,
        /// The 99th percentile (at least `p50`).
        p99: Duration,
    },
}

/// When a fault may fire; within its schedule, the fault's rate decides.
///
/// Counts are over the layer's request sequence numbers, which restart at 0 when the layer is
/// armed: `FirstCalls(2)` is the first two calls after arming. Instants are `tokio::time`
/// instants, so paused time moves them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Schedule {
    /// Every call (the default).
    Always,
    /// The first `n` calls after arming.
    FirstCalls(u64),
    /// Every `k`-th call after arming: the `k`-th, the `2k`-th, …
    EveryKth(u64),
    /// Calls that start in `start..end`.
    Between(Instant, Instant),
    /// Calls that start between `from` and `until` after arming (`for_duration(d)` is `0..d`).
    AfterArming {
        /// The start of the window, measured from arming.
        from: Duration,
        /// The end of the window (exclusive), measured from arming.
        until: Duration,
    },
}

impl Schedule {
    /// For `duration` after arming.
    #[must_use]
    pub const fn for_duration(duration: Duration) -> Self {
        Self::AfterArming {
            from: Duration::ZERO,
            until: duration,
        }
    }

    pub(crate) const fn needs_clock(&self) -> bool {
        matches!(self, Self::Between(..) | Self::AfterArming { .. })
    }
}

pub(crate) type Predicate<Req> = Arc<dyn Fn(&Req) -> bool + Send + Sync>;
pub(crate) type ErrorFactory = Arc<dyn Fn() -> BoxError + Send + Sync>;
pub(crate) type Mutation<Res> = Arc<dyn Fn(Res) -> Res + Send + Sync>;
/// Wraps a response's body; the body holds the call's active-fault slot until it ends.
pub(crate) type BodyWrap<Res> =
    Arc<dyn Fn(Res, Option<Arc<crate::core::ActiveSlot>>) -> Res + Send + Sync>;

/// The answer a status fault gives, built without a closure.
pub(crate) struct Respond<Res> {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) message: Option<Arc<str>>,
    pub(crate) make: fn(&Respond<Res>) -> Res,
}

impl<Res> Clone for Respond<Res> {
    fn clone(&self) -> Self {
        Self {
            status: self.status,
            retry_after: self.retry_after,
            message: self.message.clone(),
            make: self.make,
        }
    }
}

pub(crate) enum Action<Res> {
    Latency(Latency),
    ResponseDelay(Latency),
    Hang,
    Error(ErrorFactory),
    Abort,
    Respond(Respond<Res>),
    Mutate(Mutation<Res>),
    Body(BodyWrap<Res>),
}

impl<Res> Clone for Action<Res> {
    fn clone(&self) -> Self {
        match self {
            Self::Latency(l) => Self::Latency(*l),
            Self::ResponseDelay(l) => Self::ResponseDelay(*l),
            Self::Hang => Self::Hang,
            Self::Error(f) => Self::Error(Arc::clone(f)),
            Self::Abort => Self::Abort,
            Self::Respond(r) => Self::Respond(r.clone()),
            Self::Mutate(m) => Self::Mutate(Arc::clone(m)),
            Self::Body(b) => Self::Body(Arc::clone(b)),
        }
    }
}

/// One fault: what it does, its rate (always given explicitly), its schedule and predicate.
///
/// Made with a constructor per kind, then [`rate`](Self::rate) (required: a fault without a
/// rate is a [`ConfigError`](crate::ConfigError) when the layer is built), and optionally
/// [`named`](Self::named), [`schedule`](Self::schedule), [`when`](Self::when).
///
/// ```
/// use std::time::Duration;
/// use tower_chaos::{Fault, Latency, Schedule};
///
/// let slow = Fault::<u32, u32>::latency(Latency::LogNormal {
///     p50: Duration::from_millis(200),
///     p99: Duration::from_secs(3),
/// })
/// .rate(0.3);
/// let flaky = Fault::<u32, u32>::error(|| "upstream reset the connection".into())
///     .named("reset")
///     .rate(1.0)
///     .schedule(Schedule::FirstCalls(2))
///     .when(|n: &u32| *n % 2 == 0);
/// assert_eq!(slow.name(), "latency");
/// assert_eq!(flaky.name(), "reset");
/// ```
pub struct Fault<Req, Res> {
    pub(crate) kind: FaultKind,
    pub(crate) name: Arc<str>,
    pub(crate) action: Action<Res>,
    pub(crate) rate: Option<f64>,
    pub(crate) schedule: Schedule,
    pub(crate) when: Option<Predicate<Req>>,
    pub(crate) misuse: Option<&'static str>,
    /// Injecting it needs tokio's timer (a delay, a stalled body).
    pub(crate) timer: bool,
}

impl<Req, Res> Clone for Fault<Req, Res> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind,
            name: Arc::clone(&self.name),
            action: self.action.clone(),
            rate: self.rate,
            schedule: self.schedule,
            when: self.when.clone(),
            misuse: self.misuse,
            timer: self.timer,
        }
    }
}

impl<Req, Res> fmt::Debug for Fault<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fault")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("schedule", &self.schedule)
            .field("when", &self.when.is_some())
            .finish()
    }
}

impl<Req, Res> Fault<Req, Res> {
    pub(crate) fn new(kind: FaultKind, name: impl Into<Arc<str>>, action: Action<Res>) -> Self {
        Self {
            kind,
            name: name.into(),
            action,
            rate: None,
            schedule: Schedule::Always,
            when: None,
            misuse: None,
            timer: matches!(kind, FaultKind::Latency | FaultKind::ResponseDelay),
        }
    }

    /// Fails the call with the error `factory` makes, without calling the service.
    ///
    /// In the `.http()` / `.grpc()` answer modes, where the error type is the inner service's,
    /// the error's face is used instead: a bare `500` (HTTP) or `INTERNAL` with the error's
    /// message (gRPC).
    pub fn error(factory: impl Fn() -> BoxError + Send + Sync + 'static) -> Self {
        Self::new(FaultKind::Error, "error", Action::Error(Arc::new(factory)))
    }

    /// Delays the request (see [`Latency`]): the service is called once the delay is over,
    /// so it sees the request late, as behind a slow network. Disarming with
    /// `release_on_disarm` (the default) cuts the delay short. To delay the answer instead
    /// (the service works on time, the caller waits), use
    /// [`response_delay`](Self::response_delay).
    pub fn latency(latency: Latency) -> Self {
        Self::new(FaultKind::Latency, "latency", Action::Latency(latency))
    }

    /// Delays the service's answer (see [`Latency`]): the service is called at once, and its
    /// answer (or error) reaches the caller that much later, as a slow download does. The
    /// dependency does its work on time; only the caller waits. Named `response_delay` by
    /// default. For a request that reaches the service late, use [`latency`](Self::latency).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::{Layer, Service, ServiceExt};
    /// use tower_chaos::{ChaosLayer, Fault, Latency};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), tower_chaos::BoxError> {
    /// let chaos = ChaosLayer::<u32, u32>::builder()
    ///     .fault(Fault::response_delay(Latency::Fixed(Duration::from_secs(2))).rate(1.0))
    ///     .armed(true)
    ///     .build()?;
    /// let mut svc = chaos.layer(tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) }));
    /// let start = tokio::time::Instant::now();
    /// assert_eq!(svc.ready().await?.call(4).await?, 4);
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// # Ok(()) }
    /// ```
    pub fn response_delay(latency: Latency) -> Self {
        Self::new(
            FaultKind::ResponseDelay,
            "response_delay",
            Action::ResponseDelay(latency),
        )
    }

    /// Refuses the call at once with the family's [`Rejected`](crate::Rejected)
    /// ([`LayerKind::Chaos`](crate::LayerKind::Chaos), [`Reason::Injected`](crate::Reason::Injected)),
    /// which outer layers recognise as injected (a breaker ignores it). For a fault the layers
    /// above must take for the real thing, use [`error`](Self::error) or a status fault.
    pub fn abort() -> Self {
        Self::new(FaultKind::Abort, "abort", Action::Abort)
    }

    /// Holds the request until [`ChaosHandle::release_hung`](crate::ChaosHandle::release_hung)
    /// or a disarm releases it (the service is then called and its answer goes through), or
    /// until the caller drops the call.
    ///
    /// The service is not called while the request is held: the dependency sees nothing.
    pub fn hang() -> Self {
        Self::new(FaultKind::Hang, "hang", Action::Hang)
    }

    /// Replaces the service's answer with `mutate(answer)`: corrupt it, truncate it, or answer
    /// something else entirely ("malformed data"). Errors pass unchanged.
    pub fn mutate(mutate: impl Fn(Res) -> Res + Send + Sync + 'static) -> Self {
        Self::new(
            FaultKind::Mutate,
            "mutate",
            Action::Mutate(Arc::new(mutate)),
        )
    }

    /// Names the fault (default: its kind, such as `latency` or `http_503`). Names label the
    /// metrics, key the decisions (renaming a fault changes which requests it hits) and are
    /// what header-driven control and [`ChaosHandle::set_rate`](crate::ChaosHandle::set_rate)
    /// refer to; they must be unique within a layer.
    #[must_use]
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The share of eligible calls this fault hits, in 0..=1. Required.
    #[must_use]
    pub const fn rate(mut self, rate: f64) -> Self {
        self.rate = Some(rate);
        self
    }

    /// When the fault may fire (default [`Schedule::Always`]).
    #[must_use]
    pub const fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Only requests for which `predicate` is true are eligible (a header, a route, a tenant).
    #[must_use]
    pub fn when(mut self, predicate: impl Fn(&Req) -> bool + Send + Sync + 'static) -> Self {
        self.when = Some(Arc::new(predicate));
        self
    }

    /// Adds `Retry-After` to an HTTP status fault (whole seconds, rounded up), or
    /// `grpc-retry-pushback-ms` to a gRPC one. On other faults it is a
    /// [`ConfigError`](crate::ConfigError) when the layer is built.
    #[must_use]
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        match &mut self.action {
            Action::Respond(respond) => respond.retry_after = Some(retry_after),
            _ => self.misuse = Some("retry_after applies to http_status and grpc_status faults"),
        }
        self
    }

    /// The fault's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fault's kind.
    #[must_use]
    pub const fn kind(&self) -> FaultKind {
        self.kind
    }
}

/// Checks a latency and makes its distribution.
pub(crate) fn latency_dist(
    latency: Latency,
    field: &dyn Fn(&str) -> String,
) -> Result<Dist, ConfigError> {
    Ok(match latency {
        Latency::Fixed(d) => Dist::Fixed(check_duration(|| field("latency"), d, true)?),
        Latency::Uniform { low, high } => {
            let low = check_duration(|| field("latency.low"), low, true)?;
            let high = check_duration(|| field("latency.high"), high, false)?;
            if high <= low {
                return Err(ConfigError::Invalid {
                    field: field("latency.high"),
                    reason: format!("must be above low ({low:?}), got {high:?}"),
                });
            }
            Dist::Uniform { low, high }
        }
        Latency::LogNormal { p50, p99 } => {
            let p50 = check_duration(|| field("latency.p50"), p50, false)?;
            let p99 = check_duration(|| field("latency.p99"), p99, false)?;
            if p99 < p50 {
                return Err(ConfigError::Invalid {
                    field: field("latency.p99"),
                    reason: format!("must be at least p50 ({p50:?}), got {p99:?}"),
                });
            }
            Dist::log_normal(p50, p99)
        }
    })
}

/// Checks a schedule: a count of at least 1, a window in order.
pub(crate) fn check_schedule(
    schedule: &Schedule,
    field: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    match *schedule {
        Schedule::EveryKth(0) => Err(ConfigError::Count {
            field: field("schedule.every"),
            value: 0,
        }),
        Schedule::Between(start, end) if end <= start => Err(ConfigError::Invalid {
            field: field("schedule"),
            reason: "the window ends before it starts".to_owned(),
        }),
        Schedule::AfterArming { from, until } if until <= from => Err(ConfigError::Invalid {
            field: field("schedule"),
            reason: format!("the window ends ({until:?}) before it starts ({from:?})"),
        }),
        _ => Ok(()),
    }
}

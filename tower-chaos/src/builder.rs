//! The builder: typed setters, validated once in `build`.

use std::error::Error;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tower_outcome::{BoxErrorAnswer, Outcome, default_error_outcome};
#[cfg(feature = "http")]
use tower_outcome::{GrpcAnswer, HttpAnswer};

use crate::core::{ControlFn, FaultState, KeyFn, MAX_FAULTS, Shared, SharedParts, StripFn};
use crate::decide::{fault_key, salt, threshold};
use crate::error::{check_duration, check_rate};
use crate::fault::{Action, Fault, FaultKind, Schedule, check_schedule, latency_dist};
use crate::guard::{Guard, GuardClassifier};
use crate::metrics::{FaultMetrics, Metrics};
use crate::{ChaosLayer, ConfigError};

/// The guard's defaults: a 30 s window, a 50 % limit, at least 10 calls.
pub const DEFAULT_GUARD_WINDOW: Duration = Duration::from_secs(30);
/// The guard's default error-rate limit.
pub const DEFAULT_GUARD_ERROR_RATE: f64 = 0.5;
/// The calls the guard's window must hold before it may trip.
pub const DEFAULT_GUARD_MINIMUM_CALLS: u64 = 10;
/// `max_active_faults` when per-request control is on and no bound was given: a request
/// cannot have more faults in progress than this by asking.
pub const DEFAULT_CONTROL_MAX_ACTIVE_FAULTS: u32 = 10;

/// Builds a [`ChaosLayer`].
///
/// Nothing is injected until the layer is armed, here with [`armed`](Self::armed) or later
/// through its [`ChaosHandle`](crate::ChaosHandle). [`build`](Self::build) checks every fault
/// and setting and returns a [`ConfigError`] naming the first bad one.
///
/// ```
/// use std::time::Duration;
/// use tower_chaos::{ChaosLayer, Fault, Latency};
///
/// let layer = ChaosLayer::<u32, u32>::builder()
///     .name("inventory-chaos")
///     .seed(7)
///     .fault(Fault::latency(Latency::Fixed(Duration::from_millis(300))).rate(0.25))
///     .fault(Fault::error(|| "connection refused".into()).rate(0.1))
///     .max_active_faults(8)
///     .armed(true)
///     .build()
///     .unwrap();
/// assert!(layer.handle().is_armed());
///
/// let missing_rate = ChaosLayer::<u32, u32>::builder().fault(Fault::abort()).build();
/// assert_eq!(
///     missing_rate.unwrap_err().to_string(),
///     "faults.abort.rate is missing: every fault needs an explicit rate"
/// );
/// ```
#[must_use]
pub struct ChaosBuilder<Req, Res, A = BoxErrorAnswer> {
    name: String,
    seed: u64,
    armed: bool,
    dry_run: bool,
    faults: Vec<Fault<Req, Res>>,
    max_active: Option<u32>,
    key: Option<KeyFn<Req>>,
    control: Option<ControlFn<Req>>,
    strip: Option<StripFn<Req>>,
    control_hang: bool,
    guard: Option<(Duration, f64, u64)>,
    guard_latency: Option<Duration>,
    guard_classifier: GuardClassifier<Res>,
    ok_can_fail: bool,
    /// The classifier was given with `guard_classifier`: an answer mode keeps it.
    custom_classifier: bool,
    auto_disarm_after: Option<Duration>,
    release_on_disarm: bool,
    _answer: PhantomData<fn() -> A>,
}

fn default_failure<Res>(result: Result<&Res, &(dyn Error + 'static)>) -> bool {
    match result {
        Ok(_) => false,
        Err(err) => default_error_outcome(err) == Outcome::Failure,
    }
}

impl<Req, Res: 'static> ChaosBuilder<Req, Res> {
    pub(crate) fn new() -> Self {
        Self {
            name: "chaos".to_owned(),
            seed: 0,
            armed: false,
            dry_run: false,
            faults: Vec::new(),
            max_active: None,
            key: None,
            control: None,
            strip: None,
            control_hang: false,
            guard: Some((
                DEFAULT_GUARD_WINDOW,
                DEFAULT_GUARD_ERROR_RATE,
                DEFAULT_GUARD_MINIMUM_CALLS,
            )),
            guard_latency: None,
            guard_classifier: Arc::new(default_failure::<Res>),
            ok_can_fail: false,
            custom_classifier: false,
            auto_disarm_after: None,
            release_on_disarm: true,
            _answer: PhantomData,
        }
    }
}

impl<Req, Res, A> ChaosBuilder<Req, Res, A> {
    /// `name`: labels the metrics, events and rejections. Default `"chaos"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// `seed`: with the same seed, faults, and request numbers (or keys), the same requests are
    /// faulted, whatever the interleaving. Default 0.
    pub const fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// `armed`: start armed. Default `false`: a layer injects nothing until armed.
    pub const fn armed(mut self, armed: bool) -> Self {
        self.armed = armed;
        self
    }

    /// `dry_run`: decide, count and log every fault, inject none. Default `false`.
    pub const fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Adds a fault. Faults act in this order: gates (latency, hang) before the call, then the
    /// first terminal fault that fired (error, abort, status) instead of the call, then
    /// post-call faults (mutate, body) on the answer. See the crate docs on stacking.
    pub fn fault(mut self, fault: Fault<Req, Res>) -> Self {
        self.faults.push(fault);
        self
    }

    /// Adds several faults (a [profile](crate::profiles)).
    pub fn faults(mut self, faults: impl IntoIterator<Item = Fault<Req, Res>>) -> Self {
        self.faults.extend(faults);
        self
    }

    /// `max_active_faults`: at most this many faulted calls in progress at once; a fault that
    /// would exceed it is not injected (the call goes through clean) and is counted as
    /// overflow. A faulted call is in progress until its response future ends or is dropped,
    /// and a call with a body fault until its body ends or is dropped (a stalled stream holds
    /// its place). Default: no bound, or [`DEFAULT_CONTROL_MAX_ACTIVE_FAULTS`] with
    /// per-request control ([`control`](Self::control), `header_control`).
    pub const fn max_active_faults(mut self, max: u32) -> Self {
        self.max_active = Some(max);
        self
    }

    /// Draws decisions for `key(request)` instead of the request's sequence number: a request
    /// with the same key (an id, a replayed trace's index) meets the same faults in every run.
    /// Schedules still count calls.
    pub fn key(mut self, key: impl Fn(&Req) -> u64 + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    /// Per-request opt-in: `control(request)` gives a control string, such as `"latency,
    /// http_503=0.5"`, naming the faults this request may meet, each at the rate given
    /// (capped by the fault's configured rate) or at its configured rate. A request with no
    /// control string meets no fault. The layer must still be armed.
    ///
    /// Safe by default: `max_active_faults` becomes
    /// [`DEFAULT_CONTROL_MAX_ACTIVE_FAULTS`] unless set, and a request cannot ask for a hang
    /// unless [`control_allows_hang`](Self::control_allows_hang). The request reaches the
    /// inner service as it is; for HTTP requests `header_control` also removes the header
    /// before the inner service sees it.
    pub fn control(
        mut self,
        control: impl for<'a> Fn(&'a Req) -> Option<&'a str> + Send + Sync + 'static,
    ) -> Self {
        self.control = Some(Arc::new(control));
        self
    }

    /// Lets a control string ask for a hang fault. Default `false`: a request naming a hang
    /// does not meet it, so a header cannot hold server calls forever.
    pub const fn control_allows_hang(mut self, allow: bool) -> Self {
        self.control_hang = allow;
        self
    }

    /// `auto_disarm_after`: the layer disarms itself this long after it was armed, whatever
    /// happens to the code that armed it (a cancelled experiment, a crashed operator), and
    /// (with [`release_on_disarm`](Self::release_on_disarm)) releases the calls it holds
    /// then. It is checked on each armed call and by each held call's own timer, with no
    /// background task. Default: none.
    pub const fn auto_disarm_after(mut self, after: Duration) -> Self {
        self.auto_disarm_after = Some(after);
        self
    }

    /// `release_on_disarm`: disarming (the handle's kill switch, the guard,
    /// [`auto_disarm_after`](Self::auto_disarm_after)) also releases every call currently
    /// held by a hang or a latency fault: each goes on to the service at once. Default
    /// `true`; with `false`, held calls finish as decided.
    pub const fn release_on_disarm(mut self, release: bool) -> Self {
        self.release_on_disarm = release;
        self
    }

    /// The guard: disarm when the inner service's real (non-injected) error rate over `window`
    /// exceeds `error_rate`, once the window holds `minimum_calls`. Defaults: 30 s, 50 %, 10.
    ///
    /// Every real call that ended in the window counts, successes included; calls answered
    /// by a terminal fault (error, abort, status) do not. The guard acts only while the layer
    /// is armed, and trips once per arming. A failure is counted at the time it ends; to keep
    /// the clock off the success path, a success reads it once in 8 calls and the others are
    /// counted in the window slice (a tenth of `window`) the last reading found, so a few
    /// successes may leave the window up to one slice early: the rate read errs toward
    /// failures, never away from them.
    pub fn guard(mut self, window: Duration, error_rate: f64, minimum_calls: u64) -> Self {
        self.guard = Some((window, error_rate, minimum_calls));
        self
    }

    /// The guard also watches latency: it disarms when the p99 of the window's calls, as
    /// callers see them (injected delays included), exceeds `p99`, that is when more than
    /// 1 % of them took longer. A call held by a hang or latency fault counts as slow as soon
    /// as it has been held that long, so a 100 % hang trips it. Default: latency not watched.
    pub const fn guard_latency(mut self, p99: Duration) -> Self {
        self.guard_latency = Some(p99);
        self
    }

    /// Turns the guard off. Only for experiments that mean to push the error rate past it.
    pub fn no_guard(mut self) -> Self {
        self.guard = None;
        self
    }

    /// What the guard counts as a real failure (default: errors other than the family's
    /// rejections; in `.http()` mode also 5xx and 408; in `.grpc()` mode also failing codes).
    /// Choosing an answer mode after this keeps it.
    pub fn guard_classifier(
        mut self,
        classify: impl Fn(Result<&Res, &(dyn Error + 'static)>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.guard_classifier = Arc::new(classify);
        self.ok_can_fail = true;
        self.custom_classifier = true;
        self
    }

    /// The answer mode's default classifier, unless one was given.
    #[cfg(feature = "http")]
    fn mode_classifier(&mut self, classify: GuardClassifier<Res>) {
        if !self.custom_classifier {
            self.guard_classifier = classify;
            self.ok_can_fail = true;
        }
    }

    fn answer<A2>(self) -> ChaosBuilder<Req, Res, A2> {
        ChaosBuilder {
            name: self.name,
            seed: self.seed,
            armed: self.armed,
            dry_run: self.dry_run,
            faults: self.faults,
            max_active: self.max_active,
            key: self.key,
            control: self.control,
            strip: self.strip,
            control_hang: self.control_hang,
            guard: self.guard,
            guard_latency: self.guard_latency,
            guard_classifier: self.guard_classifier,
            ok_can_fail: self.ok_can_fail,
            custom_classifier: self.custom_classifier,
            auto_disarm_after: self.auto_disarm_after,
            release_on_disarm: self.release_on_disarm,
            _answer: PhantomData,
        }
    }

    /// Checks every fault and setting and builds the layer.
    ///
    /// # Errors
    /// The first bad value, naming its field: a fault without a rate or with one outside
    /// 0..=1, two faults with one name, a latency range upside down or past 7 days, a gRPC code
    /// outside 1..=16, an empty schedule window, `max_active_faults` 0, more than 64 faults, a
    /// guard window under 10 ms or a limit outside (0, 1], an `auto_disarm_after` or a guard
    /// latency bound of zero or past 7 days.
    pub fn build(self) -> Result<ChaosLayer<Req, Res, A>, ConfigError> {
        let name: Arc<str> = Arc::from(self.name.as_str());
        let metrics = Metrics::new(&name);
        if self.faults.len() > MAX_FAULTS {
            return Err(ConfigError::Invalid {
                field: "faults".to_owned(),
                reason: format!(
                    "at most {MAX_FAULTS} faults per layer, got {}",
                    self.faults.len()
                ),
            });
        }
        let mut faults = Vec::with_capacity(self.faults.len());
        let mut needs_clock = false;
        let mut timer_faults = 0_u64;
        for fault in self.faults {
            let field = |f: &str| format!("faults.{}.{f}", fault.name);
            if faults
                .iter()
                .any(|f: &FaultState<Req, Res>| f.name == fault.name)
            {
                return Err(ConfigError::Duplicate {
                    field: "faults".to_owned(),
                    name: fault.name.to_string(),
                });
            }
            if let Some(misuse) = fault.misuse {
                return Err(ConfigError::Invalid {
                    field: field("retry_after"),
                    reason: misuse.to_owned(),
                });
            }
            let rate = fault.rate.ok_or_else(|| ConfigError::Missing {
                field: field("rate"),
                needs: "every fault needs an explicit rate",
            })?;
            let rate = check_rate(|| field("rate"), rate)?;
            let dist = match &fault.action {
                Action::Latency(latency) | Action::ResponseDelay(latency) => {
                    Some(latency_dist(*latency, &field)?)
                }
                _ => None,
            };
            if let Action::Respond(respond) = &fault.action {
                if fault.kind == FaultKind::GrpcStatus && !(1..=16).contains(&respond.status) {
                    return Err(ConfigError::Invalid {
                        field: field("code"),
                        reason: format!("a gRPC error code is 1..=16, got {}", respond.status),
                    });
                }
                if let Some(d) = respond.retry_after {
                    check_duration(|| field("retry_after"), d, true)?;
                }
            }
            check_schedule(&fault.schedule, &field)?;
            needs_clock |= fault.schedule.needs_clock();
            if fault.timer {
                timer_faults |= 1 << faults.len();
            }
            faults.push(FaultState {
                metrics: FaultMetrics::new(&metrics.label, &fault.name),
                key: fault_key(self.seed, salt(&fault.name)),
                stage: fault.kind.stage(),
                kind: fault.kind,
                name: fault.name,
                threshold: AtomicU64::new(threshold(rate)),
                schedule: fault.schedule,
                when: fault.when,
                action: fault.action,
                dist,
                injected: AtomicU64::new(0),
                dry_run: AtomicU64::new(0),
            });
        }
        let max_active = match self.max_active {
            Some(0) => {
                return Err(ConfigError::Count {
                    field: "max_active_faults".to_owned(),
                    value: 0,
                });
            }
            Some(n) => n,
            None if self.control.is_some() => DEFAULT_CONTROL_MAX_ACTIVE_FAULTS,
            None => u32::MAX,
        };
        if let Some(after) = self.auto_disarm_after {
            check_duration(|| "auto_disarm_after_seconds".to_owned(), after, false)?;
        }
        if let Some(p99) = self.guard_latency {
            check_duration(|| "guard.latency_p99_ms".to_owned(), p99, false)?;
        }
        let guard = match self.guard {
            None => None,
            Some((window, rate, minimum_calls)) => {
                if window < Duration::from_millis(10) || window > crate::MAX_DURATION {
                    return Err(ConfigError::Duration {
                        field: "guard.window_seconds".to_owned(),
                        seconds: window.as_secs_f64(),
                    });
                }
                if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
                    return Err(ConfigError::Rate {
                        field: "guard.error_rate".to_owned(),
                        value: rate,
                    });
                }
                if minimum_calls == 0 {
                    return Err(ConfigError::Count {
                        field: "guard.minimum_calls".to_owned(),
                        value: 0,
                    });
                }
                Some(Guard::new(
                    window,
                    rate,
                    minimum_calls,
                    self.guard_latency,
                    self.guard_classifier,
                    self.ok_can_fail,
                ))
            }
        };
        // No control string, no clock, no schedule, no predicate: each fault is one draw and
        // one compare.
        let plain = self.control.is_none()
            && faults
                .iter()
                .all(|f| matches!(f.schedule, Schedule::Always) && f.when.is_none());
        let shared = Shared::new(SharedParts {
            name,
            plain,
            dry_run: self.dry_run,
            needs_clock,
            faults: faults.into_boxed_slice(),
            key: self.key,
            control: self.control,
            strip: self.strip,
            control_hang: self.control_hang,
            max_active,
            timer_faults,
            guard,
            auto_disarm: self.auto_disarm_after,
            release_on_disarm: self.release_on_disarm,
            metrics,
        });
        if self.armed {
            shared.arm();
        }
        Ok(ChaosLayer::from_shared(Arc::new(shared)))
    }
}

#[cfg(feature = "http")]
impl<ReqB, ResB, A> ChaosBuilder<http::Request<ReqB>, http::Response<ResB>, A> {
    /// Header-driven opt-in: the request's `header` (such as `x-chaos: http_503=0.5, latency`)
    /// names the faults it may meet, capped by their configured rates and by
    /// `max_active_faults` (see [`control`](Self::control): a finite default, no hang unless
    /// allowed). Requests without the header meet none. The header is removed from every
    /// request before the inner service sees it, armed or not.
    pub fn header_control(mut self, header: http::HeaderName) -> Self {
        self.strip = Some(Arc::new({
            let header = header.clone();
            move |req: &mut http::Request<ReqB>| {
                req.headers_mut().remove(&header);
            }
        }));
        self.control(crate::http::header_control::<ReqB>(header))
    }
}

#[cfg(feature = "http")]
impl<Req, ResB: 'static, A> ChaosBuilder<Req, http::Response<ResB>, A> {
    /// Answers aborts with the family's HTTP face (503, carrying the `Rejected`, so outer
    /// layers ignore it) and error faults with a bare 500; keeps the inner error type (axum's
    /// `Infallible` stays). The guard counts 5xx (and 408) as failures, unless a
    /// [`guard_classifier`](Self::guard_classifier) was given.
    pub fn http(mut self) -> ChaosBuilder<Req, http::Response<ResB>, HttpAnswer> {
        self.mode_classifier(Arc::new(crate::http::http_failure::<ResB>));
        self.answer()
    }

    /// Answers aborts with a Trailers-Only `UNAVAILABLE` carrying the `Rejected` and error
    /// faults with `INTERNAL`; keeps the inner error type. The guard counts failing
    /// `grpc-status` codes in the headers (whatever the HTTP status) and, without one, a
    /// non-200 status by the gRPC code it maps to, unless a
    /// [`guard_classifier`](Self::guard_classifier) was given.
    pub fn grpc(mut self) -> ChaosBuilder<Req, http::Response<ResB>, GrpcAnswer> {
        self.mode_classifier(Arc::new(crate::http::grpc_failure::<ResB>));
        self.answer()
    }

    /// The preset for chaos in front of an HTTP client: the guard counts 5xx (and 408) answers
    /// and errors as failures, as [`http`](Self::http) does, unless a
    /// [`guard_classifier`](Self::guard_classifier) was given; faults are answered with errors
    /// (aborts as the family's `Rejected` in a `BoxError`), which is what a client's caller
    /// expects. [`http`](Self::http) is the server-side mode: answer the HTTP caller yourself.
    pub fn http_client(mut self) -> ChaosBuilder<Req, http::Response<ResB>, BoxErrorAnswer> {
        self.mode_classifier(Arc::new(crate::http::http_failure::<ResB>));
        self.answer()
    }

    /// The preset for chaos in front of a gRPC client: the guard counts failing `grpc-status`
    /// codes as [`grpc`](Self::grpc) does, unless a [`guard_classifier`](Self::guard_classifier)
    /// was given; faults are answered with errors.
    pub fn grpc_client(mut self) -> ChaosBuilder<Req, http::Response<ResB>, BoxErrorAnswer> {
        self.mode_classifier(Arc::new(crate::http::grpc_failure::<ResB>));
        self.answer()
    }
}

impl<Req, Res, A> fmt::Debug for ChaosBuilder<Req, Res, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosBuilder")
            .field("name", &self.name)
            .field("seed", &self.seed)
            .field("armed", &self.armed)
            .field("dry_run", &self.dry_run)
            .field("faults", &self.faults)
            .field("max_active_faults", &self.max_active)
            .field("guard", &self.guard)
            .field("guard_latency", &self.guard_latency)
            .field("auto_disarm_after", &self.auto_disarm_after)
            .field("release_on_disarm", &self.release_on_disarm)
            .field("answer", &std::any::type_name::<A>())
            .finish_non_exhaustive()
    }
}

//! The runner: steady state, inject, observe, stop on failure, disarm, measure recovery.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tower_outcome::{BoxError, find_rejected};
use tower_service::Service;

use super::report::{self, Observed, ProbeResult, Report, SteadyResult, Verdict};
use super::{Check, Experiment, Load, Signals};
use crate::ChaosHandle;

/// What one call came to, as the runner counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// The caller got a usable answer (a fallback's included).
    Success,
    /// One of the family's layers refused the call; the string names the layer.
    Rejected(String),
    /// The call failed; the string is its kind, as the report lists it.
    Failure(String),
}

#[cfg(feature = "http")]
impl CallOutcome {
    /// How an HTTP call counts, for [`Runner::classify`]: a 2xx or 3xx answer is a success; an
    /// answer carrying the family's [`Rejected`](crate::Rejected) (a breaker or bulkhead
    /// answering `.http()`) is rejected; any other status is a failure of kind `"503"`,
    /// `"429"`…; an error counts as the default classifier counts it.
    ///
    /// The runner's default counts every `Ok` as a success, so without this an injected 503
    /// is a success.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::{Request, Response, StatusCode};
    /// use tower::ServiceBuilder;
    /// use tower_chaos::experiment::{CallOutcome, Expectation, Experiment, Load, Runner};
    /// use tower_chaos::{ChaosLayer, Fault};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let chaos = ChaosLayer::<Request<String>, Response<String>>::builder()
    ///     .seed(7)
    ///     .fault(Fault::http_status(StatusCode::SERVICE_UNAVAILABLE).retry_after(Duration::from_secs(5)).rate(0.3))
    ///     .http()
    ///     .build()
    ///     .unwrap();
    /// let handle = chaos.handle();
    /// let svc = ServiceBuilder::new().layer(chaos).service_fn(|_req: Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(Response::new("ok".to_owned()))
    /// });
    /// let experiment = Experiment::new("503 storm")
    ///     .load(Load::Calls(100))
    ///     .expect(Expectation::success_rate_at_least(0.9));
    /// let report = Runner::new(svc, handle, |_| Request::new(String::new()))
    ///     .classify(CallOutcome::from_http)
    ///     .run(&experiment)
    ///     .await;
    /// assert!(report.to_markdown().contains("| 503: "), "{}", report.to_markdown());
    /// assert!(!report.probes()[0].passed); // about 30 % failed
    /// # }
    /// ```
    pub fn from_http<B>(result: Result<&http::Response<B>, &BoxError>) -> Self {
        let res = match result {
            Ok(res) => res,
            Err(err) => return default_outcome::<http::Response<B>>(Err(err)),
        };
        if let Some(rejected) = res.extensions().get::<crate::Rejected>() {
            Self::Rejected(rejected.kind().as_str().to_owned())
        } else if res.status().is_success() || res.status().is_redirection() {
            Self::Success
        } else {
            Self::Failure(res.status().as_str().to_owned())
        }
    }
}

fn default_outcome<Res>(result: Result<&Res, &BoxError>) -> CallOutcome {
    match result {
        Ok(_) => CallOutcome::Success,
        Err(err) => match find_rejected(&**err) {
            Some(rejected) => CallOutcome::Rejected(rejected.kind().as_str().to_owned()),
            None => CallOutcome::Failure("error".to_owned()),
        },
    }
}

type Classifier<Res> = Box<dyn Fn(Result<&Res, &BoxError>) -> CallOutcome + Send + Sync>;

/// Runs [`Experiment`]s against a service that has a chaos layer in it.
///
/// The runner owns the service (the whole stack under test: retries, breaker, bulkhead, the
/// chaos layer, the dependency) and the chaos layer's handle. It sends calls one at a time,
/// `interval` apart, so under paused tokio time (`#[tokio::test(start_paused = true)]`) a
/// minute-long experiment runs in milliseconds and replays exactly; in real time it takes
/// the time it says.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use tower_chaos::experiment::{Expectation, Experiment, Load, Runner, Verdict};
/// use tower_chaos::{ChaosLayer, Fault};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let chaos = ChaosLayer::<u64, u64>::builder()
///     .fault(Fault::error(|| "injected".into()).rate(0.5))
///     .build()
///     .unwrap();
/// let handle = chaos.handle();
/// let svc = ServiceBuilder::new()
///     .layer(chaos)
///     .service_fn(|n: u64| async move { Ok::<_, std::io::Error>(n) });
///
/// let experiment = Experiment::new("half the calls fail")
///     .hypothesis("When half the calls fail, the success rate stays at 95 %.")
///     .load(Load::Calls(50))
///     .expect(Expectation::success_rate_at_least(0.95))
///     .expect(Expectation::graceful_failure());
/// let report = Runner::new(svc, handle, |n| n).run(&experiment).await;
/// assert_eq!(report.verdict(), Verdict::Partially); // nothing protects this stack
/// assert!(report.to_markdown().contains("| Success rate | ≥ 95 % |"));
/// # }
/// ```
pub struct Runner<S, Req, Res> {
    service: S,
    chaos: ChaosHandle,
    signals: Signals,
    make_request: Box<dyn FnMut(u64) -> Req + Send>,
    classify: Classifier<Res>,
}

impl<S, Req, Res> fmt::Debug for Runner<S, Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("chaos", &self.chaos)
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    successes: u64,
    failures: u64,
    rejected: u64,
    hangs: u64,
    errors: BTreeMap<String, u64>,
}

impl Phase {
    fn calls(&self) -> u64 {
        self.successes + self.failures
    }

    fn success_rate(&self) -> f64 {
        if self.calls() == 0 {
            1.0
        } else {
            self.successes as f64 / self.calls() as f64
        }
    }

    fn record(&mut self, latency: Duration, outcome: CallOutcome) {
        self.latencies.push(latency);
        match outcome {
            CallOutcome::Success => self.successes += 1,
            CallOutcome::Rejected(layer) => {
                self.failures += 1;
                self.rejected += 1;
                *self
                    .errors
                    .entry(format!("rejected ({layer})"))
                    .or_default() += 1;
            }
            CallOutcome::Failure(kind) => {
                self.failures += 1;
                *self.errors.entry(kind).or_default() += 1;
            }
        }
    }

    fn percentile(sorted: &[Duration], p: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }
}

impl<S, Req, Res> Runner<S, Req, Res>
where
    S: Service<Req, Response = Res>,
    S::Error: Into<BoxError>,
{
    /// A runner over `service`, with `chaos` the handle of the chaos layer inside it and
    /// `make_request(n)` the n-th request (n counts from 0 in each phase).
    pub fn new(
        service: S,
        chaos: ChaosHandle,
        make_request: impl FnMut(u64) -> Req + Send + 'static,
    ) -> Self
    where
        Res: 'static,
    {
        Self {
            service,
            chaos,
            signals: Signals::new(),
            make_request: Box::new(make_request),
            classify: Box::new(default_outcome::<Res>),
        }
    }

    /// Uses `signals` (already wired into the stack's retry policy, fallback and breaker
    /// listener) instead of fresh ones.
    #[must_use]
    pub fn with_signals(mut self, signals: Signals) -> Self {
        self.signals = signals;
        self
    }

    /// The runner's signals, to wire into the stack's hooks.
    #[must_use]
    pub fn signals(&self) -> Signals {
        self.signals.clone()
    }

    /// How a call's result counts (default: `Ok` is a success, a family rejection is
    /// rejected, any other error a failure of kind `error`). For HTTP, map the status here.
    #[must_use]
    pub fn classify(
        mut self,
        classify: impl Fn(Result<&Res, &BoxError>) -> CallOutcome + Send + Sync + 'static,
    ) -> Self {
        self.classify = Box::new(classify);
        self
    }

    async fn one(&mut self, n: u64, timeout: Duration) -> (Duration, CallOutcome, bool) {
        let request = (self.make_request)(n);
        let start = Instant::now();
        let service = &mut self.service;
        let call = async move {
            let ready = std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into);
            match ready {
                Ok(()) => service.call(request).await.map_err(Into::into),
                Err(err) => Err(err),
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => (start.elapsed(), (self.classify)(result.as_ref()), false),
            Err(_) => (
                timeout,
                CallOutcome::Failure("no answer within the call deadline".to_owned()),
                true,
            ),
        }
    }

    /// Runs `experiment` and reports on it. The chaos layer is disarmed when this returns,
    /// whatever happened.
    pub async fn run(&mut self, experiment: &Experiment) -> Report {
        let date = experiment
            .date
            .clone()
            .unwrap_or_else(|| httpdate::fmt_http_date(SystemTime::now()));
        let began = Instant::now();
        self.chaos.disarm();

        // 1. Steady state.
        let mut steady = Phase::default();
        for n in 0..experiment.steady_state.calls {
            let (latency, outcome, _) = self.one(n, experiment.call_timeout).await;
            steady.record(latency, outcome);
            tokio::time::sleep(experiment.interval).await;
        }
        steady.latencies.sort();
        let steady_p99 = Phase::percentile(&steady.latencies, 0.99);
        let steady_result = SteadyResult {
            calls: steady.calls(),
            success_rate: steady.success_rate(),
            p99: steady_p99,
            min_success_rate: experiment.steady_state.min_success_rate,
            max_p99: experiment.steady_state.max_p99,
            held: steady.success_rate() >= experiment.steady_state.min_success_rate
                && experiment
                    .steady_state
                    .max_p99
                    .is_none_or(|max| steady_p99 < max),
        };
        let mut observations = Vec::new();
        if !steady_result.held {
            observations.push(
                "The steady state did not hold: nothing was injected and the experiment was aborted."
                    .to_owned(),
            );
            return Report::new(report::Parts {
                experiment,
                date,
                elapsed: began.elapsed(),
                steady: steady_result,
                layer: self.chaos.name().to_owned(),
                injected: Vec::new(),
                probes: Vec::new(),
                observed: Observed::default(),
                observations,
                verdict: Verdict::No,
                score: 0.0,
            });
        }

        // 2. Inject and observe.
        let before = self.chaos.stats();
        self.signals.start();
        self.chaos.arm();
        let injecting = Instant::now();
        let mut phase = Phase::default();
        let mut n = 0;
        let planned = match experiment.load {
            Load::Calls(calls) => Some(calls),
            Load::Duration(_) => None,
        };
        loop {
            let more = match experiment.load {
                Load::Calls(calls) => n < calls,
                Load::Duration(d) => injecting.elapsed() < d,
            };
            if !more {
                break;
            }
            let (latency, outcome, hung) = self.one(n, experiment.call_timeout).await;
            phase.record(latency, outcome);
            phase.hangs += u64::from(hung);
            n += 1;
            if !self.chaos.is_armed() {
                observations.push(format!(
                    "The chaos layer's guard disarmed it {} into the injection (after {n} calls): the real error rate passed its limit.",
                    report::duration(injecting.elapsed())
                ));
                break;
            }
            if experiment.stop_on_failure
                && let Some(failed) =
                    self.failed_for_good(experiment, &phase, planned, injecting.elapsed())
            {
                observations.push(format!(
                    "Stopped early after {n} calls ({}): \"{failed}\" had failed for good.",
                    report::duration(injecting.elapsed())
                ));
                break;
            }
            tokio::time::sleep(experiment.interval).await;
        }
        let injection_time = injecting.elapsed();
        let counts = (self.signals.retries(), self.signals.fallbacks());

        // 3. Roll back, then measure recovery.
        self.chaos.disarm();
        let after = self.chaos.stats();
        let injected: Vec<(String, u64)> = after
            .faults
            .iter()
            .map(|f| {
                let was = before.fault(&f.name).map_or(0, |b| b.injected);
                (f.name.clone(), f.injected - was)
            })
            .collect();
        let disarmed = Instant::now();
        let mut streak = 0;
        let mut streak_start = None;
        let mut recovered = None;
        let mut m = 0;
        while disarmed.elapsed() < experiment.recovery.timeout {
            let at = disarmed.elapsed();
            let (_, outcome, _) = self.one(m, experiment.call_timeout).await;
            m += 1;
            if outcome == CallOutcome::Success {
                if streak == 0 {
                    streak_start = Some(at);
                }
                streak += 1;
                if streak >= experiment.recovery.successes {
                    recovered = streak_start;
                    break;
                }
            } else {
                streak = 0;
            }
            tokio::time::sleep(experiment.interval).await;
        }
        if recovered.is_none() {
            observations.push(format!(
                "No recovery: {} calls in a row did not succeed within {} of disarming.",
                experiment.recovery.successes,
                report::duration(experiment.recovery.timeout)
            ));
        }

        let observed = self.observed(&mut phase, injection_time, recovered, &injected, counts);
        let probes: Vec<ProbeResult> = experiment
            .expectations
            .iter()
            .map(|e| evaluate(e, &observed, experiment))
            .collect();
        let total: f64 = probes.iter().map(|p| p.weight).sum();
        let passed: f64 = probes.iter().filter(|p| p.passed).map(|p| p.weight).sum();
        let score = if total > 0.0 {
            100.0 * passed / total
        } else {
            100.0
        };
        let verdict = if probes.iter().all(|p| p.passed) {
            Verdict::Yes
        } else if probes.iter().any(|p| p.passed) {
            Verdict::Partially
        } else {
            Verdict::No
        };
        if observed.transitions.is_empty() && !observed.errors_by_kind.is_empty() {
            observations
                .push("No breaker transition was reported during the injection.".to_owned());
        }
        Report::new(report::Parts {
            experiment,
            date,
            elapsed: began.elapsed(),
            steady: steady_result,
            layer: self.chaos.name().to_owned(),
            injected,
            probes,
            observed,
            observations,
            verdict,
            score,
        })
    }

    fn observed(
        &self,
        phase: &mut Phase,
        injection_time: Duration,
        recovered: Option<Duration>,
        injected: &[(String, u64)],
        (retried, fallbacks): (u64, u64),
    ) -> Observed {
        phase.latencies.sort();
        Observed {
            calls: phase.calls(),
            successes: phase.successes,
            success_rate: phase.success_rate(),
            p50: Phase::percentile(&phase.latencies, 0.50),
            p95: Phase::percentile(&phase.latencies, 0.95),
            p99: Phase::percentile(&phase.latencies, 0.99),
            errors_by_kind: phase.errors.clone(),
            rejected: phase.rejected,
            hangs: phase.hangs,
            retried,
            fallbacks,
            transitions: self.signals.transitions(),
            time_to_detect: self.signals.detection(),
            time_to_recover: recovered,
            injection_time,
            injected: injected.iter().map(|(_, n)| n).sum(),
        }
    }

    /// The first probe that can no longer pass, whatever the rest of the run does.
    fn failed_for_good(
        &self,
        experiment: &Experiment,
        phase: &Phase,
        planned: Option<u64>,
        elapsed: Duration,
    ) -> Option<String> {
        experiment.expectations.iter().find_map(|e| {
            let failed = match &e.check {
                Check::DetectionWithin(d) => {
                    elapsed > *d && self.signals.detection().is_none_or(|at| at > *d)
                }
                Check::RetriesAttempted(n) => self.signals.retries() > *n,
                Check::GracefulFailure => phase.hangs > 0,
                Check::SuccessRateAtLeast(rate) => planned.is_some_and(|total| {
                    let best = phase.successes + total.saturating_sub(phase.calls());
                    (best as f64) < rate * total as f64
                }),
                Check::P99Below(d) => planned.is_some_and(|total| {
                    let slow = phase.latencies.iter().filter(|l| *l >= d).count() as f64;
                    slow > 0.01 * total as f64
                }),
                Check::User(check) => {
                    let mut copy = Phase {
                        latencies: phase.latencies.clone(),
                        ..Phase::default()
                    };
                    copy.successes = phase.successes;
                    copy.failures = phase.failures;
                    let counts = (self.signals.retries(), self.signals.fallbacks());
                    let observed = self.observed(&mut copy, elapsed, None, &[], counts);
                    !check(&observed).0
                }
                Check::RecoveryWithin(_) | Check::FallbacksAtLeast(_) => false,
            };
            failed.then(|| e.behavior.clone())
        })
    }
}

fn evaluate(e: &super::Expectation, o: &Observed, experiment: &Experiment) -> ProbeResult {
    let (passed, actual) = match &e.check {
        Check::DetectionWithin(d) => match o.time_to_detect {
            Some(at) => (at < *d, report::duration(at)),
            None => (false, "not detected".to_owned()),
        },
        Check::RetriesAttempted(n) => (o.retried == *n, o.retried.to_string()),
        Check::SuccessRateAtLeast(rate) => {
            (o.success_rate >= *rate, report::percent(o.success_rate))
        }
        Check::P99Below(d) => (o.p99 < *d, report::duration(o.p99)),
        Check::GracefulFailure => {
            if o.hangs == 0 {
                (true, "Yes".to_owned())
            } else {
                (
                    false,
                    format!(
                        "No ({} calls hung past {})",
                        o.hangs,
                        report::duration(experiment.call_timeout)
                    ),
                )
            }
        }
        Check::RecoveryWithin(d) => match o.time_to_recover {
            Some(at) => (at < *d, report::duration(at)),
            None => (
                false,
                format!(
                    "not within {}",
                    report::duration(experiment.recovery.timeout)
                ),
            ),
        },
        Check::FallbacksAtLeast(n) => (o.fallbacks >= *n, o.fallbacks.to_string()),
        Check::User(check) => check(o),
    };
    ProbeResult {
        behavior: e.behavior.clone(),
        expected: e.expected.clone(),
        actual,
        passed,
        weight: e.weight,
    }
}

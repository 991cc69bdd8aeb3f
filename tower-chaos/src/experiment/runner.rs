//! The runner: steady state, inject, observe, stop on failure, disarm, measure recovery.

use std::fmt;

use tower_outcome::{BoxError, find_rejected};
use tower_service::Service;
use tracing::instrument::WithSubscriber;

use super::logs::Logs;
use super::phases::Driver;
use super::report::Report;
use super::{Experiment, Signals};
use crate::ChaosHandle;

/// What one call came to, as the runner counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunnerOutcome {
    /// The dependency answered, and the answer is usable: a real answer.
    Success,
    /// A fallback answered instead of the dependency (a cache, a default): usable, but not
    /// a real answer, so it never counts towards recovery.
    ///
    /// The runner also counts a [`Success`](Self::Success) as a fallback when the stack
    /// reported one ([`Signals::fallback`]) during the call. With several callers in flight
    /// a reported fallback goes to the next call that completes with a success, so return
    /// `Fallback` from [`Runner::classify`] when the answer itself says so, for an exact
    /// count.
    Fallback,
    /// One of the family's layers refused the call; the string names the layer.
    Rejected(String),
    /// The call failed; the string is its kind, as the report lists it.
    Failure(String),
}

#[cfg(feature = "http")]
impl RunnerOutcome {
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
    /// use tower_chaos::experiment::{RunnerOutcome, Expectation, Experiment, Load, Runner};
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
    ///     .classify(RunnerOutcome::from_http)
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

fn default_outcome<Res>(result: Result<&Res, &BoxError>) -> RunnerOutcome {
    match result {
        Ok(_) => RunnerOutcome::Success,
        Err(err) => match find_rejected(&**err) {
            Some(rejected) => RunnerOutcome::Rejected(rejected.kind().as_str().to_owned()),
            None => RunnerOutcome::Failure("error".to_owned()),
        },
    }
}

pub(crate) type Classifier<Res> =
    Box<dyn Fn(Result<&Res, &BoxError>) -> RunnerOutcome + Send + Sync>;

/// Runs [`Experiment`]s against a service that has a chaos layer in it.
///
/// The runner owns the service (the whole stack under test: retries, breaker, bulkhead, the
/// chaos layer, the dependency) and the chaos layer's handle. Each caller sends its calls one
/// at a time, `interval` apart (one caller by default; [`Experiment::callers`] runs several
/// at once on the same service, each call after its own `poll_ready`), so under paused tokio time (`#[tokio::test(start_paused = true)]`) a
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
/// # #[cfg(feature = "inject")] // without it, nothing is injected: inconclusive
/// assert_eq!(report.verdict(), Verdict::Partially); // nothing protects this stack
/// assert!(report.to_markdown().contains("| Success rate | ≥ 95 % |"));
/// # }
/// ```
pub struct Runner<S, Req, Res> {
    pub(crate) service: S,
    pub(crate) chaos: ChaosHandle,
    pub(crate) signals: Signals,
    pub(crate) make_request: MakeRequest<Req>,
    pub(crate) classify: Classifier<Res>,
}

pub(crate) type MakeRequest<Req> = Box<dyn FnMut(u64) -> Req + Send>;

impl<S, Req, Res> fmt::Debug for Runner<S, Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("chaos", &self.chaos)
            .field("signals", &self.signals)
            .finish_non_exhaustive()
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
        classify: impl Fn(Result<&Res, &BoxError>) -> RunnerOutcome + Send + Sync + 'static,
    ) -> Self {
        self.classify = Box::new(classify);
        self
    }

    /// Runs `experiment` and reports on it.
    ///
    /// The chaos layer is disarmed (through its handle) when this returns, and also when the
    /// run is cut short: a run cancelled (its future dropped, by an outer timeout or a
    /// `select!`) or one that panics (in the service, the request factory, the classifier or
    /// a check) disarms the layer as it unwinds, so a chaos experiment never outlives its
    /// runner. While it is polled, the run collects the chaos `tracing` events for the
    /// report's "Logs Captured" section and forwards them, like every other event, to the
    /// subscriber that was the default.
    pub async fn run(&mut self, experiment: &Experiment) -> Report {
        let _rollback = Rollback(self.chaos.clone());
        let logs = Logs::new();
        let dispatch = logs.dispatch();
        let mut report = Driver::new(self)
            .run(experiment)
            .with_subscriber(dispatch)
            .await;
        report.set_logs(logs.finish());
        report
    }
}

/// Disarms the layer when dropped: at the end of a run, and on a cancel or a panic.
struct Rollback(ChaosHandle);

impl Drop for Rollback {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

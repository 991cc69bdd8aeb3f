//! Chaos experiments: steady state → hypothesis → inject → observe → verdict, as a library.
//!
//! An [`Experiment`] says what to expect; a [`Runner`] drives a service through it with a
//! chaos layer's [`ChaosHandle`](crate::ChaosHandle) and produces a [`Report`], Markdown in
//! the "Chaos Test Results" form (execution details, expected vs actual, observations, logs
//! captured, issues found, recommendations, "Hypothesis confirmed?"); a [`SuiteReport`] puts
//! several under a "Tests Conducted" table. Other layers report what they did (retries,
//! fallbacks, breaker transitions) through [`Signals`].
//!
//! The report states only what was measured: recovery is the first run of real answers (a
//! fallback's answer is not the dependency's), a run that injected nothing is
//! [`Verdict::Inconclusive`], a phase without calls has no success rate, and the layer is
//! disarmed however the run ends (returned, cancelled, timed out or panicked).

mod format;
mod logs;
mod phase;
mod phases;
mod probe;
mod render;
mod report;
mod runner;
mod signals;
mod suite;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use logs::{CapturedLogs, LogLine};
pub use report::{
    Issue, Observed, Percentiles, ProbeResult, RecoveryObserved, Report, Severity, SuiteReport,
    Verdict,
};
pub use runner::{Runner, RunnerOutcome};

/// The old name of [`RunnerOutcome`] (the breaker's `CallOutcome` is a listener's view of a call).
#[deprecated(since = "0.1.0", note = "renamed to `RunnerOutcome`")]
pub type CallOutcome = RunnerOutcome;

/// The old name of [`RecoveryCheck`] (tower-heal's `Recovery` is a middleware).
#[deprecated(since = "0.1.0", note = "renamed to `RecoveryCheck`")]
pub type Recovery = RecoveryCheck;

pub use signals::{Signals, TransitionRecord};
pub use suite::{ExpectationConfig, ExperimentConfig, SteadyStateConfig, SuiteConfig};

/// How much load the injection phase sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// This many calls.
    Calls(u64),
    /// Calls for this long.
    Duration(Duration),
}

/// What "working" looks like, checked before anything is injected (with the experiment's
/// callers): if it does not hold, the experiment is aborted (nothing is injected) and the
/// report says so. A steady state of no calls is not one that held: the run is inconclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SteadyState {
    /// Calls sent to measure it. Default 20.
    pub calls: u64,
    /// The success rate it needs. Default 0.95.
    pub min_success_rate: f64,
    /// The p99 latency it needs, if any. Default none.
    pub max_p99: Option<Duration>,
}

impl Default for SteadyState {
    fn default() -> Self {
        Self {
            calls: 20,
            min_success_rate: 0.95,
            max_p99: None,
        }
    }
}

/// How recovery is measured once the fault ends: the time from disarming to the first of
/// `successes` real answers in a row (successful answers from the dependency itself: a
/// fallback's answer or a rejection breaks the run), watched for at most `timeout`. A
/// dependency that never comes back is reported as not recovered, with the time watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryCheck {
    /// Consecutive real answers that count as recovered (0 counts as 1). Default 5.
    pub successes: u32,
    /// How long to wait for them. Default 60 s.
    pub timeout: Duration,
}

impl Default for RecoveryCheck {
    fn default() -> Self {
        Self {
            successes: 5,
            timeout: Duration::from_secs(60),
        }
    }
}

pub(crate) type UserCheck = Arc<dyn Fn(&Observed) -> (bool, String) + Send + Sync>;

/// What an expectation measures.
#[derive(Clone)]
#[non_exhaustive]
pub enum Check {
    /// The failure is detected (a breaker opens, or [`Signals::detected`]) within this long
    /// after injection starts.
    DetectionWithin(Duration),
    /// Exactly this many retries are attempted ([`Signals::retried`]).
    RetriesAttempted(u64),
    /// At least this share of calls get a usable answer during injection (a fallback's
    /// included; [`Observed::real_success_rate`] has the dependency's own).
    SuccessRateAtLeast(f64),
    /// The p99 latency of every answer during injection stays below this.
    P99Below(Duration),
    /// Every call is answered (with a success or an error) within the runner's call deadline:
    /// nothing hangs.
    GracefulFailure,
    /// Real answers come back within this long after the fault ends (see [`RecoveryCheck`]).
    RecoveryWithin(Duration),
    /// At least this many fallbacks answer ([`Signals::fallback`]).
    FallbacksAtLeast(u64),
    /// A user check over what was observed: `(passed, actual as text)`.
    User(UserCheck),
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DetectionWithin(d) => f.debug_tuple("DetectionWithin").field(d).finish(),
            Self::RetriesAttempted(n) => f.debug_tuple("RetriesAttempted").field(n).finish(),
            Self::SuccessRateAtLeast(r) => f.debug_tuple("SuccessRateAtLeast").field(r).finish(),
            Self::P99Below(d) => f.debug_tuple("P99Below").field(d).finish(),
            Self::GracefulFailure => f.write_str("GracefulFailure"),
            Self::RecoveryWithin(d) => f.debug_tuple("RecoveryWithin").field(d).finish(),
            Self::FallbacksAtLeast(n) => f.debug_tuple("FallbacksAtLeast").field(n).finish(),
            Self::User(_) => f.write_str("User(..)"),
        }
    }
}

/// One line of the hypothesis: a behaviour, what is expected of it, and its weight in the
/// score.
#[derive(Clone, Debug)]
pub struct Expectation {
    pub(crate) behavior: String,
    pub(crate) expected: String,
    pub(crate) check: Check,
    pub(crate) weight: f64,
    pub(crate) severity: Option<Severity>,
    pub(crate) fix: Option<String>,
    pub(crate) final_when_failed: bool,
}

fn secs(d: Duration) -> String {
    format::duration_exact(d)
}

impl Expectation {
    fn new(behavior: &str, expected: String, check: Check) -> Self {
        Self {
            behavior: behavior.to_owned(),
            expected,
            check,
            weight: 1.0,
            severity: None,
            fix: None,
            final_when_failed: false,
        }
    }

    /// "Detection time < `d`".
    #[must_use]
    pub fn detection_within(d: Duration) -> Self {
        Self::new(
            "Detection time",
            format!("< {}", secs(d)),
            Check::DetectionWithin(d),
        )
    }

    /// "Retries attempted = `n`".
    #[must_use]
    pub fn retries_attempted(n: u64) -> Self {
        Self::new(
            "Retries attempted",
            n.to_string(),
            Check::RetriesAttempted(n),
        )
    }

    /// "Success rate ≥ `rate`".
    #[must_use]
    pub fn success_rate_at_least(rate: f64) -> Self {
        Self::new(
            "Success rate",
            format!("≥ {}", format::percent_exact(rate)),
            Check::SuccessRateAtLeast(rate),
        )
    }

    /// "p99 latency < `d`".
    #[must_use]
    pub fn p99_below(d: Duration) -> Self {
        Self::new("p99 latency", format!("< {}", secs(d)), Check::P99Below(d))
    }

    /// "Graceful failure: Yes" (no call hangs past the runner's deadline).
    #[must_use]
    pub fn graceful_failure() -> Self {
        Self::new("Graceful failure", "Yes".to_owned(), Check::GracefulFailure)
    }

    /// "Time to recover < `d`".
    #[must_use]
    pub fn recovery_within(d: Duration) -> Self {
        Self::new(
            "Time to recover",
            format!("< {}", secs(d)),
            Check::RecoveryWithin(d),
        )
    }

    /// "Fallbacks ≥ `n`".
    #[must_use]
    pub fn fallbacks_at_least(n: u64) -> Self {
        Self::new(
            "Fallbacks used",
            format!("≥ {n}"),
            Check::FallbacksAtLeast(n),
        )
    }

    /// "`behavior`: No" for a state that must not be corrupted: `intact()` is run after the
    /// experiment and, with `stop_on_failure`, after each call: a corrupted state stays
    /// corrupted, so its failure is final ([`final_when_failed`](Self::final_when_failed)).
    #[must_use]
    pub fn state_not_corrupted(
        behavior: &str,
        intact: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        Self::new(
            behavior,
            "No".to_owned(),
            Check::User(Arc::new(move |_| {
                let ok = intact();
                (ok, if ok { "No" } else { "Yes" }.to_owned())
            })),
        )
        .final_when_failed()
    }

    /// A check of your own over the figures: `check` returns whether it passed and the actual
    /// value as text. It is judged once, on the complete figures of the run (recovery
    /// included); `stop_on_failure` does not stop on it unless it is
    /// [`final_when_failed`](Self::final_when_failed).
    #[must_use]
    pub fn check(
        behavior: &str,
        expected: &str,
        check: impl Fn(&Observed) -> (bool, String) + Send + Sync + 'static,
    ) -> Self {
        Self::new(behavior, expected.to_owned(), Check::User(Arc::new(check)))
    }

    /// Its weight in the score (default 1).
    #[must_use]
    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = if weight.is_finite() && weight >= 0.0 {
            weight
        } else {
            1.0
        };
        self
    }

    /// Declares that once this check fails on the figures so far it cannot pass again, so
    /// that `stop_on_failure` may judge it during the injection (on the complete figures so
    /// far: recovery not yet measured). The built-in checks know this by themselves.
    #[must_use]
    pub const fn final_when_failed(mut self) -> Self {
        self.final_when_failed = true;
        self
    }

    /// The severity of the issue a failure of this expectation raises (by default: critical
    /// for hangs; high for detection, success rate and recovery; medium otherwise).
    #[must_use]
    pub const fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    /// The fix a failure of this expectation calls for, for the report's "Issues Found"
    /// (by default, the usual fix for its kind of check).
    #[must_use]
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// The behaviour's name.
    #[must_use]
    pub fn behavior(&self) -> &str {
        &self.behavior
    }
}

/// A chaos experiment: name, hypothesis, steady state, failure injection, load, observation
/// (the expectations), rollback.
///
/// ```
/// use std::time::Duration;
/// use tower_chaos::experiment::{Expectation, Experiment, Load};
///
/// let experiment = Experiment::new("MCP server failure")
///     .hypothesis("When the filesystem MCP server becomes unavailable, the agent detects it within 10 s and fails gracefully.")
///     .injection("dependency_unavailable profile: every call refused", "filesystem MCP calls")
///     .load(Load::Duration(Duration::from_secs(60)))
///     .interval(Duration::from_millis(200))
///     .expect(Expectation::detection_within(Duration::from_secs(10)))
///     .expect(Expectation::retries_attempted(3))
///     .expect(Expectation::graceful_failure())
///     .expect(Expectation::success_rate_at_least(0.95).weight(2.0))
///     .rollback("Disarm the chaos layer (the runner does it)")
///     .stop_on_failure(true);
/// assert_eq!(experiment.name(), "MCP server failure");
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Experiment {
    pub(crate) name: String,
    pub(crate) hypothesis: String,
    pub(crate) steady_state: SteadyState,
    pub(crate) method: String,
    pub(crate) scope: String,
    pub(crate) load: Load,
    pub(crate) interval: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) expectations: Vec<Expectation>,
    pub(crate) stop_on_failure: bool,
    pub(crate) rollback: Vec<String>,
    pub(crate) recovery: RecoveryCheck,
    pub(crate) experimenter: String,
    pub(crate) environment: String,
    pub(crate) date: Option<String>,
    pub(crate) callers: usize,
    pub(crate) target_layer: Option<String>,
    pub(crate) seed: Option<u64>,
    pub(crate) recommendations: Vec<String>,
}

impl Experiment {
    /// An experiment with defaults: 100 calls 100 ms apart, a 30 s call deadline, the default
    /// steady state and recovery, no expectations.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            hypothesis: String::new(),
            steady_state: SteadyState::default(),
            method: String::new(),
            scope: String::new(),
            load: Load::Calls(100),
            interval: Duration::from_millis(100),
            call_timeout: Duration::from_secs(30),
            expectations: Vec::new(),
            stop_on_failure: false,
            rollback: Vec::new(),
            recovery: RecoveryCheck::default(),
            experimenter: "tower-chaos runner".to_owned(),
            environment: "test".to_owned(),
            date: None,
            callers: 1,
            target_layer: None,
            seed: None,
            recommendations: Vec::new(),
        }
    }

    /// The hypothesis, in words: "When \[failure\], the system will \[behaviour\]".
    pub fn hypothesis(mut self, hypothesis: impl Into<String>) -> Self {
        self.hypothesis = hypothesis.into();
        self
    }

    /// The steady state checked before injecting.
    pub const fn steady_state(mut self, steady_state: SteadyState) -> Self {
        self.steady_state = steady_state;
        self
    }

    /// How the failure is injected and what it affects, for the report.
    pub fn injection(mut self, method: impl Into<String>, scope: impl Into<String>) -> Self {
        self.method = method.into();
        self.scope = scope.into();
        self
    }

    /// The load of the injection phase.
    pub const fn load(mut self, load: Load) -> Self {
        self.load = load;
        self
    }

    /// Concurrent callers (default 1), each sending its calls `interval` apart on the same
    /// service, so that a bulkhead's limit or the chaos layer's `max_active_faults` is
    /// reached. The steady state and the injection use them all; recovery is probed by one
    /// caller, so that "in a row" means in order. A load of `Calls(n)` is `n` calls in all.
    pub fn callers(mut self, callers: usize) -> Self {
        self.callers = callers.max(1);
        self
    }

    /// The chaos layer this experiment is meant for, and the seed it was built with, for the
    /// report (a run through another layer says so in its observations).
    pub fn target(mut self, layer: impl Into<String>, seed: u64) -> Self {
        self.target_layer = Some(layer.into());
        self.seed = Some(seed);
        self
    }

    /// Adds a recommendation of your own to the report.
    pub fn recommendation(mut self, recommendation: impl Into<String>) -> Self {
        self.recommendations.push(recommendation.into());
        self
    }

    /// The pause between calls (default 100 ms).
    pub const fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The longest the runner waits for one call (default 30 s); a call past it counts as a
    /// hang (not graceful).
    pub const fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Adds an expectation (a probe).
    pub fn expect(mut self, expectation: Expectation) -> Self {
        self.expectations.push(expectation);
        self
    }

    /// Stops the injection early as soon as a probe has failed for good: a built-in check
    /// whose result can no longer change whatever the rest of the run does, or a check of
    /// your own marked [`final_when_failed`](Expectation::final_when_failed).
    pub const fn stop_on_failure(mut self, stop: bool) -> Self {
        self.stop_on_failure = stop;
        self
    }

    /// Adds a rollback step, for the report (the runner itself always disarms).
    pub fn rollback(mut self, step: impl Into<String>) -> Self {
        self.rollback.push(step.into());
        self
    }

    /// How recovery is measured.
    pub const fn recovery(mut self, recovery: RecoveryCheck) -> Self {
        self.recovery = recovery;
        self
    }

    /// Who ran it and where, for the report.
    pub fn execution(
        mut self,
        experimenter: impl Into<String>,
        environment: impl Into<String>,
    ) -> Self {
        self.experimenter = experimenter.into();
        self.environment = environment.into();
        self
    }

    /// The date written in the report (default: the wall clock when it ran, as an HTTP date).
    pub fn date(mut self, date: impl Into<String>) -> Self {
        self.date = Some(date.into());
        self
    }

    /// The experiment's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

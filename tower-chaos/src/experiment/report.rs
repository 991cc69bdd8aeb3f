//! The report of one experiment, and of a suite: what was measured, judged.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::logs::CapturedLogs;
use super::{Experiment, Load, TransitionRecord};

pub(crate) use super::format::duration;

/// "Hypothesis confirmed?"
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every expectation held, with faults injected.
    Yes,
    /// Some held, some did not.
    Partially,
    /// None held, or the steady state did not hold.
    No,
    /// No evidence either way: no fault was injected (a predicate that never matched, a
    /// schedule that never fired, dry run), no call was made, or the steady state was not
    /// measured.
    Inconclusive,
}

impl Verdict {
    /// `Yes`, `Partially`, `No` or `Inconclusive`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "Yes",
            Self::Partially => "Partially",
            Self::No => "No",
            Self::Inconclusive => "Inconclusive",
        }
    }
}

/// How serious an issue found is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Callers hang, data is lost or corrupted.
    Critical,
    /// The service fails its callers under the fault, or does not come back.
    High,
    /// Degraded: slower, more retries than planned.
    Medium,
    /// Cosmetic or operational.
    Low,
}

impl Severity {
    /// `Critical`, `High`, `Medium` or `Low`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "Critical",
            Self::High => "High",
            Self::Medium => "Medium",
            Self::Low => "Low",
        }
    }
}

/// One issue found: what failed, how serious it is, and the fix needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// What failed, with the figures.
    pub description: String,
    /// How serious it is.
    pub severity: Severity,
    /// What to do about it.
    pub fix: String,
}

/// One row of the Expected vs Actual table.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    /// The behaviour.
    pub behavior: String,
    /// What was expected, as text.
    pub expected: String,
    /// What was measured, as text.
    pub actual: String,
    /// Pass or fail.
    pub passed: bool,
    /// Its weight in the score.
    pub weight: f64,
}

/// Three latency percentiles (nearest rank).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// What the recovery phase measured, from disarming until recovered or the recovery timeout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryObserved {
    /// Calls sent.
    pub calls: u64,
    /// Real successful answers.
    pub successes: u64,
    /// Calls a fallback answered.
    pub fallback_answers: u64,
    /// Failed or rejected calls.
    pub failures: u64,
    /// Retries reported during the phase.
    pub retried: u64,
    /// Fallbacks reported during the phase.
    pub fallbacks: u64,
    /// Breaker transitions reported during the phase (times since injection started).
    pub transitions: Vec<TransitionRecord>,
    /// How long recovery was watched.
    pub observed_for: Duration,
    /// Real answers in a row that count as recovered.
    pub needed: u32,
}

/// What the injection phase measured (and, in [`recovery`](Self::recovery), the recovery
/// phase). Retries, fallbacks and transitions are those reported during the same phase.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Calls sent.
    pub calls: u64,
    /// Real successful answers (from the dependency, not a fallback).
    pub successes: u64,
    /// Calls a fallback answered.
    pub fallback_answers: u64,
    /// Failed calls, rejected ones included.
    pub failures: u64,
    /// Usable answers (real or fallback) over calls; `None` when no call was made.
    pub success_rate: Option<f64>,
    /// Real successful answers over calls; `None` when no call was made.
    pub real_success_rate: Option<f64>,
    /// Latency of every call (a hung call counts the call deadline); `None` without calls.
    pub latency: Option<Percentiles>,
    /// Latency of the real successful answers; `None` without any.
    pub real_latency: Option<Percentiles>,
    /// Failed calls by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Calls a family layer refused.
    pub rejected: u64,
    /// Calls that got no answer within the call deadline.
    pub hangs: u64,
    /// Retries reported.
    pub retried: u64,
    /// Fallbacks reported.
    pub fallbacks: u64,
    /// Breaker transitions reported.
    pub transitions: Vec<TransitionRecord>,
    /// From injection start to the first detection.
    pub time_to_detect: Option<Duration>,
    /// From disarming to the first of the real answers in a row that count as recovered;
    /// `None` if they did not come (see [`recovery`](Self::recovery) for how long it was
    /// watched).
    pub time_to_recover: Option<Duration>,
    /// The recovery phase, once measured.
    pub recovery: Option<RecoveryObserved>,
    /// How long the injection phase lasted.
    pub injection_time: Duration,
    /// Faults the chaos layer injected.
    pub injected: u64,
    /// Faults not injected because `max_active_faults` were in progress.
    pub overflow: u64,
    /// Concurrent callers.
    pub callers: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SteadyResult {
    pub(crate) calls: u64,
    pub(crate) success_rate: Option<f64>,
    pub(crate) p99: Option<Duration>,
    pub(crate) min_success_rate: f64,
    pub(crate) max_p99: Option<Duration>,
    pub(crate) held: bool,
}

pub(crate) struct Parts<'a> {
    pub(crate) experiment: &'a Experiment,
    pub(crate) date: String,
    pub(crate) elapsed: Duration,
    pub(crate) steady: SteadyResult,
    pub(crate) layer: String,
    pub(crate) injected: Vec<(String, u64)>,
    pub(crate) probes: Vec<ProbeResult>,
    pub(crate) observed: Observed,
    pub(crate) observations: Vec<String>,
    pub(crate) verdict: Verdict,
    pub(crate) score: f64,
}

/// The result of one experiment. [`to_markdown`](Self::to_markdown) (or `Display`) writes it
/// in the "Chaos Test Results" form: execution details, the hypothesis, the steady state,
/// the injection, an Expected vs Actual table with Pass/Fail per behaviour, the measured
/// figures (fallback answers apart, latency of real answers and of all answers), the
/// observations, the logs captured, the issues found (severity, fix needed), the
/// recommendations, the rollback, a weighted score, and "Hypothesis confirmed?".
#[derive(Clone, Debug)]
pub struct Report {
    pub(crate) name: String,
    pub(crate) hypothesis: String,
    pub(crate) date: String,
    pub(crate) experimenter: String,
    pub(crate) environment: String,
    pub(crate) elapsed: Duration,
    pub(crate) steady: SteadyResult,
    pub(crate) method: String,
    pub(crate) scope: String,
    pub(crate) load: Load,
    pub(crate) interval: Duration,
    pub(crate) callers: usize,
    pub(crate) layer: String,
    pub(crate) seed: Option<u64>,
    pub(crate) target_layer: Option<String>,
    pub(crate) injected: Vec<(String, u64)>,
    pub(crate) probes: Vec<ProbeResult>,
    pub(crate) observed: Observed,
    pub(crate) observations: Vec<String>,
    pub(crate) logs: CapturedLogs,
    pub(crate) issues: Vec<Issue>,
    pub(crate) recommendations: Vec<String>,
    pub(crate) rollback: Vec<String>,
    pub(crate) verdict: Verdict,
    pub(crate) score: f64,
}

impl Report {
    pub(crate) fn new(parts: Parts<'_>) -> Self {
        let e = parts.experiment;
        // Probes judged without evidence raise no issue: the run says nothing.
        let mut issues = if parts.verdict == Verdict::Inconclusive {
            Vec::new()
        } else {
            super::probe::issues(e, &parts.probes)
        };
        if !parts.steady.held && parts.steady.calls > 0 {
            issues.push(Issue {
                description: "The steady state did not hold before any fault was injected."
                    .to_owned(),
                severity: Severity::High,
                fix: "Make the system meet its steady state (or correct the steady state's figures) before injecting faults.".to_owned(),
            });
        }
        let mut recommendations = e.recommendations.clone();
        recommendations.push(
            match parts.verdict {
                Verdict::Yes => "Raise the fault rate, lengthen the load or add callers to find where the hypothesis stops holding.",
                Verdict::Partially | Verdict::No if parts.steady.held => "Fix the issues found, then run this experiment again: a fix is confirmed only by a run that passes.",
                Verdict::Partially | Verdict::No => "Restore the steady state, then run this experiment again.",
                Verdict::Inconclusive => "Make the experiment inject its faults (check the fault's predicate, schedule and rate, that dry run is off, and that the load makes calls), then run it again.",
            }
            .to_owned(),
        );
        Self {
            name: e.name.clone(),
            hypothesis: e.hypothesis.clone(),
            date: parts.date,
            experimenter: e.experimenter.clone(),
            environment: e.environment.clone(),
            elapsed: parts.elapsed,
            steady: parts.steady,
            method: e.method.clone(),
            scope: e.scope.clone(),
            load: e.load,
            interval: e.interval,
            callers: e.callers,
            layer: parts.layer,
            seed: e.seed,
            target_layer: e.target_layer.clone(),
            injected: parts.injected,
            probes: parts.probes,
            observed: parts.observed,
            observations: parts.observations,
            logs: CapturedLogs::default(),
            issues,
            recommendations,
            rollback: e.rollback.clone(),
            verdict: parts.verdict,
            score: parts.score,
        }
    }

    pub(crate) fn set_logs(&mut self, logs: CapturedLogs) {
        self.logs = logs;
    }

    /// The experiment's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Yes, Partially, No or Inconclusive.
    #[must_use]
    pub const fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The weighted score over the probes, 0 to 100 (0 when inconclusive).
    #[must_use]
    pub const fn score(&self) -> f64 {
        self.score
    }

    /// Whether the steady state held (if not, nothing was injected).
    #[must_use]
    pub const fn steady_state_held(&self) -> bool {
        self.steady.held
    }

    /// The Expected vs Actual rows.
    #[must_use]
    pub fn probes(&self) -> &[ProbeResult] {
        &self.probes
    }

    /// The row for `behavior`.
    #[must_use]
    pub fn probe(&self, behavior: &str) -> Option<&ProbeResult> {
        self.probes.iter().find(|p| p.behavior == behavior)
    }

    /// The measured figures.
    #[must_use]
    pub const fn observed(&self) -> &Observed {
        &self.observed
    }

    /// What the runner noticed (guard trips, early stops, no recovery, no evidence).
    #[must_use]
    pub fn observations(&self) -> &[String] {
        &self.observations
    }

    /// The chaos events collected during the run.
    #[must_use]
    pub const fn logs(&self) -> &CapturedLogs {
        &self.logs
    }

    /// The issues found: one per failed expectation (and one if the steady state did not
    /// hold).
    #[must_use]
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// The recommendations: yours, then the runner's next step.
    #[must_use]
    pub fn recommendations(&self) -> &[String] {
        &self.recommendations
    }

    /// What the injection was, in a few words: the method given, else the faults injected.
    #[must_use]
    pub fn failure_mode(&self) -> String {
        if !self.method.is_empty() {
            return self.method.clone();
        }
        let names: Vec<&str> = self.injected.iter().map(|(n, _)| n.as_str()).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// The report as Markdown.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        super::render::report(self, &mut out)?;
        f.write_str(&out)
    }
}

/// The reports of a suite's experiments, under a "Tests Conducted" table (experiment,
/// failure mode, hypothesis confirmed, issues found).
///
/// ```
/// use tower_chaos::experiment::SuiteReport;
///
/// let suite = SuiteReport::new("Inventory service", Vec::new());
/// assert!(suite.to_markdown().contains("| Experiment | Failure mode | Hypothesis confirmed | Issues found |"));
/// ```
#[derive(Clone, Debug)]
pub struct SuiteReport {
    pub(crate) title: String,
    pub(crate) reports: Vec<Report>,
}

impl SuiteReport {
    /// A suite report titled `title` over `reports`, in order.
    #[must_use]
    pub fn new(title: impl Into<String>, reports: Vec<Report>) -> Self {
        Self {
            title: title.into(),
            reports,
        }
    }

    /// The experiments' reports.
    #[must_use]
    pub fn reports(&self) -> &[Report] {
        &self.reports
    }

    /// The suite as Markdown.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SuiteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        super::render::suite(self, &mut out)?;
        f.write_str(&out)
    }
}

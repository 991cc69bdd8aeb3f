//! The report: Markdown in the course's "Chaos Test Results" form.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use super::{Experiment, Load, TransitionRecord};

/// "Hypothesis confirmed?"
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every expectation held.
    Yes,
    /// Some held, some did not.
    Partially,
    /// None held, or the steady state did not hold.
    No,
}

impl Verdict {
    /// `Yes`, `Partially` or `No`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "Yes",
            Self::Partially => "Partially",
            Self::No => "No",
        }
    }
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

/// What the injection phase measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Calls sent.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// `successes / calls`.
    pub success_rate: f64,
    /// Median latency.
    pub p50: Duration,
    /// 95th percentile latency.
    pub p95: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
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
    /// From disarming to the first of the consecutive successes that count as recovered.
    pub time_to_recover: Option<Duration>,
    /// How long the injection phase lasted.
    pub injection_time: Duration,
    /// Faults the chaos layer injected.
    pub injected: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SteadyResult {
    pub(crate) calls: u64,
    pub(crate) success_rate: f64,
    pub(crate) p99: Duration,
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
/// in the course's "Chaos Test Results" form: execution details, the hypothesis, the steady
/// state, the injection, an Expected vs Actual table with Pass/Fail per behaviour, the
/// measured figures, observations, the rollback, a weighted score, and "Hypothesis
/// confirmed?".
#[derive(Clone, Debug)]
pub struct Report {
    name: String,
    hypothesis: String,
    date: String,
    experimenter: String,
    environment: String,
    elapsed: Duration,
    steady: SteadyResult,
    method: String,
    scope: String,
    load: Load,
    interval: Duration,
    layer: String,
    injected: Vec<(String, u64)>,
    probes: Vec<ProbeResult>,
    observed: Observed,
    observations: Vec<String>,
    rollback: Vec<String>,
    verdict: Verdict,
    score: f64,
}

/// A duration as people read it: `850 ms`, `2.5 s`, `3 min 20 s`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 && !d.is_zero() {
        format!("{} µs", d.as_micros())
    } else if ms < 1000.0 {
        format!("{} ms", ms.round())
    } else if d < Duration::from_secs(120) {
        let s = d.as_secs_f64();
        if (s - s.round()).abs() < 0.05 {
            format!("{} s", s.round())
        } else {
            format!("{s:.1} s")
        }
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// A rate as a percentage: `95 %`, `97.5 %`.
pub(crate) fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{} %", p.round())
    } else {
        format!("{p:.1} %")
    }
}

impl Report {
    pub(crate) fn new(parts: Parts<'_>) -> Self {
        let e = parts.experiment;
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
            layer: parts.layer,
            injected: parts.injected,
            probes: parts.probes,
            observed: parts.observed,
            observations: parts.observations,
            rollback: e.rollback.clone(),
            verdict: parts.verdict,
            score: parts.score,
        }
    }

    /// The experiment's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Yes, Partially or No.
    #[must_use]
    pub const fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The weighted score over the probes, 0 to 100.
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

    /// What the runner noticed (guard trips, early stops, no recovery).
    #[must_use]
    pub fn observations(&self) -> &[String] {
        &self.observations
    }

    /// The report as Markdown.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        self.to_string()
    }

    fn write(&self, f: &mut String) -> fmt::Result {
        let o = &self.observed;
        writeln!(f, "# Chaos Test Results: {}\n", self.name)?;
        writeln!(f, "## Execution Details")?;
        writeln!(f, "- **Date:** {}", self.date)?;
        writeln!(f, "- **Experimenter:** {}", self.experimenter)?;
        writeln!(f, "- **Duration:** {}", duration(self.elapsed))?;
        writeln!(f, "- **Environment:** {}\n", self.environment)?;
        if !self.hypothesis.is_empty() {
            writeln!(f, "## Hypothesis\n{}\n", self.hypothesis)?;
        }
        writeln!(f, "## Steady State")?;
        writeln!(f, "| Check | Expected | Actual | Pass/Fail |")?;
        writeln!(f, "|-------|----------|--------|-----------|")?;
        let s = &self.steady;
        writeln!(
            f,
            "| Success rate ({} calls) | ≥ {} | {} | {} |",
            s.calls,
            percent(s.min_success_rate),
            percent(s.success_rate),
            pass(s.success_rate >= s.min_success_rate)
        )?;
        if let Some(max) = s.max_p99 {
            writeln!(
                f,
                "| p99 latency | < {} | {} | {} |",
                duration(max),
                duration(s.p99),
                pass(s.p99 < max)
            )?;
        }
        writeln!(f)?;
        writeln!(f, "## Failure Injection")?;
        if !self.method.is_empty() {
            writeln!(f, "- **Method:** {}", self.method)?;
        }
        let load = match self.load {
            Load::Calls(n) => format!("{n} calls"),
            Load::Duration(d) => duration(d),
        };
        writeln!(
            f,
            "- **Duration:** {load} planned, one call every {}; ran {}",
            duration(self.interval),
            duration(o.injection_time)
        )?;
        if !self.scope.is_empty() {
            writeln!(f, "- **Scope:** {}", self.scope)?;
        }
        let injected: Vec<String> = self
            .injected
            .iter()
            .map(|(name, n)| format!("`{name}` × {n}"))
            .collect();
        writeln!(
            f,
            "- **Chaos layer:** `{}`; faults injected: {}\n",
            self.layer,
            if injected.is_empty() {
                "none".to_owned()
            } else {
                injected.join(", ")
            }
        )?;
        writeln!(f, "## Results\n")?;
        writeln!(f, "### Expected vs Actual\n")?;
        writeln!(f, "| Behavior | Expected | Actual | Pass/Fail |")?;
        writeln!(f, "|----------|----------|--------|-----------|")?;
        for p in &self.probes {
            writeln!(
                f,
                "| {} | {} | {} | {} |",
                p.behavior,
                p.expected,
                p.actual,
                pass(p.passed)
            )?;
        }
        if self.probes.is_empty() {
            writeln!(f, "| (not run) | | | |")?;
        }
        writeln!(f)?;
        writeln!(f, "### Measured\n")?;
        writeln!(f, "| Figure | Value |")?;
        writeln!(f, "|--------|-------|")?;
        writeln!(f, "| Calls | {} |", o.calls)?;
        writeln!(f, "| Success rate | {} |", percent(o.success_rate))?;
        writeln!(
            f,
            "| Latency p50 / p95 / p99 | {} / {} / {} |",
            duration(o.p50),
            duration(o.p95),
            duration(o.p99)
        )?;
        let errors: Vec<String> = o
            .errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind}: {n}"))
            .collect();
        writeln!(
            f,
            "| Errors by kind | {} |",
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join("; ")
            }
        )?;
        writeln!(f, "| Rejected | {} |", o.rejected)?;
        writeln!(f, "| Retried | {} |", o.retried)?;
        writeln!(f, "| Fallbacks | {} |", o.fallbacks)?;
        let transitions: Vec<String> = o
            .transitions
            .iter()
            .map(|t| format!("{} → {} at {}", t.from, t.to, duration(t.at)))
            .collect();
        writeln!(
            f,
            "| Breaker transitions | {} |",
            if transitions.is_empty() {
                "none".to_owned()
            } else {
                transitions.join("; ")
            }
        )?;
        writeln!(
            f,
            "| Time to detect | {} |",
            o.time_to_detect
                .map_or_else(|| "not detected".to_owned(), duration)
        )?;
        writeln!(
            f,
            "| Time to recover | {} |\n",
            o.time_to_recover
                .map_or_else(|| "not recovered".to_owned(), duration)
        )?;
        writeln!(f, "### Observations")?;
        let failed: Vec<&str> = self
            .probes
            .iter()
            .filter(|p| !p.passed)
            .map(|p| p.behavior.as_str())
            .collect();
        for line in &self.observations {
            writeln!(f, "- {line}")?;
        }
        if !failed.is_empty() {
            writeln!(f, "- Expectations not met: {}.", failed.join(", "))?;
        }
        if self.observations.is_empty() && failed.is_empty() {
            writeln!(f, "- Every expectation held.")?;
        }
        writeln!(f)?;
        writeln!(f, "### Rollback")?;
        writeln!(
            f,
            "1. The runner disarmed the chaos layer `{}`.",
            self.layer
        )?;
        for (i, step) in self.rollback.iter().enumerate() {
            writeln!(f, "{}. {step}", i + 2)?;
        }
        writeln!(f)?;
        let passed = self.probes.iter().filter(|p| p.passed).count();
        writeln!(f, "### Score")?;
        writeln!(
            f,
            "**{:.0} / 100** (weighted over {} probes; {passed} passed)\n",
            self.score,
            self.probes.len()
        )?;
        writeln!(f, "## Hypothesis Confirmed?")?;
        let why = match self.verdict {
            _ if !self.steady.held => {
                "the steady state did not hold, so nothing was injected.".to_owned()
            }
            Verdict::Yes => format!("all {} expectations held.", self.probes.len()),
            Verdict::Partially | Verdict::No => format!(
                "{passed} of {} expectations held; not met: {}.",
                self.probes.len(),
                failed.join(", ")
            ),
        };
        writeln!(f, "**{}**: {why}", self.verdict.as_str())
    }
}

fn pass(passed: bool) -> &'static str {
    if passed { "Pass" } else { "Fail" }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write(&mut out)?;
        f.write_str(&out)
    }
}

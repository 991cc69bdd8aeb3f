//! Judging the figures: each expectation's row, the verdict and score, the issues found.

use super::format::{duration, duration_exact, duration_vs, percent_vs};
use super::phase::percentiles;
use super::phases::{Injection, Recovered};
use super::report::{
    self, Issue, Observed, Parts, ProbeResult, RecoveryObserved, Report, Severity, Verdict,
};
use super::{Check, Expectation, Experiment};

/// The Expected vs Actual row of `e` over the complete figures `o`.
pub(crate) fn evaluate(e: &Expectation, o: &Observed, experiment: &Experiment) -> ProbeResult {
    let no_calls = || (false, "no calls".to_owned());
    let (passed, actual) = match &e.check {
        Check::DetectionWithin(d) => match o.time_to_detect {
            Some(at) => (at < *d, duration_vs(at, *d)),
            None => (false, "not detected".to_owned()),
        },
        Check::RetriesAttempted(n) => (o.retried == *n, o.retried.to_string()),
        Check::SuccessRateAtLeast(rate) => match o.success_rate {
            Some(actual) => (actual >= *rate, percent_vs(actual, *rate)),
            None => no_calls(),
        },
        Check::P99Below(d) => match o.latency {
            Some(latency) => (latency.p99 < *d, duration_vs(latency.p99, *d)),
            None => no_calls(),
        },
        Check::GracefulFailure => {
            if o.calls == 0 {
                no_calls()
            } else if o.hangs == 0 {
                (true, "Yes".to_owned())
            } else {
                (
                    false,
                    format!(
                        "No ({} calls hung past {})",
                        o.hangs,
                        duration_exact(experiment.call_timeout)
                    ),
                )
            }
        }
        Check::RecoveryWithin(d) => match (o.time_to_recover, &o.recovery) {
            (Some(at), _) => (at < *d, duration_vs(at, *d)),
            (None, Some(recovery)) => (
                false,
                format!("not recovered after {}", duration(recovery.observed_for)),
            ),
            (None, None) => (false, "not measured".to_owned()),
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

/// The verdict and the weighted score (0 to 100). Without evidence (no call, or no fault
/// injected) the verdict is inconclusive and the score 0, whatever the probes say.
pub(crate) fn verdict(probes: &[ProbeResult], evidence: bool) -> (Verdict, f64) {
    if !evidence {
        return (Verdict::Inconclusive, 0.0);
    }
    let total: f64 = probes.iter().map(|p| p.weight).sum();
    let passed: f64 = probes.iter().filter(|p| p.passed).map(|p| p.weight).sum();
    let score = if total > 0.0 {
        100.0 * passed / total
    } else if probes.iter().all(|p| p.passed) {
        100.0
    } else {
        0.0
    };
    let verdict = if probes.iter().all(|p| p.passed) {
        Verdict::Yes
    } else if probes.iter().any(|p| p.passed) {
        Verdict::Partially
    } else {
        Verdict::No
    };
    (verdict, score)
}

/// What a failed check usually means, and what usually fixes it.
fn default_issue(check: &Check) -> (Severity, &'static str) {
    match check {
        Check::GracefulFailure => (
            Severity::Critical,
            "Put a deadline on every call to the dependency (a per-attempt timeout inside the retry, an overall one outside it), so that no caller waits forever.",
        ),
        Check::RecoveryWithin(_) => (
            Severity::High,
            "Let the caller come back as soon as the dependency does: a shorter breaker reset timeout, half-open probes, no state left behind by the fault (pools, caches).",
        ),
        Check::SuccessRateAtLeast(_) => (
            Severity::High,
            "Answer more calls under the fault: retry the transient errors, answer the rest from a fallback (a cache, a default), shed load before it queues.",
        ),
        Check::DetectionWithin(_) => (
            Severity::High,
            "Detect the failure sooner: a circuit breaker with a lower failure threshold or a shorter window, or a health check that reports it.",
        ),
        Check::P99Below(_) => (
            Severity::Medium,
            "Bound each attempt with a timeout below the latency objective, and cap the retries' total time.",
        ),
        Check::RetriesAttempted(_) => (
            Severity::Medium,
            "Bound the retries (a maximum number of attempts, a retry budget) and retry only what is transient.",
        ),
        Check::FallbacksAtLeast(_) => (
            Severity::Medium,
            "Add a fallback for the calls the protection refuses (a cached or default answer).",
        ),
        Check::User(_) => (
            Severity::Medium,
            "Find out why this expectation failed under the fault and fix it.",
        ),
    }
}

/// One issue per failed probe, in the probes' order, with its severity and the fix needed.
pub(crate) fn issues(experiment: &Experiment, probes: &[ProbeResult]) -> Vec<Issue> {
    experiment
        .expectations
        .iter()
        .zip(probes)
        .filter(|(_, p)| !p.passed)
        .map(|(e, p)| {
            let (severity, fix) = default_issue(&e.check);
            Issue {
                description: format!(
                    "{}: expected {}, measured {}.",
                    p.behavior, p.expected, p.actual
                ),
                severity: e.severity.unwrap_or(severity),
                fix: e.fix.clone().unwrap_or_else(|| fix.to_owned()),
            }
        })
        .collect()
}

/// The figures of the injection (and of the recovery, once measured).
pub(crate) fn observed(
    injection: &Injection,
    recovered: Option<&Recovered>,
    e: &Experiment,
) -> Observed {
    let phase = &injection.phase;
    Observed {
        calls: phase.calls(),
        successes: phase.successes,
        fallback_answers: phase.fallbacks,
        failures: phase.failures,
        success_rate: phase.success_rate(),
        real_success_rate: phase.real_success_rate(),
        latency: percentiles(&phase.latencies),
        real_latency: percentiles(&phase.real_latencies),
        errors_by_kind: phase.errors.clone(),
        rejected: phase.rejected,
        hangs: phase.hangs,
        retried: injection.retried,
        fallbacks: injection.fallbacks,
        transitions: injection.transitions.clone(),
        time_to_detect: injection.detection,
        time_to_recover: recovered.and_then(|r| r.at),
        recovery: recovered.map(|r| RecoveryObserved {
            calls: r.phase.calls(),
            successes: r.phase.successes,
            fallback_answers: r.phase.fallbacks,
            failures: r.phase.failures,
            retried: r.retried,
            fallbacks: r.fallbacks,
            transitions: r.transitions.clone(),
            observed_for: r.observed_for,
            needed: e.recovery.successes.max(1),
        }),
        injection_time: injection.time,
        injected: injection.injected.iter().map(|(_, n)| n).sum(),
        overflow: injection.overflow,
        callers: e.callers,
    }
}

pub(crate) fn conclude(
    mut parts: Parts<'_>,
    experiment: &Experiment,
    injection: Injection,
    recovered: Recovered,
) -> Report {
    let o = observed(&injection, Some(&recovered), experiment);
    parts.observations.extend(injection.stopped.clone());
    if o.time_to_recover.is_none() {
        parts.observations.push(format!(
            "No recovery: {} real answers in a row did not come within {} of disarming ({} calls: {} real, {} from a fallback).",
            experiment.recovery.successes.max(1),
            report::duration(recovered.observed_for),
            recovered.phase.calls(),
            recovered.phase.successes,
            recovered.phase.fallbacks,
        ));
    }
    if o.transitions.is_empty() && !o.errors_by_kind.is_empty() {
        parts
            .observations
            .push("No breaker transition was reported during the injection.".to_owned());
    }
    if o.fallback_answers > 0 {
        parts.observations.push(format!(
            "{} of the {} calls were answered by a fallback, not by the dependency.",
            o.fallback_answers, o.calls
        ));
    }
    let evidence = o.calls > 0 && o.injected > 0;
    if o.calls == 0 {
        parts.observations.push(
            "The injection phase made no calls: the run says nothing about the hypothesis."
                .to_owned(),
        );
    } else if o.injected == 0 {
        parts.observations.push(format!(
            "No fault was injected during the {} calls (a predicate that never matched, a schedule or rate that never fired, dry run): the run says nothing about the hypothesis.",
            o.calls
        ));
    }
    parts.probes = experiment
        .expectations
        .iter()
        .map(|e| evaluate(e, &o, experiment))
        .collect();
    let (verdict, score) = verdict(&parts.probes, evidence);
    parts.verdict = verdict;
    parts.score = score;
    let mut extra = Vec::new();
    if verdict != Verdict::Inconclusive {
        if injection.guard_tripped {
            extra.push(Issue {
                description: format!(
                    "The chaos layer's guard disarmed it during the injection: the service's real (non-injected) error rate passed the guard's limit. {}",
                    injection.stopped.as_deref().unwrap_or_default()
                ),
                severity: Severity::High,
                fix: "Find out why calls the chaos layer did not touch failed too (shared pools, queues or retries that spread the fault), and contain it.".to_owned(),
            });
        }
        let judged =
            |check: fn(&Check) -> bool| experiment.expectations.iter().any(|e| check(&e.check));
        if o.time_to_recover.is_none() && !judged(|c| matches!(c, Check::RecoveryWithin(_))) {
            let recovery = o.recovery.clone().unwrap_or_default();
            extra.push(Issue {
                description: format!(
                    "No recovery: {} real answers in a row did not come within {} of the fault ending.",
                    recovery.needed,
                    duration(recovery.observed_for)
                ),
                severity: Severity::High,
                fix: default_issue(&Check::RecoveryWithin(recovery.observed_for)).1.to_owned(),
            });
        }
    }
    parts.injected = injection.injected;
    parts.observed = o;
    let mut report = Report::new(parts);
    report.issues.extend(extra);
    report
}

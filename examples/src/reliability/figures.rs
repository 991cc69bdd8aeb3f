//! The figures of the report, computed from the calls of a run and nothing else.

use super::{CallRecord, FaultKind, Outcome, Run, SUITE, Settings, Window};

/// Consecutive real answers that count as "real answers again".
pub const RECOVERY_RUN: usize = 5;

/// Figures over a set of calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    /// Calls.
    pub calls: usize,
    /// Share of calls with a usable answer (real or degraded).
    pub success_rate: Option<f64>,
    /// Share of calls with a real answer from both upstreams.
    pub real_rate: Option<f64>,
    /// Of the calls without a real answer, the share answered before the deadline (degraded or
    /// a clear error) rather than left hanging.
    pub graceful_rate: Option<f64>,
    /// Of the calls that met at least one failed attempt, the share that still ended with a
    /// real answer.
    pub auto_healed: Option<f64>,
    /// Median latency, seconds.
    pub p50: Option<f64>,
    /// 99th percentile latency, seconds.
    pub p99: Option<f64>,
    /// Calls left without an answer at the deadline.
    pub hung: usize,
}

fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
#[must_use]
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The figures of `calls`.
pub fn figures<'a>(calls: impl IntoIterator<Item = &'a CallRecord>) -> Figures {
    let calls: Vec<&CallRecord> = calls.into_iter().collect();
    let n = calls.len();
    let count = |f: &dyn Fn(&CallRecord) -> bool| calls.iter().filter(|c| f(c)).count();
    let real = count(&|c| c.outcome == Outcome::Real);
    let usable = count(&|c| matches!(c.outcome, Outcome::Real | Outcome::Degraded));
    let hung = count(&|c| c.outcome == Outcome::TimedOut);
    let met_failure = count(&|c| c.failed_attempts > 0 || c.outcome != Outcome::Real);
    let healed = count(&|c| c.failed_attempts > 0 && c.outcome == Outcome::Real);
    let mut latencies: Vec<f64> = calls.iter().map(|c| c.latency).collect();
    latencies.sort_by(f64::total_cmp);
    Figures {
        calls: n,
        success_rate: share(usable, n),
        real_rate: share(real, n),
        graceful_rate: share(n - real - hung, n - real),
        auto_healed: share(healed, met_failure),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        hung,
    }
}

/// Time from the end of a fault to real answers again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Recovery {
    /// The first of [`RECOVERY_RUN`] real answers in a row came this many seconds after the
    /// fault ended.
    After(f64),
    /// Not within the seconds watched.
    NotWithin(f64),
}

impl Recovery {
    /// Seconds: the time to recover, or the time watched (a lower bound).
    #[must_use]
    pub fn seconds(self) -> f64 {
        match self {
            Self::After(s) | Self::NotWithin(s) => s,
        }
    }
}

/// The recovery after `window`: calls sent after the fault ended, in the order they were sent.
#[must_use]
pub fn recovery(calls: &[CallRecord], experiment: usize, window: &Window) -> Recovery {
    let after: Vec<&CallRecord> = calls
        .iter()
        .filter(|c| c.experiment == experiment && !c.flood && c.start >= window.fault_end)
        .collect();
    for (i, first) in after.iter().enumerate() {
        let run = &after[i..];
        if run.len() >= RECOVERY_RUN
            && run[..RECOVERY_RUN]
                .iter()
                .all(|c| c.outcome == Outcome::Real)
        {
            return Recovery::After((first.end() - window.fault_end).max(0.0));
        }
    }
    Recovery::NotWithin(window.end - window.fault_end)
}

/// One line of an experiment's hypothesis, judged.
#[derive(Clone, Debug)]
pub struct Check {
    /// The behaviour.
    pub behavior: String,
    /// What was expected.
    pub expected: String,
    /// What was measured.
    pub actual: String,
    /// Whether it held.
    pub passed: bool,
}

/// An experiment's figures in one run.
#[derive(Clone, Debug)]
pub struct ExperimentFigures {
    /// Calls sent during the fault.
    pub during: Figures,
    /// Calls sent before it.
    pub steady: Figures,
    /// Time to real answers after it.
    pub recovery: Recovery,
    /// Seconds from the fault's start until a breaker opened, if one did during the fault.
    pub detection: Option<f64>,
    /// The other agents (not the flooding one), before and during the fault.
    pub others: (Figures, Figures),
    /// The hypothesis, judged.
    pub checks: Vec<Check>,
}

impl ExperimentFigures {
    /// "Yes", "Partial" or "No".
    #[must_use]
    pub fn verdict(&self) -> &'static str {
        let passed = self.checks.iter().filter(|c| c.passed).count();
        if passed == self.checks.len() {
            "Yes"
        } else if passed == 0 {
            "No"
        } else {
            "Partial"
        }
    }

    /// Checks that failed.
    #[must_use]
    pub fn issues(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }
}

/// A share as a percentage, or "n/a".
#[must_use]
pub fn pct(value: Option<f64>) -> String {
    value.map_or("n/a".to_owned(), |v| format!("{:.1} %", v * 100.0))
}

/// Seconds as milliseconds, or "n/a".
#[must_use]
pub fn ms(value: Option<f64>) -> String {
    value.map_or("n/a".to_owned(), |v| format!("{:.0} ms", v * 1000.0))
}

/// The time to real answers, in words.
#[must_use]
pub fn recovery_text(recovery: Recovery) -> String {
    match recovery {
        Recovery::After(s) => format!("{:.0} ms", s * 1000.0),
        Recovery::NotWithin(s) => format!("not within {s:.1} s"),
    }
}

/// The MTTR the hypotheses expect (compressed time).
pub const MTTR_TARGET: f64 = 1.0;
/// The success rate the hypotheses expect during a fault.
pub const SUCCESS_TARGET: f64 = 0.95;

/// The figures and the judged hypothesis of experiment `index` in `run`.
#[must_use]
pub fn experiment(run: &Run, settings: &Settings, index: usize) -> ExperimentFigures {
    let window = &run.windows[index];
    let mine = || run.calls.iter().filter(move |c| c.experiment == index);
    let during =
        figures(mine().filter(|c| c.start >= window.fault_start && c.start < window.fault_end));
    let steady = figures(mine().filter(|c| c.start < window.fault_start));
    let others_steady = figures(mine().filter(|c| c.agent != 0 && c.start < window.fault_start));
    let others_during =
        figures(mine().filter(|c| {
            c.agent != 0 && c.start >= window.fault_start && c.start < window.fault_end
        }));
    let recovery = recovery(&run.calls, index, window);
    let detection = run
        .samples
        .iter()
        .find(|s| {
            s.t >= window.fault_start && s.t <= window.fault_end && (s.llm == 2 || s.tool == 2)
        })
        .map(|s| s.t - window.fault_start);

    let mut checks = vec![
        Check {
            behavior: "Success rate during the fault".to_owned(),
            expected: format!("≥ {:.0} %", SUCCESS_TARGET * 100.0),
            actual: pct(during.success_rate),
            passed: during.success_rate.is_some_and(|r| r >= SUCCESS_TARGET),
        },
        Check {
            behavior: "Graceful failure (no caller left past the deadline)".to_owned(),
            expected: "Yes".to_owned(),
            actual: if during.hung == 0 {
                "Yes".to_owned()
            } else {
                format!("No: {} of {} calls hung", during.hung, during.calls)
            },
            passed: during.calls > 0 && during.hung == 0,
        },
        Check {
            behavior: "Real answers again after the fault (MTTR)".to_owned(),
            expected: format!("< {:.0} ms", MTTR_TARGET * 1000.0),
            actual: recovery_text(recovery),
            passed: matches!(recovery, Recovery::After(s) if s < MTTR_TARGET),
        },
    ];
    let deadline = settings.deadline.as_secs_f64();
    match SUITE[index].kind {
        FaultKind::Errors30 => checks.push(Check {
            behavior: "Real (not fallback) answers during the fault".to_owned(),
            expected: "≥ 90 %".to_owned(),
            actual: pct(during.real_rate),
            passed: during.real_rate.is_some_and(|r| r >= 0.9),
        }),
        FaultKind::LatencySpike => checks.push(Check {
            behavior: "p99 latency during the fault".to_owned(),
            expected: format!("< {:.0} ms, the deadline", deadline * 1000.0),
            actual: ms(during.p99),
            passed: during.p99.is_some_and(|p| p < deadline * 0.999),
        }),
        FaultKind::RateLimitStorm | FaultKind::ToolOutage => checks.push(Check {
            behavior: "Failure detected (a breaker opens)".to_owned(),
            expected: "< 1000 ms".to_owned(),
            actual: detection.map_or("never".to_owned(), |d| format!("{:.0} ms", d * 1000.0)),
            passed: detection.is_some_and(|d| d < 1.0),
        }),
        FaultKind::NoisyNeighbour => {
            let limit = others_steady.p99.map(|p| 2.0 * p + 0.05);
            checks.push(Check {
                behavior: "Other agents' p99 latency during the flood".to_owned(),
                expected: format!("< 2 × steady + 50 ms = {}", ms(limit)),
                actual: ms(others_during.p99),
                passed: matches!((others_during.p99, limit), (Some(p), Some(l)) if p < l),
            });
        }
    }
    ExperimentFigures {
        during,
        steady,
        recovery,
        detection,
        others: (others_steady, others_during),
        checks,
    }
}

/// The mean time to recover over the suite, and whether every experiment recovered.
#[must_use]
pub fn mttr(experiments: &[ExperimentFigures]) -> (f64, bool) {
    let all = experiments
        .iter()
        .all(|e| matches!(e.recovery, Recovery::After(_)));
    let sum: f64 = experiments.iter().map(|e| e.recovery.seconds()).sum();
    (sum / experiments.len().max(1) as f64, all)
}

/// The MTTR in words: "≥" when an experiment did not recover in the time watched.
#[must_use]
pub fn mttr_text((mean, all): (f64, bool)) -> String {
    format!("{}{:.0} ms", if all { "" } else { "≥ " }, mean * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(start: f64, outcome: Outcome) -> CallRecord {
        CallRecord {
            experiment: 0,
            agent: 1,
            flood: false,
            start,
            latency: 0.01,
            outcome,
            attempts: 1,
            failed_attempts: u32::from(outcome != Outcome::Real),
        }
    }

    const WINDOW: Window = Window {
        start: 0.0,
        fault_start: 1.0,
        fault_end: 2.0,
        end: 4.0,
    };

    #[test]
    fn fallback_answers_are_not_a_recovery() {
        let mut calls: Vec<CallRecord> = (0..10)
            .map(|i| call(2.0 + f64::from(i) * 0.1, Outcome::Degraded))
            .collect();
        assert_eq!(recovery(&calls, 0, &WINDOW), Recovery::NotWithin(2.0));
        calls.extend((0..RECOVERY_RUN).map(|i| call(3.5 + i as f64 * 0.01, Outcome::Real)));
        let Recovery::After(s) = recovery(&calls, 0, &WINDOW) else {
            panic!("real answers came back")
        };
        assert!((s - 1.51).abs() < 1e-9, "{s}");
    }

    #[test]
    fn a_broken_run_of_real_answers_is_not_a_recovery() {
        let mut calls: Vec<CallRecord> = (0..4)
            .map(|i| call(2.0 + f64::from(i) * 0.1, Outcome::Real))
            .collect();
        calls.push(call(2.45, Outcome::Error));
        calls.extend((0..RECOVERY_RUN).map(|i| call(2.5 + i as f64 * 0.1, Outcome::Real)));
        let Recovery::After(s) = recovery(&calls, 0, &WINDOW) else {
            panic!("real answers came back")
        };
        assert!((s - 0.51).abs() < 1e-9, "{s}");
    }

    #[test]
    fn shares_of_nothing_are_not_numbers() {
        let f = figures(&[]);
        assert_eq!((f.success_rate, f.graceful_rate, f.p99), (None, None, None));
        let f = figures(&[
            call(0.0, Outcome::Real),
            call(0.1, Outcome::TimedOut),
            call(0.2, Outcome::Degraded),
        ]);
        assert_eq!(f.graceful_rate, Some(0.5));
        assert_eq!(f.hung, 1);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.99), Some(4.0));
    }
}

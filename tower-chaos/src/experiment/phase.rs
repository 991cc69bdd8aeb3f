//! One phase's figures, as the calls complete: outcomes, latencies, errors by kind.

use std::collections::BTreeMap;
use std::time::Duration;

use super::report::Percentiles;
use super::runner::RunnerOutcome;

/// One call as the runner saw it.
pub(crate) struct Call {
    pub(crate) latency: Duration,
    pub(crate) outcome: RunnerOutcome,
    /// No answer within the call deadline.
    pub(crate) hung: bool,
}

/// The figures of one phase (steady state, injection or recovery).
#[derive(Clone, Debug, Default)]
pub(crate) struct Phase {
    /// Every call's latency (a hung call counts the call deadline).
    pub(crate) latencies: Vec<Duration>,
    /// The latencies of the real successful answers.
    pub(crate) real_latencies: Vec<Duration>,
    /// Real successful answers (neither fallback nor rejected).
    pub(crate) successes: u64,
    /// Usable answers a fallback gave.
    pub(crate) fallbacks: u64,
    /// Failed calls, rejected ones included.
    pub(crate) failures: u64,
    pub(crate) rejected: u64,
    pub(crate) hangs: u64,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Phase {
    pub(crate) fn calls(&self) -> u64 {
        self.successes + self.fallbacks + self.failures
    }

    /// Usable answers (real or fallback) over calls; `None` without calls: a phase with no
    /// calls has no success rate, not 100 %.
    pub(crate) fn success_rate(&self) -> Option<f64> {
        rate(self.successes + self.fallbacks, self.calls())
    }

    /// Real successful answers over calls.
    pub(crate) fn real_success_rate(&self) -> Option<f64> {
        rate(self.successes, self.calls())
    }

    pub(crate) fn record(&mut self, call: Call) {
        self.latencies.push(call.latency);
        self.hangs += u64::from(call.hung);
        match call.outcome {
            RunnerOutcome::Success => {
                self.successes += 1;
                self.real_latencies.push(call.latency);
            }
            RunnerOutcome::Fallback => self.fallbacks += 1,
            RunnerOutcome::Rejected(layer) => {
                self.failures += 1;
                self.rejected += 1;
                *self
                    .errors
                    .entry(format!("rejected ({layer})"))
                    .or_default() += 1;
            }
            RunnerOutcome::Failure(kind) => {
                self.failures += 1;
                *self.errors.entry(kind).or_default() += 1;
            }
        }
    }
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The 1-based rank of percentile `p` among `len` sorted values (nearest rank).
pub(crate) fn rank(len: usize, p: f64) -> usize {
    ((p * len as f64).ceil() as usize).clamp(1, len.max(1))
}

/// p50, p95 and p99 of `latencies`, or `None` if there are none.
pub(crate) fn percentiles(latencies: &[Duration]) -> Option<Percentiles> {
    if latencies.is_empty() {
        return None;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let at = |p| sorted[rank(sorted.len(), p) - 1];
    Some(Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_calls_is_no_rate_and_no_percentiles() {
        let phase = Phase::default();
        assert_eq!(phase.success_rate(), None);
        assert_eq!(percentiles(&phase.latencies), None);
    }

    #[test]
    fn fallbacks_are_answers_but_not_real_ones() {
        let mut phase = Phase::default();
        let ms = Duration::from_millis;
        for (latency, outcome) in [
            (ms(10), RunnerOutcome::Success),
            (ms(1), RunnerOutcome::Fallback),
            (ms(5), RunnerOutcome::Rejected("breaker".into())),
            (ms(20), RunnerOutcome::Failure("error".into())),
        ] {
            phase.record(Call {
                latency,
                outcome,
                hung: false,
            });
        }
        assert_eq!(phase.calls(), 4);
        assert_eq!(phase.success_rate(), Some(0.5));
        assert_eq!(phase.real_success_rate(), Some(0.25));
        assert_eq!(percentiles(&phase.real_latencies).unwrap().p99, ms(10));
        assert_eq!(percentiles(&phase.latencies).unwrap().p50, ms(5));
        assert_eq!(phase.errors["rejected (breaker)"], 1);
    }
}

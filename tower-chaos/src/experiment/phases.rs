//! A run, phase by phase: steady state, injection, recovery, then the verdict.
//!
//! Invariants: the runner's service is only called after its own `poll_ready` returned
//! `Ready(Ok)`, with no other caller in between (both happen under one lock, in one poll);
//! the lock is never held across an `.await`. Every caller runs in the run's own task, so
//! paused tokio time replays a run exactly.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tower_outcome::BoxError;
use tower_service::Service;

use super::phase::{Call, Phase, percentiles, rank};
use super::probe::{conclude, observed};
use super::report::{self, Observed, Parts, Report, SteadyResult, Verdict};
use super::runner::{Classifier, MakeRequest, Runner, RunnerOutcome};
use super::{Check, Experiment, Load, Signals, TransitionRecord};
use crate::{ChaosHandle, ChaosStats};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls every future to completion, in the calling task.
async fn join_all<F: Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    poll_fn(|cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// The runner's parts, borrowed for one run and shared by its callers.
pub(crate) struct Driver<'a, S, Req, Res> {
    service: Mutex<&'a mut S>,
    make_request: Mutex<&'a mut MakeRequest<Req>>,
    classify: &'a Classifier<Res>,
    signals: &'a Signals,
    chaos: &'a ChaosHandle,
    /// Fallbacks reported by the stack and already given to a call.
    claimed: Mutex<u64>,
}

/// What the injection phase saw.
pub(crate) struct Injection {
    pub(crate) phase: Phase,
    pub(crate) time: Duration,
    pub(crate) injected: Vec<(String, u64)>,
    pub(crate) overflow: u64,
    pub(crate) retried: u64,
    pub(crate) fallbacks: u64,
    pub(crate) transitions: Vec<TransitionRecord>,
    pub(crate) detection: Option<Duration>,
    pub(crate) stopped: Option<String>,
    pub(crate) guard_tripped: bool,
}

/// What the recovery phase saw.
pub(crate) struct Recovered {
    pub(crate) phase: Phase,
    pub(crate) at: Option<Duration>,
    pub(crate) observed_for: Duration,
    pub(crate) retried: u64,
    pub(crate) fallbacks: u64,
    pub(crate) transitions: Vec<TransitionRecord>,
}

impl<'a, S, Req, Res> Driver<'a, S, Req, Res>
where
    S: Service<Req, Response = Res>,
    S::Error: Into<BoxError>,
{
    pub(crate) fn new(runner: &'a mut Runner<S, Req, Res>) -> Self {
        let Runner {
            service,
            chaos,
            signals,
            make_request,
            classify,
        } = runner;
        Self {
            service: Mutex::new(service),
            make_request: Mutex::new(make_request),
            classify,
            signals,
            chaos,
            claimed: Mutex::new(0),
        }
    }

    /// One call: ready, call, classify, at most `timeout`.
    async fn call(&self, n: u64, timeout: Duration) -> Call {
        let mut request = {
            let mut make = lock(&self.make_request);
            Some((*make)(n))
        };
        let start = Instant::now();
        let fallbacks_before = self.signals.fallbacks();
        let answer = async {
            let future = poll_fn(|cx| {
                let mut service = lock(&self.service);
                match service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => match request.take() {
                        Some(request) => Poll::Ready(Ok(service.call(request))),
                        // Not reached: this closure is not polled again once it was Ready.
                        None => Poll::Pending,
                    },
                    Poll::Ready(Err(err)) => Poll::Ready(Err(err.into())),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await?;
            future.await.map_err(Into::into)
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(result) => {
                let result: Result<Res, BoxError> = result;
                let outcome = match (self.classify)(result.as_ref()) {
                    RunnerOutcome::Success if self.claim_fallback(fallbacks_before) => {
                        RunnerOutcome::Fallback
                    }
                    outcome => outcome,
                };
                Call {
                    latency: start.elapsed(),
                    outcome,
                    hung: false,
                }
            }
            Err(_) => Call {
                latency: timeout,
                outcome: RunnerOutcome::Failure("no answer within the call deadline".to_owned()),
                hung: true,
            },
        }
    }

    /// Whether a fallback the stack reported since `before` is this call's answer.
    fn claim_fallback(&self, before: u64) -> bool {
        let mut claimed = lock(&self.claimed);
        let base = (*claimed).max(before);
        let fallback = self.signals.fallbacks() > base;
        *claimed = base + u64::from(fallback);
        fallback
    }

    /// `callers` callers, each calling while `more(n)` and nothing said stop, `interval`
    /// apart; `stop` is asked after every call.
    async fn drive(
        &self,
        experiment: &Experiment,
        more: impl Fn(u64) -> bool,
        stop: impl Fn(&Phase) -> Option<String>,
    ) -> (Phase, Option<String>) {
        struct State {
            next: u64,
            phase: Phase,
            stop: Option<String>,
        }
        let state = Mutex::new(State {
            next: 0,
            phase: Phase::default(),
            stop: None,
        });
        let caller = |_| async {
            loop {
                let n = {
                    let mut state = lock(&state);
                    if state.stop.is_some() || !more(state.next) {
                        break;
                    }
                    state.next += 1;
                    state.next - 1
                };
                let call = self.call(n, experiment.call_timeout).await;
                {
                    let mut state = lock(&state);
                    state.phase.record(call);
                    if state.stop.is_none() {
                        state.stop = stop(&state.phase);
                    }
                    if state.stop.is_some() {
                        break;
                    }
                }
                tokio::time::sleep(experiment.interval).await;
            }
        };
        join_all((0..experiment.callers).map(caller)).await;
        let state = state.into_inner().unwrap_or_else(PoisonError::into_inner);
        (state.phase, state.stop)
    }

    pub(crate) async fn run(self, experiment: &Experiment) -> Report {
        let date = experiment
            .date
            .clone()
            .unwrap_or_else(|| httpdate::fmt_http_date(SystemTime::now()));
        let began = Instant::now();
        self.chaos.disarm();
        let mut parts = Parts {
            experiment,
            date,
            elapsed: Duration::ZERO,
            steady: self.steady_state(experiment).await,
            layer: self.chaos.name().to_owned(),
            injected: Vec::new(),
            probes: Vec::new(),
            observed: Observed::default(),
            observations: Vec::new(),
            verdict: Verdict::No,
            score: 0.0,
        };
        if let Some(target) = &experiment.target_layer
            && *target != parts.layer
        {
            parts.observations.push(format!(
                "The experiment targets the chaos layer `{target}`, but the runner drove `{}`.",
                parts.layer
            ));
        }
        if !parts.steady.held {
            parts.verdict = if parts.steady.calls == 0 {
                parts.observations.push(
                    "The steady state was not measured (no calls): nothing was injected and the experiment was aborted."
                        .to_owned(),
                );
                Verdict::Inconclusive
            } else {
                parts.observations.push(
                    "The steady state did not hold: nothing was injected and the experiment was aborted."
                        .to_owned(),
                );
                Verdict::No
            };
            parts.elapsed = began.elapsed();
            return Report::new(parts);
        }
        let injection = self.inject(experiment).await;
        let recovered = self.recover(experiment).await;
        parts.elapsed = began.elapsed();
        conclude(parts, experiment, injection, recovered)
    }

    async fn steady_state(&self, experiment: &Experiment) -> SteadyResult {
        let steady = experiment.steady_state;
        let (phase, _) = self.drive(experiment, |n| n < steady.calls, |_| None).await;
        let p99 = percentiles(&phase.latencies).map(|p| p.p99);
        let success_rate = phase.success_rate();
        SteadyResult {
            calls: phase.calls(),
            success_rate,
            p99,
            min_success_rate: steady.min_success_rate,
            max_p99: steady.max_p99,
            held: success_rate.is_some_and(|rate| rate >= steady.min_success_rate)
                && steady
                    .max_p99
                    .is_none_or(|max| p99.is_some_and(|p99| p99 < max)),
        }
    }

    /// Arms, drives the load, disarms.
    async fn inject(&self, experiment: &Experiment) -> Injection {
        let before = self.chaos.stats();
        self.signals.start();
        *lock(&self.claimed) = 0;
        self.chaos.arm();
        let injecting = Instant::now();
        let planned = match experiment.load {
            Load::Calls(calls) => Some(calls),
            Load::Duration(_) => None,
        };
        let more = |n: u64| match experiment.load {
            Load::Calls(calls) => n < calls,
            Load::Duration(d) => injecting.elapsed() < d,
        };
        let stop = |phase: &Phase| {
            let (calls, at) = (phase.calls(), report::duration(injecting.elapsed()));
            if !self.chaos.is_armed() {
                let by = if self.chaos.guard_tripped() {
                    "the chaos layer's guard disarmed it: the real error rate passed its limit"
                } else {
                    "the chaos layer was disarmed from outside the runner"
                };
                return Some(format!(
                    "The injection ended {at} in (after {calls} calls): {by}."
                ));
            }
            if experiment.stop_on_failure
                && let Some(failed) =
                    self.failed_for_good(experiment, phase, planned, injecting.elapsed(), &before)
            {
                return Some(format!(
                    "Stopped early after {calls} calls ({at}): \"{failed}\" had failed for good."
                ));
            }
            None
        };
        let (phase, stopped) = self.drive(experiment, more, stop).await;
        let time = injecting.elapsed();
        let (retried, fallbacks) = (self.signals.retries(), self.signals.fallbacks());
        let transitions = self.signals.transitions();
        let detection = self.signals.detection();
        let guard_tripped = self.chaos.guard_tripped();
        self.chaos.disarm();
        let (injected, overflow) = injected_since(&before, &self.chaos.stats());
        Injection {
            phase,
            time,
            injected,
            overflow,
            retried,
            fallbacks,
            transitions,
            detection,
            stopped,
            guard_tripped,
        }
    }

    /// Calls one at a time until `successes` real answers in a row, at most `timeout`.
    async fn recover(&self, experiment: &Experiment) -> Recovered {
        let (retried, fallbacks) = (self.signals.retries(), self.signals.fallbacks());
        let seen = self.signals.transitions().len();
        let needed = experiment.recovery.successes.max(1);
        let disarmed = Instant::now();
        let mut phase = Phase::default();
        let (mut streak, mut streak_start, mut at) = (0, None, None);
        let mut n = 0;
        while disarmed.elapsed() < experiment.recovery.timeout {
            let started = disarmed.elapsed();
            let call = self.call(n, experiment.call_timeout).await;
            n += 1;
            let real = call.outcome == RunnerOutcome::Success;
            phase.record(call);
            if real {
                if streak == 0 {
                    streak_start = Some(started);
                }
                streak += 1;
                if streak >= needed {
                    at = streak_start;
                    break;
                }
            } else {
                streak = 0;
            }
            tokio::time::sleep(experiment.interval).await;
        }
        let mut transitions = self.signals.transitions();
        transitions.drain(..seen.min(transitions.len()));
        Recovered {
            phase,
            at,
            observed_for: disarmed.elapsed(),
            retried: self.signals.retries().saturating_sub(retried),
            fallbacks: self.signals.fallbacks().saturating_sub(fallbacks),
            transitions,
        }
    }

    /// The first probe that can no longer pass, whatever the rest of the run does. A check
    /// of your own is judged here only if it says a failure is final, and then on the
    /// figures so far, complete.
    fn failed_for_good(
        &self,
        experiment: &Experiment,
        phase: &Phase,
        planned: Option<u64>,
        elapsed: Duration,
        before: &ChaosStats,
    ) -> Option<String> {
        experiment.expectations.iter().find_map(|e| {
            let failed = match &e.check {
                Check::DetectionWithin(d) => {
                    elapsed > *d && self.signals.detection().is_none_or(|at| at > *d)
                }
                Check::RetriesAttempted(n) => self.signals.retries() > *n,
                Check::GracefulFailure => phase.hangs > 0,
                Check::SuccessRateAtLeast(rate) => planned.is_some_and(|total| {
                    let answered = phase.successes + phase.fallbacks;
                    let best = answered + total.saturating_sub(phase.calls());
                    total > 0 && (best as f64) < rate * total as f64
                }),
                Check::P99Below(d) => planned.is_some_and(|total| {
                    let slow = phase.latencies.iter().filter(|l| *l >= d).count() as u64;
                    let total_len = usize::try_from(total).unwrap_or(usize::MAX);
                    // p99 is the rank-th smallest: it is ≥ d once more than total − rank are.
                    total > 0 && slow > total - rank(total_len, 0.99) as u64
                }),
                Check::User(check) if e.final_when_failed => {
                    let (injected, overflow) = injected_since(before, &self.chaos.stats());
                    let so_far = Injection {
                        phase: phase.clone(),
                        time: elapsed,
                        injected,
                        overflow,
                        retried: self.signals.retries(),
                        fallbacks: self.signals.fallbacks(),
                        transitions: self.signals.transitions(),
                        detection: self.signals.detection(),
                        stopped: None,
                        guard_tripped: false,
                    };
                    !check(&observed(&so_far, None, experiment)).0
                }
                Check::User(_) | Check::RecoveryWithin(_) | Check::FallbacksAtLeast(_) => false,
            };
            failed.then(|| e.behavior.clone())
        })
    }
}

/// Faults injected per fault, and faults not injected past `max_active_faults`, between two
/// readings of a layer's counters.
fn injected_since(before: &ChaosStats, now: &ChaosStats) -> (Vec<(String, u64)>, u64) {
    let injected = now
        .faults
        .iter()
        .map(|f| {
            let was = before.fault(&f.name).map_or(0, |b| b.injected);
            (f.name.clone(), f.injected.saturating_sub(was))
        })
        .collect();
    (injected, now.overflow.saturating_sub(before.overflow))
}

//! The runner is safe to stop and reports only what it measured: rollback on cancel, timeout
//! and panic; recovery counted on real answers; no verdict without injected faults; user
//! checks judged on finished figures; Markdown that renders.
#![cfg(feature = "inject")]

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::retry::{Policy, RetryLayer};
use tower::{ServiceBuilder, ServiceExt};
use tower_breaker::CircuitBreakerLayer;
use tower_chaos::experiment::{
    Expectation, Experiment, Load, RecoveryCheck, Runner, Signals, SteadyState, Verdict,
};
use tower_chaos::{BoxError, ChaosHandle, ChaosLayer, Fault, Latency, find_rejected, profiles};

fn unavailable() -> (ChaosLayer<u64, u64>, ChaosHandle) {
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("dep-chaos")
        .seed(7)
        .faults(profiles::dependency_unavailable(1.0))
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    (layer, handle)
}

/// A harmless fault on every call, so the faults count as injected.
fn harmless() -> (ChaosLayer<u64, u64>, ChaosHandle) {
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("harmless")
        .fault(Fault::latency(Latency::Fixed(Duration::from_micros(1))).rate(1.0))
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    (layer, handle)
}

fn dependency(n: u64) -> Ready<Result<u64, Infallible>> {
    ready(Ok(n))
}

fn small(name: &str) -> Experiment {
    Experiment::new(name)
        .steady_state(SteadyState {
            calls: 2,
            min_success_rate: 0.5,
            max_p99: None,
        })
        .load(Load::Calls(3))
        .interval(Duration::from_millis(100))
        .recovery(RecoveryCheck {
            successes: 1,
            timeout: Duration::from_secs(1),
        })
        .expect(Expectation::graceful_failure())
}

/// Polls the inner future at most `polls` times, then drops it.
struct CancelAfter<F> {
    inner: Option<Pin<Box<F>>>,
    polls: usize,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            self.inner = None;
            return Poll::Ready(None);
        }
        self.polls -= 1;
        match self.inner.as_mut().map(|f| f.as_mut().poll(cx)) {
            Some(Poll::Ready(out)) => Poll::Ready(Some(out)),
            Some(Poll::Pending) => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_cancelled_at_any_await_leaves_the_layer_disarmed() {
    let experiment = small("cancelled");
    let mut armed_at_some_point = false;
    for polls in 1..200 {
        let (chaos, handle) = unavailable();
        let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
        let mut runner = Runner::new(svc, handle.clone(), |n| n);
        let out = CancelAfter {
            inner: Some(Box::pin(runner.run(&experiment))),
            polls,
        }
        .await;
        armed_at_some_point |= handle.stats().injected() > 0;
        assert!(!handle.is_armed(), "armed after a cancel at poll {polls}");
        if out.is_some() {
            assert!(armed_at_some_point, "the run did arm the layer");
            return;
        }
    }
    panic!("the run never finished within 200 polls");
}

#[tokio::test(start_paused = true)]
async fn a_run_under_an_outer_timeout_leaves_the_layer_disarmed() {
    let (chaos, handle) = unavailable();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let experiment = small("timed out").load(Load::Duration(Duration::from_secs(60)));
    let mut runner = Runner::new(svc, handle.clone(), |n| n);
    let outcome = tokio::time::timeout(Duration::from_secs(5), runner.run(&experiment)).await;
    assert!(outcome.is_err(), "the outer timeout fired mid-injection");
    assert!(handle.stats().injected() > 0, "faults were being injected");
    assert!(!handle.is_armed());
}

#[tokio::test(start_paused = true)]
async fn a_run_that_panics_leaves_the_layer_disarmed() {
    let (chaos, handle) = unavailable();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let experiment = small("panics").load(Load::Calls(10));
    let h = handle.clone();
    let task = tokio::spawn(async move {
        // The 2 steady-state calls, then the injection's: request 5 panics.
        let mut made = 0;
        let mut runner = Runner::new(svc, h, move |n| {
            made += 1;
            assert!(made != 5, "request factory panics mid-injection");
            n
        });
        runner.run(&experiment).await
    });
    let err = task.await.unwrap_err();
    assert!(err.is_panic());
    assert!(handle.stats().injected() > 0, "faults were being injected");
    assert!(!handle.is_armed());
}

/// Up to 2 retries on errors that are not a family rejection.
#[derive(Clone)]
struct Retries {
    left: usize,
    signals: Signals,
}

impl Policy<u64, u64, BoxError> for Retries {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, BoxError>) -> Option<Self::Future> {
        match result {
            Err(err) if self.left > 0 && find_rejected(&**err).is_none() => {
                self.left -= 1;
                self.signals.retried();
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// fallback → retry → breaker → chaos → `inner`.
fn protected<S>(
    chaos: ChaosLayer<u64, u64>,
    signals: &Signals,
    inner: S,
) -> tower::util::BoxService<u64, u64, BoxError>
where
    S: tower::Service<u64, Response = u64, Error = std::io::Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let s = signals.clone();
    let breaker = CircuitBreakerLayer::builder()
        .name("dep")
        .failure_threshold(5)
        .reset_timeout(Duration::from_secs(10))
        .on_transition(move |t| s.transition(t.from.as_str(), t.to.as_str()))
        .build()
        .unwrap();
    let s = signals.clone();
    ServiceBuilder::new()
        .map_result(move |result: Result<u64, BoxError>| match result {
            Err(err) if find_rejected(&*err).is_some() => {
                s.fallback();
                Ok(0)
            }
            other => other,
        })
        .layer(RetryLayer::new(Retries {
            left: 2,
            signals: signals.clone(),
        }))
        .layer(breaker)
        .layer(chaos)
        .service(inner)
        .boxed()
}

fn outage(name: &str) -> Experiment {
    Experiment::new(name)
        .load(Load::Duration(Duration::from_secs(30)))
        .interval(Duration::from_millis(100))
        .recovery(RecoveryCheck {
            successes: 5,
            timeout: Duration::from_secs(60),
        })
        .expect(Expectation::success_rate_at_least(0.95))
        .expect(Expectation::recovery_within(Duration::from_secs(30)))
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_after_the_fault_are_not_recovery() {
    let (chaos, handle) = unavailable();
    let signals = Signals::new();
    let svc = protected(
        chaos,
        &signals,
        tower::service_fn(|n: u64| ready(Ok::<_, std::io::Error>(n))),
    );
    let report = Runner::new(svc, handle, |n| n)
        .with_signals(signals)
        .run(&outage("breaker open at the end"))
        .await;
    let recovered = report
        .observed()
        .time_to_recover
        .expect("the dependency is back once disarmed");
    // The breaker is still open when the fault ends: the first answers are the cache's.
    assert!(
        recovered > Duration::ZERO && recovered <= Duration::from_secs(10),
        "{report}"
    );
    let o = report.observed();
    let recovery = o.recovery.as_ref().unwrap();
    assert!(recovery.fallback_answers > 0, "{report}");
    assert_eq!(recovery.fallbacks, recovery.fallback_answers);
    // Fallback answers are counted apart, in the phase where they happened.
    assert_eq!(o.successes, 0, "no real answer while every call is refused");
    assert_eq!(o.fallback_answers + o.failures, o.calls);
    assert_eq!(o.fallback_answers, o.fallbacks);
    assert_eq!(o.real_latency, None);
    assert!(o.latency.is_some());
    // The breaker closes after the fault: a recovery transition, not an injection one.
    let closed =
        |ts: &[tower_chaos::experiment::TransitionRecord]| ts.iter().any(|t| t.to == "closed");
    assert!(!closed(&o.transitions), "{report}");
    assert!(closed(&recovery.transitions), "{report}");
    assert!(o.transitions.iter().all(|t| t.at <= o.injection_time));
    let md = report.to_markdown();
    assert!(
        md.contains(&format!(
            "| Fallback answers | {} | {} |",
            o.fallback_answers, recovery.fallback_answers
        )),
        "{md}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_never_comes_back_is_not_recovered() {
    let (chaos, handle) = unavailable();
    let signals = Signals::new();
    let broken = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let b = broken.clone();
    // The dependency answers the 20 steady-state calls, then breaks for good (the chaos
    // layer refuses every call in between, so the next one it sees is after the fault).
    let inner = tower::service_fn(move |n: u64| {
        if seen.fetch_add(1, Ordering::SeqCst) >= 20 {
            b.store(true, Ordering::SeqCst);
        }
        ready(if b.load(Ordering::SeqCst) {
            Err(std::io::Error::other("still down"))
        } else {
            Ok(n)
        })
    });
    let svc = protected(chaos, &signals, inner);
    let report = Runner::new(svc, handle, |n| n)
        .with_signals(signals)
        .run(&outage("never back"))
        .await;
    assert!(broken.load(Ordering::SeqCst));
    assert_eq!(report.observed().time_to_recover, None, "{report}");
    let md = report.to_markdown();
    assert!(md.contains("not recovered after 60 s"), "{md}");
    assert!(!report.probe("Time to recover").unwrap().passed);
    let about_recovery: Vec<_> = report
        .issues()
        .iter()
        .filter(|i| i.description.contains("recover"))
        .collect();
    assert_eq!(
        about_recovery.len(),
        1,
        "one issue, from the probe: {report}"
    );
    assert!(
        about_recovery[0]
            .description
            .contains("not recovered after 60 s")
    );
}

#[tokio::test(start_paused = true)]
async fn faults_that_never_fire_give_no_yes() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("never")
        .fault(
            Fault::error(|| "injected".into())
                .rate(1.0)
                .when(|n: &u64| *n > 1_000_000),
        )
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service_fn(dependency);
    let experiment = Experiment::new("predicate never matches")
        .load(Load::Calls(50))
        .expect(Expectation::success_rate_at_least(0.95))
        .expect(Expectation::graceful_failure());
    let report = Runner::new(svc, handle.clone(), |n| n)
        .run(&experiment)
        .await;
    assert_eq!(handle.stats().injected(), 0);
    assert_eq!(report.verdict(), Verdict::Inconclusive, "{report}");
    assert_eq!(report.score(), 0.0);
    assert!(
        report
            .to_markdown()
            .contains("**Inconclusive**: no fault was injected during the 50 calls")
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_length_load_gives_no_yes_and_no_100_percent() {
    let (chaos, handle) = unavailable();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let experiment = Experiment::new("no load")
        .load(Load::Calls(0))
        .expect(Expectation::success_rate_at_least(0.95));
    let report = Runner::new(svc, handle, |n| n).run(&experiment).await;
    assert_ne!(report.verdict(), Verdict::Yes, "{report}");
    assert!(!report.probes()[0].passed, "{report}");
    assert_eq!(report.verdict(), Verdict::Inconclusive);
    assert_eq!(report.observed().success_rate, None);
    let md = report.to_markdown();
    assert!(
        md.contains("| Success rate | ≥ 95 % | no calls | Fail |"),
        "{md}"
    );
    assert!(
        md.contains("| Success rate (real + fallback) | no calls | |"),
        "{md}"
    );
    assert!(report.issues().is_empty(), "no evidence, no issue: {md}");
}

#[tokio::test(start_paused = true)]
async fn stop_on_failure_does_not_judge_user_checks_on_partial_figures() {
    let (chaos, handle) = harmless();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let experiment = Experiment::new("user checks")
        .load(Load::Calls(20))
        .stop_on_failure(true)
        .expect(Expectation::check("Real answers", "≥ 10", |o| {
            (o.successes >= 10, o.successes.to_string())
        }))
        .expect(Expectation::check("Recovered", "Yes", |o| {
            (
                o.time_to_recover.is_some(),
                format!("{:?}", o.time_to_recover),
            )
        }));
    let report = Runner::new(svc, handle, |n| n).run(&experiment).await;
    assert_eq!(report.observed().calls, 20, "{report}");
    assert!(report.probes().iter().all(|p| p.passed), "{report}");
}

#[tokio::test(start_paused = true)]
async fn table_cells_escape_pipes_and_newlines() {
    let (chaos, handle) = harmless();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let experiment = Experiment::new("escaping")
        .load(Load::Calls(5))
        .expect(Expectation::check("a | b", "x\ny", |_| {
            (true, "1 | 2".to_owned())
        }));
    let md = Runner::new(svc, handle, |n| n)
        .run(&experiment)
        .await
        .to_markdown();
    assert!(md.contains(r"| a \| b | x<br>y | 1 \| 2 | Pass |"), "{md}");
}

#[tokio::test(start_paused = true)]
async fn a_figure_rounded_to_the_threshold_shows_its_decimals() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("one-in-twenty")
        .fault(
            Fault::error(|| "injected".into())
                .rate(1.0)
                .when(|n: &u64| *n == 3),
        )
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service_fn(dependency);
    let experiment = Experiment::new("rounding")
        .load(Load::Calls(20))
        .expect(Expectation::success_rate_at_least(0.9504))
        .expect(Expectation::success_rate_at_least(-0.0));
    let md = Runner::new(svc, handle, |n| n)
        .run(&experiment)
        .await
        .to_markdown();
    assert!(!md.contains("| ≥ 95 % | 95 % | Fail |"), "{md}");
    assert!(
        md.contains("| Success rate | ≥ 95.04 % | 95 % | Fail |"),
        "{md}"
    );
    assert!(!md.contains("-0"), "{md}");
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_reach_max_active_faults() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("slow")
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(1))).rate(1.0))
        .max_active_faults(2)
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service_fn(dependency);
    let experiment = Experiment::new("five callers")
        .callers(5)
        .load(Load::Calls(50))
        .expect(Expectation::graceful_failure());
    let report = Runner::new(svc, handle, |n| n).run(&experiment).await;
    let o = report.observed();
    assert_eq!(o.calls, 50, "Calls(n) is n calls in all");
    assert_eq!(o.callers, 5);
    assert!(o.overflow > 0, "5 callers, 2 faults at most: {report}");
    assert_eq!(o.injected + o.overflow, 50, "{report}");
    assert!(
        report
            .to_markdown()
            .contains("by each of 5 concurrent callers")
    );
    // With one caller the limit is never reached.
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("slow")
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(1))).rate(1.0))
        .max_active_faults(2)
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service_fn(dependency);
    let report = Runner::new(svc, handle, |n| n)
        .run(&experiment.clone().callers(1))
        .await;
    assert_eq!(report.observed().overflow, 0);
}

#[tokio::test(start_paused = true)]
async fn the_report_carries_logs_issues_and_recommendations() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("hangs")
        .fault(Fault::hang().rate(1.0).when(|n: &u64| *n == 1))
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service_fn(dependency);
    let experiment = Experiment::new("one call hangs")
        .load(Load::Calls(5))
        .call_timeout(Duration::from_secs(2))
        .expect(Expectation::graceful_failure())
        .expect(
            Expectation::success_rate_at_least(1.0)
                .severity(tower_chaos::experiment::Severity::Low)
                .fix("Answer the hung call from a cache"),
        )
        .recommendation("Put the timeout inside the retry");
    let report = Runner::new(svc, handle, |n| n).run(&experiment).await;
    assert_eq!(report.verdict(), Verdict::No, "{report}");
    let logs = report.logs();
    assert_eq!(logs.by_message["chaos: injected a fault"], 1, "{logs:?}");
    assert_eq!(logs.by_message["chaos: armed"], 1);
    assert!(
        logs.lines.iter().any(|l| l.fields.contains("fault=hang")),
        "{logs:?}"
    );
    let issues = report.issues();
    assert_eq!(issues.len(), 2);
    assert_eq!(
        issues[0].severity,
        tower_chaos::experiment::Severity::Critical
    );
    assert_eq!(issues[1].severity, tower_chaos::experiment::Severity::Low);
    assert_eq!(issues[1].fix, "Answer the hung call from a cache");
    assert_eq!(
        report.recommendations()[0],
        "Put the timeout inside the retry"
    );
    let md = report.to_markdown();
    for section in [
        "### Observations",
        "### Logs Captured",
        "### Issues Found\n1. **Issue:** Graceful failure: expected Yes, measured No (1 calls hung past 2 s).\n   - **Severity:** Critical",
        "### Recommendations\n1. Put the timeout inside the retry",
        "## Hypothesis Confirmed?\n**No**",
    ] {
        assert!(md.contains(section), "{section}\n{md}");
    }

    let suite = tower_chaos::experiment::SuiteReport::new("Inventory", vec![report]);
    let md = suite.to_markdown();
    assert!(
        md.contains("| one call hangs | hang | No | 2: Graceful failure"),
        "{md}"
    );
    assert!(
        md.contains("\n## Chaos Test Results: one call hangs"),
        "{md}"
    );
}

#[test]
fn a_run_can_be_spawned_on_a_multi_threaded_runtime() {
    fn send<T: Send>(_: &T) {}
    let (chaos, handle) = unavailable();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let mut runner = Runner::new(svc, handle, |n| n);
    let experiment = small("send");
    let run = runner.run(&experiment);
    send(&run);
}

#[tokio::test(start_paused = true)]
async fn the_injection_stops_when_the_layer_is_disarmed_from_outside() {
    let (chaos, handle) = harmless();
    let h = handle.clone();
    let svc = ServiceBuilder::new()
        .layer(chaos)
        .service_fn(move |n: u64| {
            // An operator pulls the kill switch during the injection.
            if n == 3 && h.is_armed() {
                h.disarm();
            }
            dependency(n)
        });
    let experiment = small("kill switch").load(Load::Calls(100));
    let report = Runner::new(svc, handle, |n| n).run(&experiment).await;
    assert!(report.observed().calls < 100, "{report}");
    assert!(
        report
            .observations()
            .iter()
            .any(|o| o.contains("disarmed from outside the runner")),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_steady_state_of_no_calls_is_not_a_steady_state_that_held() {
    let (chaos, handle) = unavailable();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let experiment = small("no steady state").steady_state(SteadyState {
        calls: 0,
        min_success_rate: 0.95,
        max_p99: None,
    });
    let report = Runner::new(svc, handle.clone(), |n| n)
        .run(&experiment)
        .await;
    assert!(!report.steady_state_held());
    assert_eq!(report.verdict(), Verdict::Inconclusive);
    assert_eq!(handle.stats().injected(), 0, "nothing injected");
    let md = report.to_markdown();
    assert!(
        md.contains("| Success rate (0 calls) | ≥ 95 % | no calls | Fail |"),
        "{md}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_guard_trip_ends_the_injection_and_is_an_issue() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("guarded")
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(1))).rate(1.0))
        .guard(Duration::from_secs(30), 0.5, 5)
        .build()
        .unwrap();
    let handle = layer.handle();
    let h = handle.clone();
    // The dependency really fails once the fault starts: the guard must step in.
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |n: u64| {
            ready(if h.is_armed() {
                Err(std::io::Error::other("really down"))
            } else {
                Ok(n)
            })
        });
    let experiment = small("guarded").load(Load::Calls(100));
    let report = Runner::new(svc, handle.clone(), |n| n)
        .run(&experiment)
        .await;
    assert!(handle.guard_tripped());
    assert!(report.observed().calls < 100, "{report}");
    assert!(
        report
            .issues()
            .iter()
            .any(|i| i.description.contains("guard disarmed it")
                && i.severity == tower_chaos::experiment::Severity::High),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_meet_a_bulkhead() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("slow")
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(1))).rate(1.0))
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    let bulkhead = tower_bulkhead::BulkheadLayer::builder()
        .name("inventory")
        .max_concurrent(2)
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(bulkhead)
        .layer(layer)
        .service_fn(dependency);
    let experiment = Experiment::new("five callers, two seats")
        .steady_state(SteadyState {
            calls: 10,
            min_success_rate: 1.0,
            max_p99: None,
        })
        .callers(5)
        .load(Load::Calls(50))
        .expect(Expectation::success_rate_at_least(0.95));
    let report = Runner::new(svc, handle, |n| n).run(&experiment).await;
    let o = report.observed();
    assert!(o.rejected > 0, "{report}");
    assert_eq!(
        o.errors_by_kind.get("rejected (bulkhead)"),
        Some(&o.rejected),
        "{report}"
    );
    assert_eq!(o.successes + o.rejected, 50);
    assert!(!report.probes()[0].passed);
}

#[tokio::test(start_paused = true)]
async fn a_run_through_another_layer_than_the_target_says_so() {
    let (chaos, handle) = harmless();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let experiment = small("wrong layer").target("inventory-chaos", 2026);
    let report = Runner::new(svc, handle, |n| n).run(&experiment).await;
    assert!(
        report.observations().iter().any(|o| o.contains(
            "targets the chaos layer `inventory-chaos`, but the runner drove `harmless`"
        )),
        "{report}"
    );
    let md = report.to_markdown();
    assert!(
        md.contains("`harmless` (the experiment targets `inventory-chaos`, seed 2026)"),
        "{md}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_final_check_judged_mid_run_sees_the_figures_so_far_complete() {
    let (chaos, handle) = harmless();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let experiment = Experiment::new("final checks")
        .load(Load::Calls(20))
        .stop_on_failure(true)
        .expect(
            Expectation::check("Faults injected", "one per call", |o| {
                (
                    o.injected == o.calls,
                    format!("{} over {} calls", o.injected, o.calls),
                )
            })
            .final_when_failed(),
        );
    let report = Runner::new(svc, handle, |n| n).run(&experiment).await;
    assert_eq!(report.observed().calls, 20, "{report}");
    assert!(report.probes()[0].passed, "{report}");
}

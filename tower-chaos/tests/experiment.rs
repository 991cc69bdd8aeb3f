//! Experiments: steady state, inject, observe, verdict; with and without a breaker.
#![cfg(feature = "inject")]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tower::retry::{Policy, RetryLayer};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::CircuitBreakerLayer;
use tower_chaos::experiment::{
    Expectation, Experiment, Load, Report, Runner, Signals, SteadyState, Verdict,
};
use tower_chaos::{BoxError, ChaosHandle, ChaosLayer, find_rejected, profiles};

/// Up to `left` retries on errors that are not a family rejection; tells the runner.
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

fn chaos() -> (ChaosLayer<u64, u64>, ChaosHandle) {
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("inventory-chaos")
        .seed(2026)
        .faults(profiles::dependency_unavailable(1.0))
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    (layer, handle)
}

fn dependency(n: u64) -> std::future::Ready<Result<u64, Infallible>> {
    ready(Ok(n))
}

fn experiment(intact: Arc<AtomicBool>) -> Experiment {
    Experiment::new("Inventory service unavailable")
        .hypothesis(
            "When the inventory service refuses every connection for 60 s, the caller detects it \
             within 10 s, stops calling it, answers from its cache, and recovers once it is back.",
        )
        .steady_state(SteadyState {
            calls: 20,
            min_success_rate: 0.95,
            max_p99: Some(Duration::from_secs(1)),
        })
        .injection(
            "`dependency_unavailable` profile: every call refused (ConnectionRefused)",
            "every call to the inventory service",
        )
        .load(Load::Duration(Duration::from_secs(60)))
        .interval(Duration::from_millis(100))
        .expect(Expectation::detection_within(Duration::from_secs(10)).weight(2.0))
        .expect(Expectation::success_rate_at_least(0.95).weight(3.0))
        .expect(Expectation::p99_below(Duration::from_secs(2)))
        .expect(Expectation::graceful_failure())
        .expect(Expectation::recovery_within(Duration::from_secs(30)))
        .expect(Expectation::state_not_corrupted(
            "State corrupted",
            move || intact.load(Ordering::SeqCst),
        ))
        .rollback("Re-enable the inventory service's port")
        .execution("tower-chaos test suite", "test (paused tokio time)")
        .date("Tue, 01 Dec 2026 09:00:00 GMT")
}

async fn without_breaker() -> Report {
    let (chaos, handle) = chaos();
    let signals = Signals::new();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(Retries {
            left: 2,
            signals: signals.clone(),
        }))
        .layer(chaos)
        .service_fn(dependency)
        .boxed();
    Runner::new(svc, handle, |n| n)
        .with_signals(signals)
        .run(&experiment(Arc::new(AtomicBool::new(true))))
        .await
}

async fn with_breaker() -> Report {
    let (chaos, handle) = chaos();
    let signals = Signals::new();
    let s = signals.clone();
    let breaker = CircuitBreakerLayer::builder()
        .name("inventory")
        .failure_threshold(5)
        .reset_timeout(Duration::from_secs(10))
        .on_transition(move |t| s.transition(t.from.as_str(), t.to.as_str()))
        .build()
        .unwrap();
    let s = signals.clone();
    let svc = ServiceBuilder::new()
        // Fallback: an open breaker's rejection is answered from the cache.
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
        .service_fn(dependency)
        .boxed();
    Runner::new(svc, handle, |n| n)
        .with_signals(signals)
        .run(&experiment(Arc::new(AtomicBool::new(true))))
        .await
}

#[tokio::test(start_paused = true)]
async fn an_experiment_without_a_breaker_scores_lower_and_marks_its_failures() {
    let without = without_breaker().await;
    let with = with_breaker().await;
    println!("{without}\n\n{with}");

    assert!(without.steady_state_held() && with.steady_state_held());
    assert!(
        without.observed().success_rate < with.observed().success_rate,
        "without {:?} vs with {:?}",
        without.observed().success_rate,
        with.observed().success_rate
    );
    assert_eq!(without.observed().success_rate, Some(0.0));
    assert!(with.observed().success_rate >= Some(0.95));

    let md = without.to_markdown();
    assert!(
        md.contains("| Success rate | ≥ 95 % | 0 % | Fail |"),
        "{md}"
    );
    assert!(
        md.contains("| Detection time | < 10 s | not detected | Fail |"),
        "{md}"
    );
    assert!(
        md.contains("| Graceful failure | Yes | Yes | Pass |"),
        "{md}"
    );
    assert!(md.contains("| State corrupted | No | No | Pass |"), "{md}");
    assert_eq!(without.verdict(), Verdict::Partially);
    assert!(
        md.contains("## Hypothesis Confirmed?\n**Partially**"),
        "{md}"
    );

    assert_eq!(with.verdict(), Verdict::Yes, "{with}");
    assert!(with.score() > without.score());
    // 3 attempts per call: the 5th failure is in the second call, 100 ms in.
    assert_eq!(with.probe("Detection time").unwrap().actual, "100 ms");
    assert_eq!(
        with.observed().fallbacks,
        599,
        "every call but the first, answered from the cache"
    );
    assert_eq!(without.observed().retried, 2 * without.observed().calls);
}

#[tokio::test(start_paused = true)]
async fn the_same_experiment_replays_exactly() {
    let a = with_breaker().await.to_markdown();
    let b = with_breaker().await.to_markdown();
    assert_eq!(a, b);
}

#[tokio::test(start_paused = true)]
async fn a_failed_steady_state_aborts_before_injecting() {
    let (chaos, handle) = chaos();
    let svc = ServiceBuilder::new()
        .layer(chaos)
        .service_fn(|n: u64| async move {
            if n.is_multiple_of(2) {
                Err(std::io::Error::other("already broken"))
            } else {
                Ok(n)
            }
        });
    let report = Runner::new(svc, handle.clone(), |n| n)
        .run(&experiment(Arc::new(AtomicBool::new(true))))
        .await;
    assert!(!report.steady_state_held());
    assert_eq!(report.verdict(), Verdict::No);
    assert_eq!(handle.stats().injected(), 0, "nothing injected");
    assert!(!handle.is_armed());
    assert!(
        report
            .to_markdown()
            .contains("| Success rate (20 calls) | ≥ 95 % | 50 % | Fail |")
    );
}

#[tokio::test(start_paused = true)]
async fn stop_on_failure_ends_the_injection_when_a_probe_fails_for_good() {
    let (chaos, handle) = chaos();
    let corrupted = Arc::new(AtomicBool::new(true));
    let flag = corrupted.clone();
    let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
    let experiment = experiment(corrupted)
        .stop_on_failure(true)
        .load(Load::Calls(1_000));
    // The state gets corrupted as soon as the injection starts.
    let mut svc = svc;
    let report = {
        let handle2 = handle.clone();
        let wrapped = tower::service_fn(move |n: u64| {
            if handle2.is_armed() {
                flag.store(false, Ordering::SeqCst);
            }
            svc.ready_oneshot_call(n)
        });
        Runner::new(wrapped, handle.clone(), |n| n)
            .run(&experiment)
            .await
    };
    assert!(
        report.observed().calls < 1_000,
        "stopped early: {}",
        report.observed().calls
    );
    assert!(
        report
            .observations()
            .iter()
            .any(|o| o.contains("Stopped early")),
        "{report}"
    );
    assert!(!handle.is_armed(), "and disarmed");
}

/// `ready().call()` on a clone, as an owned future.
trait ReadyCall {
    fn ready_oneshot_call(&mut self, n: u64) -> tower::util::Oneshot<Self, u64>
    where
        Self: Sized + Clone + Service<u64>;
}

impl<S: Clone + Service<u64>> ReadyCall for S {
    fn ready_oneshot_call(&mut self, n: u64) -> tower::util::Oneshot<Self, u64> {
        self.clone().oneshot(n)
    }
}

#[test]
fn an_experiment_runs_in_real_time_too() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let report = runtime.block_on(async {
        let (chaos, handle) = chaos();
        let svc = ServiceBuilder::new().layer(chaos).service_fn(dependency);
        let experiment = Experiment::new("quick")
            .load(Load::Calls(20))
            .interval(Duration::ZERO)
            .expect(Expectation::graceful_failure());
        Runner::new(svc, handle, |n| n).run(&experiment).await
    });
    assert_eq!(report.observed().calls, 20);
    assert_eq!(report.verdict(), Verdict::Yes);
}

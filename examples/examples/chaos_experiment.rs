//! Two chaos experiments against an AI API client, printed as a suite report: a "Tests
//! Conducted" table, then one "Chaos Test Results" report per experiment.
//!
//! The stack under test, outermost first: a fallback that answers from a cache when the
//! breaker refuses, a retry (2 retries, 100 ms apart), a circuit breaker (opens at a 50 %
//! failure rate over the last 20 calls), a 2 s per-attempt timeout, the chaos layer, and the
//! "AI API" itself (answers in 80 to 200 ms).
//!
//! 1. "AI API degraded": 30 % of the answers take longer than the deadline and 20 % of the
//!    connections are refused, for 60 s, one caller.
//! 2. "AI API down": every connection refused for 30 s, four callers at once.
//!
//! It runs under paused tokio time, so the minutes pass in an instant and every run prints
//! the same report (`REPORT-example.md` in tower-chaos is this output):
//! `cargo run -p examples --example chaos_experiment`.

use std::convert::Infallible;
use std::time::Duration;

use tower::retry::{Policy, RetryLayer};
use tower::util::BoxService;
use tower::{ServiceBuilder, ServiceExt};
use tower_breaker::CircuitBreakerLayer;
use tower_chaos::experiment::{
    Expectation, Experiment, Load, RecoveryCheck, Report, Runner, Signals, SteadyState, SuiteReport,
};
use tower_chaos::{BoxError, ChaosLayer, Fault, find_rejected, profiles};

/// Two retries, 100 ms apart, on errors other than a family rejection; reported to the runner.
#[derive(Clone)]
struct Retries {
    left: usize,
    signals: Signals,
}

impl Policy<u64, String, BoxError> for Retries {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _: &mut u64,
        result: &mut Result<String, BoxError>,
    ) -> Option<Self::Future> {
        match result {
            Err(err) if self.left > 0 && find_rejected(&**err).is_none() => {
                self.left -= 1;
                self.signals.retried();
                Some(tokio::time::sleep(Duration::from_millis(100)))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

/// The "AI API": answers prompt `n` in 80 to 200 ms.
async fn ai_api(n: u64) -> Result<String, Infallible> {
    tokio::time::sleep(Duration::from_millis(80 + (n * 37) % 120)).await;
    Ok(format!("answer to prompt {n}"))
}

const SEED: u64 = 2026;
const LAYER: &str = "ai-api-chaos";

/// Builds the stack around a chaos layer with `faults`, runs `experiment` through it.
async fn run(faults: Vec<Fault<u64, String>>, experiment: Experiment) -> Result<Report, BoxError> {
    let signals = Signals::new();

    let chaos = ChaosLayer::<u64, String>::builder()
        .name(LAYER)
        .seed(SEED)
        .faults(faults)
        .no_guard() // experiment 2 fails every call on purpose
        .build()?;
    let handle = chaos.handle();

    let s = signals.clone();
    let breaker = CircuitBreakerLayer::builder()
        .name("ai-api")
        .failure_threshold(None)
        .failure_rate_threshold(0.5)
        .count_window(20)
        .minimum_calls(10)
        .reset_timeout(Duration::from_secs(5))
        .on_transition(move |t| s.transition(t.from.as_str(), t.to.as_str()))
        .build()?;

    let s = signals.clone();
    let stack: BoxService<u64, String, BoxError> = ServiceBuilder::new()
        .map_result(move |result: Result<String, BoxError>| match result {
            Err(err) if find_rejected(&*err).is_some() => {
                s.fallback();
                Ok("cached answer".to_owned())
            }
            other => other,
        })
        .layer(RetryLayer::new(Retries {
            left: 2,
            signals: signals.clone(),
        }))
        .layer(breaker)
        .timeout(Duration::from_secs(2))
        .layer(chaos)
        .service_fn(ai_api)
        .boxed();

    let experiment = experiment
        .target(LAYER, SEED)
        .execution("examples/chaos_experiment.rs", "local, paused tokio time")
        .date("Tue, 01 Dec 2026 10:00:00 GMT")
        .rollback("Nothing else to undo: the fault lived in the chaos layer only");
    Ok(Runner::new(stack, handle, |n| n)
        .with_signals(signals)
        .run(&experiment)
        .await)
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), BoxError> {
    let steady = SteadyState {
        calls: 20,
        min_success_rate: 1.0,
        max_p99: Some(Duration::from_secs(1)),
    };

    let degraded = Experiment::new("AI API degraded")
        .hypothesis(
            "When 30 % of the AI API's answers take longer than the 2 s deadline and 20 % of the \
             connections are refused, the client detects it within 10 s, keeps at least 95 % of \
             the calls answered (from the cache if need be), keeps p99 under 2 s, and gets real \
             answers again within 30 s of the fault ending.",
        )
        .steady_state(steady)
        .injection(
            "profiles `ai_response_timeout` (30 %, past a 2 s deadline) and `dependency_unavailable` (20 %)",
            "every call to the AI API",
        )
        .load(Load::Duration(Duration::from_secs(60)))
        .interval(Duration::from_millis(200))
        .expect(Expectation::detection_within(Duration::from_secs(10)).weight(2.0))
        .expect(Expectation::success_rate_at_least(0.95).weight(3.0))
        .expect(Expectation::p99_below(Duration::from_secs(2)))
        .expect(Expectation::graceful_failure().weight(2.0))
        .expect(Expectation::recovery_within(Duration::from_secs(30)))
        .expect(Expectation::check("Retries bounded", "≤ 2 per call", |o| {
            (o.retried <= 2 * o.calls, format!("{} over {} calls", o.retried, o.calls))
        }))
        .recommendation("Count a timed-out attempt as a breaker failure at once, so the breaker opens before the retries pile up.");
    let mut faults = profiles::ai_response_timeout(0.3, Duration::from_secs(2));
    faults.extend(profiles::dependency_unavailable(0.2));
    let first = run(faults, degraded).await?;

    let down = Experiment::new("AI API down")
        .hypothesis(
            "When every connection to the AI API is refused for 30 s, with four callers at \
             once, the breaker opens within 2 s, every call is answered (from the cache), and \
             real answers come back within 10 s of the API coming back.",
        )
        .steady_state(steady)
        .injection(
            "profile `dependency_unavailable` (100 %)",
            "every call to the AI API",
        )
        .callers(4)
        .load(Load::Duration(Duration::from_secs(30)))
        .interval(Duration::from_millis(200))
        .recovery(RecoveryCheck {
            successes: 5,
            timeout: Duration::from_secs(60),
        })
        .expect(Expectation::detection_within(Duration::from_secs(2)))
        .expect(Expectation::success_rate_at_least(0.95))
        .expect(Expectation::fallbacks_at_least(1))
        .expect(Expectation::graceful_failure())
        .expect(Expectation::recovery_within(Duration::from_secs(10)));
    let second = run(profiles::dependency_unavailable(1.0), down).await?;

    println!("{}", SuiteReport::new("AI API client", vec![first, second]));
    Ok(())
}

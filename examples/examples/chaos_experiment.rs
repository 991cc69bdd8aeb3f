//! A chaos experiment against an AI API client, printed as a "Chaos Test Results" report.
//!
//! The stack under test, outermost first: a fallback that answers from a cache when the
//! breaker refuses, a retry (2 retries, 100 ms apart), a circuit breaker (opens at a 50 %
//! failure rate over the last 20 calls), a 2 s per-attempt timeout, the chaos layer, and the
//! "AI API" itself (answers in 80 to 200 ms). The experiment makes 30 % of the answers take
//! longer than the deadline and refuses 20 % of the connections, for 60 s.
//!
//! It runs under paused tokio time, so the minute passes in an instant and every run prints
//! the same report: `cargo run -p examples --example chaos_experiment`.

use std::convert::Infallible;
use std::time::Duration;

use tower::retry::{Policy, RetryLayer};
use tower::{ServiceBuilder, ServiceExt};
use tower_breaker::CircuitBreakerLayer;
use tower_chaos::experiment::{Expectation, Experiment, Load, Runner, Signals, SteadyState};
use tower_chaos::{BoxError, ChaosLayer, find_rejected, profiles};

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

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), BoxError> {
    let signals = Signals::new();

    let chaos = ChaosLayer::<u64, String>::builder()
        .name("ai-api-chaos")
        .seed(2026)
        .faults(profiles::ai_response_timeout(0.3, Duration::from_secs(2)))
        .faults(profiles::dependency_unavailable(0.2))
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
    let stack = ServiceBuilder::new()
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

    let experiment = Experiment::new("AI API degraded")
        .hypothesis(
            "When 30 % of the AI API's answers take longer than the 2 s deadline and 20 % of the \
             connections are refused, the client detects it within 10 s, keeps at least 95 % of \
             the calls answered (from the cache if need be), keeps p99 under 2 s, and recovers \
             within 30 s of the fault ending.",
        )
        .steady_state(SteadyState {
            calls: 20,
            min_success_rate: 1.0,
            max_p99: Some(Duration::from_secs(1)),
        })
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
        .rollback("Nothing else to undo: the fault lived in the chaos layer only")
        .execution("examples/chaos_experiment.rs", "local, paused tokio time")
        .date("Tue, 01 Dec 2026 10:00:00 GMT");

    let report = Runner::new(stack, handle, |n| n)
        .with_signals(signals)
        .run(&experiment)
        .await;
    println!("{report}");
    Ok(())
}

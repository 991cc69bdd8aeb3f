//! Observed rates match configured rates: alone and stacked.
#![cfg(feature = "inject")]

mod support;

use std::time::Duration;

use support::{Echo, call};
use tower::Layer;
use tower_chaos::{ChaosLayer, Fault, Latency};

const CALLS: u64 = 100_000;

/// |observed − n·p| within 3σ of a binomial(n, p).
fn within_three_sigma(observed: u64, rate: f64) {
    let n = CALLS as f64;
    let sigma = (n * rate * (1.0 - rate)).sqrt();
    let diff = (observed as f64 - n * rate).abs();
    assert!(
        diff <= 3.0 * sigma,
        "observed {observed} for rate {rate}: {diff:.0} away from {:.0}, 3σ = {:.0}",
        n * rate,
        3.0 * sigma
    );
}

#[tokio::test(start_paused = true)]
async fn observed_rate_is_within_three_sigma_over_100k_calls() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .seed(11)
        .fault(Fault::error(|| "injected".into()).rate(0.2))
        .no_guard()
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    let mut failed = 0;
    for n in 0..CALLS {
        if call(&mut svc, n).await.is_err() {
            failed += 1;
        }
    }
    within_three_sigma(failed, 0.2);
    assert_eq!(handle.stats().fault("error").unwrap().injected, failed);
}

#[tokio::test(start_paused = true)]
async fn stacked_faults_each_keep_their_rate() {
    // A delay and an error on one request are independent decisions, each made once: the
    // error keeps its 10 % although 30 % of the calls are delayed first.
    let layer = ChaosLayer::<u64, u64>::builder()
        .seed(5)
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(5))).rate(0.3))
        .fault(Fault::error(|| "injected".into()).rate(0.1))
        .no_guard()
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let echo = Echo::default();
    let mut svc = layer.layer(echo.clone());
    let mut failed = 0;
    let mut delayed = 0;
    let mut both = 0;
    for n in 0..CALLS {
        let start = tokio::time::Instant::now();
        let result = call(&mut svc, n).await;
        let slow = start.elapsed() >= Duration::from_millis(5);
        failed += u64::from(result.is_err());
        delayed += u64::from(slow);
        both += u64::from(slow && result.is_err());
    }
    within_three_sigma(failed, 0.1);
    within_three_sigma(delayed, 0.3);
    // Independent: about 3 % of the calls meet both.
    within_three_sigma(both, 0.03);
    let stats = handle.stats();
    assert_eq!(stats.fault("latency").unwrap().injected, delayed);
    assert_eq!(stats.fault("error").unwrap().injected, failed);
    assert_eq!(
        echo.seen() as u64,
        CALLS - failed,
        "an errored call never reaches the service"
    );
}

//! Latency injection delays by the configured amount, in virtual time.
#![cfg(feature = "inject")]

mod support;

use std::time::Duration;

use support::{Echo, call};
use tokio::time::Instant;
use tower::Layer;
use tower_chaos::{ChaosLayer, Fault, Latency};

#[tokio::test(start_paused = true)]
async fn latency_delays_by_the_configured_amount_in_virtual_time() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(750))).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo::default());
    let start = Instant::now();
    assert_eq!(call(&mut svc, 3).await.unwrap(), 3);
    assert_eq!(start.elapsed(), Duration::from_millis(750));
}

#[tokio::test(start_paused = true)]
async fn uniform_latency_stays_in_its_range() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(
            Fault::latency(Latency::Uniform {
                low: Duration::from_millis(100),
                high: Duration::from_millis(200),
            })
            .rate(1.0),
        )
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo::default());
    let mut distinct = std::collections::BTreeSet::new();
    for n in 0..200 {
        let start = Instant::now();
        call(&mut svc, n).await.unwrap();
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(100) && elapsed <= Duration::from_millis(200),
            "{elapsed:?}"
        );
        distinct.insert(elapsed.as_millis());
    }
    assert!(distinct.len() > 50, "samples spread over the range");
}

#[tokio::test(start_paused = true)]
async fn log_normal_latency_has_its_median_and_p99() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .seed(3)
        .fault(
            Fault::latency(Latency::LogNormal {
                p50: Duration::from_millis(100),
                p99: Duration::from_secs(1),
            })
            .rate(1.0),
        )
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo::default());
    let mut samples = Vec::new();
    for n in 0..5_000 {
        let start = Instant::now();
        call(&mut svc, n).await.unwrap();
        samples.push(start.elapsed());
    }
    samples.sort();
    let p50 = samples[2_500].as_secs_f64();
    let p99 = samples[4_950].as_secs_f64();
    assert!((p50 - 0.1).abs() < 0.015, "p50 {p50}");
    assert!((0.75..1.3).contains(&p99), "p99 {p99}");
}

//! The retry budget and gRPC's throttle under a retry storm.

mod support;

use std::time::Duration;

use tower::ServiceBuilder;
use tower_heal::{Backoff, RetryBudget, RetryLayer, Throttle};

use support::{Flaky, Script, call};

/// 1 000 requests per second for 10 s, every attempt failing; returns the retries made.
async fn storm(budget: RetryBudget) -> usize {
    let script = Script::new([Err("down")]);
    let layer = RetryLayer::builder()
        .max_retries(2)
        .backoff(Backoff::none())
        .budget(budget)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(Flaky(script.clone()));
    for _ in 0..10_000 {
        let _ = call(&mut svc, ()).await;
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    script.count() - 10_000
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_a_retry_storm() {
    let retries = storm(RetryBudget::new()).await;
    // Without the budget: 2 retries per request = 20 000.
    assert!(retries <= 2_000 + 100, "{retries}");
    assert!(
        retries >= 2_000,
        "the budget's whole allowance is used: {retries}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fractional_ratio_is_honoured_exactly() {
    // 0.06 × 10 000 + 10/s × 10 s = 700. (tower's budget truncates 1 / 0.06 to 16 and
    // would allow 625 + its reserve.)
    assert_eq!(storm(RetryBudget::new().ratio(0.06)).await, 700);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_returns_at_once_without_waiting() {
    let script = Script::new([Err("down")]);
    let layer = RetryLayer::builder()
        .max_retries(3)
        .initial_delay(Duration::from_secs(1))
        .budget(RetryBudget::new().ratio(0.0).min_per_second(0))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(Flaky(script.clone()));
    let start = tokio::time::Instant::now();
    assert!(call(&mut svc, ()).await.is_err());
    assert_eq!(script.count(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn retries_waiting_in_back_off_count_against_the_budget() {
    // A reserve of exactly one retry (1 per second over a 1 s ttl), no deposits.
    let layer = RetryLayer::builder()
        .max_retries(1)
        .initial_delay(Duration::from_secs(5))
        .budget(
            RetryBudget::new()
                .ratio(0.0)
                .min_per_second(1)
                .ttl(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let script = Script::new([Err("down")]);
    let mut a = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Flaky(script.clone()));
    let mut b = ServiceBuilder::new()
        .layer(layer)
        .service(Flaky(script.clone()));
    let first = tokio::spawn(support::start(&mut a, ()).await);
    tokio::task::yield_now().await;
    // `first` is now sleeping its 5 s back-off, having taken the only retry.
    assert_eq!(script.count(), 1);
    assert!(call(&mut b, ()).await.is_err());
    assert_eq!(script.count(), 2, "the second call was not retried");
    assert!(first.await.unwrap().is_err());
    assert_eq!(script.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_grpc_throttle_stops_after_exactly_the_arithmetic_count() {
    // 10 tokens, threshold 5: failures take 10 → 9, 8, 7, 6 (retry each time), then 5 (stop).
    let script = Script::new([Err("down")]);
    let layer = RetryLayer::builder()
        .max_retries(50)
        .backoff(Backoff::none())
        .throttle(Throttle::new(10, 0.1))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Flaky(script.clone()));
    assert!(call(&mut svc, ()).await.is_err());
    assert_eq!(script.count(), 5, "4 retries");
    assert!(call(&mut svc, ()).await.is_err());
    assert_eq!(script.count(), 6, "4 tokens left: no retry");

    // Successes give 0.1 back each: 21 of them bring 4 back to 6.1; a failure takes it to
    // 5.1 > 5 (one retry), the retry's failure to 4.1 (stop). With 20, 6 → 5: no retry.
    let ok = Script::new([Ok(1)]);
    let mut healthy = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Flaky(ok));
    for _ in 0..21 {
        call(&mut healthy, ()).await.unwrap();
    }
    let before = script.count();
    assert!(call(&mut svc, ()).await.is_err());
    assert_eq!(
        script.count() - before,
        2,
        "6.1 → 5.1: one retry, then stop"
    );
}

/// ttl 1 s, no reserve, ratio 1.0: after 1.2 s idle, a failing call's own deposit pays for
/// its retry (before the fix, the overdue rotation threw it away and the retry was refused).
#[tokio::test(start_paused = true)]
async fn after_idle_beyond_the_ttl_a_calls_own_deposit_pays_for_its_retry() {
    let budget = RetryBudget::new()
        .ratio(1.0)
        .min_per_second(0)
        .ttl(Duration::from_secs(1));
    let script = Script::new([Ok(1), Err("down"), Ok(2)]);
    let layer = RetryLayer::builder()
        .max_retries(1)
        .backoff(Backoff::none())
        .budget(budget)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(Flaky(script.clone()));
    assert_eq!(call(&mut svc, ()).await.unwrap(), 1);
    tokio::time::advance(Duration::from_millis(1200)).await;
    assert_eq!(call(&mut svc, ()).await.unwrap(), 2, "retried");
    assert_eq!(script.count(), 3);
}

//! Schedules fire exactly where they should; predicates and keys choose requests.
#![cfg(feature = "inject")]

mod support;

use std::time::Duration;

use support::{Echo, call};
use tokio::time::Instant;
use tower::Layer;
use tower_chaos::{ChaosLayer, Fault, Schedule};

/// The calls (0-based) in 0..n that failed, through a layer with one always-firing error
/// fault on `schedule`, advancing `step` of virtual time after each call.
async fn failing(schedule: Schedule, n: u64, step: Duration) -> Vec<u64> {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(
            Fault::error(|| "injected".into())
                .rate(1.0)
                .schedule(schedule),
        )
        .no_guard()
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo::default());
    let mut failed = Vec::new();
    for i in 0..n {
        if call(&mut svc, i).await.is_err() {
            failed.push(i);
        }
        tokio::time::advance(step).await;
    }
    failed
}

#[tokio::test(start_paused = true)]
async fn first_n_fires_on_the_first_n_calls_only() {
    assert_eq!(
        failing(Schedule::FirstCalls(3), 10, Duration::ZERO).await,
        [0, 1, 2]
    );
}

#[tokio::test(start_paused = true)]
async fn every_kth_fires_on_every_kth_call() {
    assert_eq!(
        failing(Schedule::EveryKth(4), 13, Duration::ZERO).await,
        [3, 7, 11]
    );
}

#[tokio::test(start_paused = true)]
async fn between_fires_from_the_first_instant_until_the_second() {
    let now = Instant::now();
    let schedule = Schedule::Between(now + Duration::from_secs(3), now + Duration::from_secs(6));
    // One call per second: calls at t = 3, 4, 5 s.
    assert_eq!(
        failing(schedule, 10, Duration::from_secs(1)).await,
        [3, 4, 5]
    );
}

#[tokio::test(start_paused = true)]
async fn for_duration_fires_only_that_long_after_arming() {
    let schedule = Schedule::for_duration(Duration::from_millis(2500));
    assert_eq!(
        failing(schedule, 6, Duration::from_secs(1)).await,
        [0, 1, 2]
    );
    let window = Schedule::AfterArming {
        from: Duration::from_secs(2),
        until: Duration::from_secs(4),
    };
    assert_eq!(failing(window, 6, Duration::from_secs(1)).await, [2, 3]);
}

#[tokio::test(start_paused = true)]
async fn schedules_restart_when_rearmed() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(
            Fault::error(|| "injected".into())
                .rate(1.0)
                .schedule(Schedule::FirstCalls(1)),
        )
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    assert!(call(&mut svc, 0).await.is_err());
    assert!(call(&mut svc, 0).await.is_ok());
    handle.disarm();
    handle.arm();
    assert!(
        call(&mut svc, 0).await.is_err(),
        "the first call after re-arming"
    );
}

#[tokio::test(start_paused = true)]
async fn a_predicate_limits_a_fault_to_the_requests_it_accepts() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(
            Fault::error(|| "injected".into())
                .rate(1.0)
                .when(|n: &u64| n.is_multiple_of(3)),
        )
        .armed(true)
        .no_guard()
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo::default());
    for n in 0..30 {
        assert_eq!(call(&mut svc, n).await.is_err(), n.is_multiple_of(3), "{n}");
    }
}

#[tokio::test(start_paused = true)]
async fn delay_comes_first_then_the_error() {
    // Both fire on every call: the caller waits the delay, then gets the error, and the
    // service is never called.
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::error(|| "injected".into()).rate(1.0))
        .fault(Fault::latency(tower_chaos::Latency::Fixed(Duration::from_secs(2))).rate(1.0))
        .armed(true)
        .no_guard()
        .build()
        .unwrap();
    let echo = Echo::default();
    let mut svc = layer.layer(echo.clone());
    let start = Instant::now();
    assert!(call(&mut svc, 1).await.is_err());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(echo.seen(), 0);
}

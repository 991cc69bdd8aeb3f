//! Rate rules over rolling windows: the last N calls, and buckets over time.

mod support;

use std::time::Duration;

use support::{Events, fail, succeed};
use tokio::time::advance;
use tower_breaker::{CircuitBreakerLayer, State, TransitionReason};
use tower_test::mock;

#[tokio::test(start_paused = true)]
async fn the_count_window_really_rolls() {
    let events = Events::default();
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(None)
        .failure_rate_threshold(0.5)
        .count_window(10)
        .minimum_calls(10)
        .on_transition(events.listener())
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);

    for _ in 0..100 {
        succeed(&mut svc, &mut handle).await;
    }
    assert_eq!(
        breaker.window_totals(),
        Some((10, 0, 0)),
        "only the last 10 are kept"
    );
    for i in 1..=4 {
        fail(&mut svc, &mut handle).await;
        assert_eq!(breaker.window_totals(), Some((10, i, 0)));
        assert_eq!(breaker.state(), State::Closed, "{i} of the last 10 failed");
    }
    // The fifth failure makes 5 of the last 10: 50 %. A window counting since the last
    // transition would hold 104 calls and stay closed.
    fail(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        events.take(),
        vec![(State::Closed, State::Open, TransitionReason::FailureRate)]
    );
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_hold_the_rule_back() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(None)
        .failure_rate_threshold(0.5)
        .count_window(100)
        .minimum_calls(5)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    for _ in 0..4 {
        fail(&mut svc, &mut handle).await;
    }
    assert_eq!(breaker.state(), State::Closed, "4 calls < minimum_calls");
    fail(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn the_time_window_forgets_old_buckets() {
    let build = || {
        CircuitBreakerLayer::builder()
            .failure_threshold(None)
            .failure_rate_threshold(0.5)
            .time_window(Duration::from_secs(10), 10)
            .minimum_calls(4)
            .build()
            .unwrap()
    };

    // Control: without time passing, three old failures and one new make 4 of 4.
    let layer = build();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    for _ in 0..3 {
        fail(&mut svc, &mut handle).await;
    }
    fail(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Open);

    let layer = build();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    for _ in 0..3 {
        fail(&mut svc, &mut handle).await;
    }
    advance(Duration::from_secs(5)).await;
    assert_eq!(
        breaker.window_totals(),
        Some((3, 3, 0)),
        "5 s later they are still in the window"
    );
    advance(Duration::from_secs(6)).await;
    assert_eq!(
        breaker.window_totals(),
        Some((0, 0, 0)),
        "11 s later they are gone"
    );
    fail(&mut svc, &mut handle).await;
    for _ in 0..3 {
        succeed(&mut svc, &mut handle).await;
    }
    assert_eq!(breaker.window_totals(), Some((4, 1, 0)));
    assert_eq!(breaker.state(), State::Closed, "1 failure in 4 is 25 %");
}

/// A successful call that takes `delay`.
async fn slow_call<S>(
    svc: &mut mock::Spawn<S>,
    handle: &mut mock::Handle<u32, u32>,
    delay: Duration,
) where
    S: tower::Service<u32, Response = u32, Error = tower_breaker::BoxError>,
{
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let fut = svc.call(1);
    let (_, send) = handle.next_request().await.unwrap();
    advance(delay).await;
    send.send_response(7);
    assert_eq!(fut.await.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_circuit() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(None)
        .slow_call_rate_threshold(0.5, Duration::from_secs(2))
        .count_window(4)
        .minimum_calls(4)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);

    slow_call(&mut svc, &mut handle, Duration::from_millis(100)).await;
    slow_call(&mut svc, &mut handle, Duration::from_secs(3)).await;
    slow_call(&mut svc, &mut handle, Duration::from_millis(100)).await;
    assert_eq!(breaker.window_totals(), Some((3, 0, 1)));
    assert_eq!(breaker.state(), State::Closed);
    slow_call(&mut svc, &mut handle, Duration::from_secs(2)).await;
    assert_eq!(
        breaker.state(),
        State::Open,
        "2 of 4 calls took ≥ 2 s, and they all succeeded"
    );
}

#[tokio::test(start_paused = true)]
async fn closing_starts_a_clean_window() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(None)
        .failure_rate_threshold(0.5)
        .count_window(10)
        .minimum_calls(4)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    for _ in 0..4 {
        fail(&mut svc, &mut handle).await;
    }
    assert_eq!(breaker.state(), State::Open);
    advance(Duration::from_secs(60)).await;
    succeed(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        breaker.window_totals(),
        Some((0, 0, 0)),
        "the probe does not count, old failures are gone"
    );
    for _ in 0..3 {
        fail(&mut svc, &mut handle).await;
    }
    assert_eq!(
        breaker.state(),
        State::Closed,
        "3 calls < minimum_calls in the new window"
    );
}

#[tokio::test(start_paused = true)]
async fn a_success_that_fills_the_window_to_the_minimum_can_trip() {
    for window in ["count", "time"] {
        let builder = CircuitBreakerLayer::builder()
            .failure_threshold(None)
            .failure_rate_threshold(0.5)
            .minimum_calls(10);
        let builder = if window == "count" {
            builder.count_window(100)
        } else {
            builder.time_window(Duration::from_secs(10), 10)
        };
        let layer = builder.build().unwrap();
        let breaker = layer.handle();
        let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
        for _ in 0..5 {
            fail(&mut svc, &mut handle).await;
        }
        for _ in 0..4 {
            succeed(&mut svc, &mut handle).await;
        }
        assert_eq!(
            breaker.state(),
            State::Closed,
            "{window}: 9 calls < minimum_calls"
        );
        // The tenth call is a success, but 5 of 10 failed: 50 %.
        succeed(&mut svc, &mut handle).await;
        assert_eq!(breaker.state(), State::Open, "{window}");
    }
}

//! Outcomes of calls admitted before a transition do not steer the new state.

mod support;

use std::time::Duration;

use support::{Events, fail, succeed};
use tokio::time::advance;
use tokio_test::assert_ready_ok;
use tower_breaker::{CircuitBreakerLayer, State, TransitionReason::*};
use tower_test::mock;

#[tokio::test(start_paused = true)]
async fn a_late_failure_from_closed_does_not_reopen_half_open() {
    let events = Events::default();
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .on_transition(events.listener())
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);

    // A slow call is admitted while closed...
    assert_ready_ok!(svc.poll_ready());
    let slow = tokio_test::task::spawn(svc.call(1));
    let (_, slow_reply) = handle.next_request().await.unwrap();

    // ...then the circuit opens and, 60 s later, goes half-open.
    fail(&mut svc, &mut handle).await;
    fail(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Open);
    advance(Duration::from_secs(60)).await;
    assert_eq!(breaker.state(), State::HalfOpen);

    // The old call fails now. It was admitted two transitions ago: it must not count.
    slow_reply.send_error("late");
    assert!(slow.await.is_err());
    assert_eq!(breaker.state(), State::HalfOpen);

    succeed(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        events.take(),
        vec![
            (State::Closed, State::Open, ConsecutiveFailures),
            (State::Open, State::HalfOpen, ResetTimeoutElapsed),
            (State::HalfOpen, State::Closed, ProbesSucceeded),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn late_failures_do_not_count_in_a_new_closed_run() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);

    let mut pending = Vec::new();
    for _ in 0..2 {
        assert_ready_ok!(svc.poll_ready());
        let fut = tokio_test::task::spawn(svc.call(1));
        let (_, reply) = handle.next_request().await.unwrap();
        pending.push((fut, reply));
    }
    // An operator resets the breaker (a new generation) while both calls are in flight.
    breaker.force_open();
    breaker.reset();
    for (fut, reply) in pending {
        reply.send_error("late");
        assert!(fut.await.is_err());
    }
    assert_eq!(breaker.consecutive_failures(), 0);
    assert_eq!(
        breaker.state(),
        State::Closed,
        "two late failures did not trip the new run"
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_success_does_not_close_a_reopened_circuit() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .half_open_max_calls(2)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    fail(&mut svc, &mut handle).await;
    advance(Duration::from_secs(60)).await;

    // Two probes in flight; the first fails and re-opens the circuit.
    assert_ready_ok!(svc.poll_ready());
    let first = tokio_test::task::spawn(svc.call(1));
    let (_, first_reply) = handle.next_request().await.unwrap();
    assert_ready_ok!(svc.poll_ready());
    let second = tokio_test::task::spawn(svc.call(1));
    let (_, second_reply) = handle.next_request().await.unwrap();
    first_reply.send_error("down");
    assert!(first.await.is_err());
    assert_eq!(breaker.state(), State::Open);

    // The second probe succeeds afterwards: it belongs to the half-open that ended.
    second_reply.send_response(7);
    assert!(second.await.is_ok());
    assert_eq!(breaker.state(), State::Open);
}

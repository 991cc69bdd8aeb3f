//! The consecutive-failure rule and the full closed → open → half-open → closed cycle.

mod support;

use std::time::Duration;

use support::{Events, call, fail, rejected, succeed};
use tokio::time::advance;
use tower_breaker::{CircuitBreakerLayer, Reason, State, TransitionReason::*};
use tower_test::mock;

fn layer(events: &Events) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .name("dep")
        .failure_threshold(5)
        .reset_timeout(Duration::from_secs(60))
        .on_transition(events.listener())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn five_consecutive_failures_open_the_circuit() {
    let events = Events::default();
    let layer = layer(&events);
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);

    for i in 0..4 {
        let (result, reached) = call(&mut svc, &mut handle, false).await;
        assert!(reached && result.is_err(), "failure {i}");
        assert_eq!(breaker.state(), State::Closed);
        assert_eq!(breaker.consecutive_failures(), i + 1);
    }
    // A success in between starts the run again.
    assert!(call(&mut svc, &mut handle, true).await.0.is_ok());
    assert_eq!(breaker.consecutive_failures(), 0);
    for _ in 0..5 {
        fail(&mut svc, &mut handle).await;
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        events.take(),
        vec![(State::Closed, State::Open, ConsecutiveFailures)]
    );
}

#[tokio::test(start_paused = true)]
async fn open_rejects_at_once_without_calling_the_inner_service() {
    let events = Events::default();
    let layer = layer(&events);
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    for _ in 0..5 {
        fail(&mut svc, &mut handle).await;
    }

    // The inner service is not ready at all: the breaker must not need it to reject.
    handle.allow(0);
    advance(Duration::from_secs(20)).await;
    let (result, reached) = call(&mut svc, &mut handle, true).await;
    assert!(!reached, "the inner service was called while open");
    let err = result.unwrap_err();
    let rejection = rejected(&err).expect("a typed rejection");
    assert_eq!(rejection.reason(), Reason::CircuitOpen);
    assert_eq!(rejection.name(), Some("dep"));
    assert_eq!(rejection.retry_after(), Some(Duration::from_secs(40)));
    assert_eq!(err.to_string(), "circuit breaker \"dep\" is open");
    assert!(
        handle.poll_request().is_pending(),
        "no request reached the mock"
    );
}

#[tokio::test(start_paused = true)]
async fn after_the_reset_timeout_a_successful_probe_closes() {
    let events = Events::default();
    let layer = layer(&events);
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    for _ in 0..5 {
        fail(&mut svc, &mut handle).await;
    }

    advance(Duration::from_secs(59)).await;
    assert!(
        !call(&mut svc, &mut handle, true).await.1,
        "still open at 59 s"
    );
    advance(Duration::from_secs(1)).await;
    let (result, reached) = call(&mut svc, &mut handle, true).await;
    assert!(reached && result.is_ok(), "the probe went through");
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(
        events.take(),
        vec![
            (State::Closed, State::Open, ConsecutiveFailures),
            (State::Open, State::HalfOpen, ResetTimeoutElapsed),
            (State::HalfOpen, State::Closed, ProbesSucceeded),
        ]
    );
    // Closed again with a clean count: it takes five new failures to open.
    for _ in 0..4 {
        fail(&mut svc, &mut handle).await;
    }
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens() {
    let events = Events::default();
    let layer = layer(&events);
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    for _ in 0..5 {
        fail(&mut svc, &mut handle).await;
    }
    advance(Duration::from_secs(60)).await;
    let (result, reached) = call(&mut svc, &mut handle, false).await;
    assert!(reached && result.is_err());
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.open_remaining(), Some(Duration::from_secs(60)));
    assert_eq!(
        events.take(),
        vec![
            (State::Closed, State::Open, ConsecutiveFailures),
            (State::Open, State::HalfOpen, ResetTimeoutElapsed),
            (State::HalfOpen, State::Open, ProbeFailed),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_state_read_reports_the_due_half_open() {
    let events = Events::default();
    let layer = layer(&events);
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    for _ in 0..5 {
        fail(&mut svc, &mut handle).await;
    }
    advance(Duration::from_secs(61)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.open_remaining(), None);
    // The read changed nothing: the transition is the next call's.
    assert_eq!(
        events.take().last(),
        Some(&(State::Closed, State::Open, ConsecutiveFailures))
    );
    succeed(&mut svc, &mut handle).await;
    assert_eq!(
        events.take(),
        vec![
            (State::Open, State::HalfOpen, ResetTimeoutElapsed),
            (State::HalfOpen, State::Closed, ProbesSucceeded),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn success_threshold_needs_that_many_probes() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .half_open_max_calls(1)
        .success_threshold(3)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    fail(&mut svc, &mut handle).await;
    advance(Duration::from_secs(60)).await;
    for _ in 0..2 {
        assert!(call(&mut svc, &mut handle, true).await.1);
        assert_eq!(breaker.state(), State::HalfOpen);
    }
    assert!(call(&mut svc, &mut handle, true).await.1);
    assert_eq!(breaker.state(), State::Closed);
}

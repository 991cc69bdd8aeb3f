//! Transitions reach the listener one at a time, in the order they were made.
//!
//! (Not in `events.rs`: that binary keeps its `tracing` callsites to one test.)

/// Racing transitions (threads forcing the state while a listener is slow to record) reach the
/// listener in the order they were made: each event starts where the previous one ended, and
/// the last one ends in the state the breaker is in.
#[test]
fn racing_transitions_reach_the_listener_in_order() {
    use std::sync::{Arc, Mutex};
    use tower_breaker::{CircuitBreakerLayer, State};

    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = {
        let seen = seen.clone();
        CircuitBreakerLayer::builder()
            .on_transition(move |t| {
                // A listener that takes a moment, as one that logs or sends does.
                for _ in 0..200 {
                    std::hint::spin_loop();
                }
                seen.lock().unwrap().push((t.from, t.to));
            })
            .build()
            .unwrap()
    };
    let handle = layer.handle();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let handle = handle.clone();
            scope.spawn(move || {
                for i in 0..500 {
                    match (thread + i) % 4 {
                        0 => handle.force_open(),
                        1 => handle.reset(),
                        2 => handle.disable(),
                        _ => handle.metrics_only(),
                    }
                }
            });
        }
    });
    let seen = seen.lock().unwrap();
    // Forcing the state the breaker is already in reports nothing: at most one event per call.
    assert!(
        seen.len() <= 2000 && seen.len() > 100,
        "{} events",
        seen.len()
    );
    let mut state = State::Closed;
    for (n, (from, to)) in seen.iter().enumerate() {
        assert_ne!(from, to, "event {n} is a change of state");
        assert_eq!(
            *from,
            state,
            "event {n} starts where event {} ended",
            n.max(1) - 1
        );
        state = *to;
    }
    assert_eq!(state, handle.state());
}

/// A listener may force the state itself: no deadlock, and its transition comes next.
#[test]
fn a_listener_that_forces_the_state_sees_its_own_transition_next() {
    use std::sync::{Arc, Mutex, OnceLock};
    use tower_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, State};

    let handle: Arc<OnceLock<CircuitBreakerHandle>> = Arc::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = {
        let (handle, seen) = (handle.clone(), seen.clone());
        CircuitBreakerLayer::builder()
            .on_transition(move |t| {
                seen.lock().unwrap().push((t.from, t.to));
                if t.to == State::ForcedOpen {
                    handle.get().unwrap().reset();
                }
            })
            .build()
            .unwrap()
    };
    handle.set(layer.handle()).unwrap();
    layer.handle().force_open();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Closed)
        ]
    );
    assert_eq!(layer.handle().state(), State::Closed);
}

/// Forcing the state the breaker is already in is no change of state, and is not reported:
/// `force_open()` twice reports once; `reset()` of a closed breaker reports nothing but still
/// clears its counts; `metrics_only()` again keeps the counts it has.
#[test]
fn forcing_the_state_it_is_in_reports_nothing() {
    use std::sync::{Arc, Mutex};
    use tower_breaker::{CircuitBreakerLayer, State};

    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = {
        let seen = seen.clone();
        CircuitBreakerLayer::builder()
            .failure_threshold(3)
            .on_transition(move |t| seen.lock().unwrap().push((t.from, t.to)))
            .build()
            .unwrap()
    };
    let handle = layer.handle();
    let take = || std::mem::take(&mut *seen.lock().unwrap());

    layer.acquire().unwrap().failure();
    assert_eq!(handle.consecutive_failures(), 1);
    handle.reset();
    assert_eq!(take(), vec![], "closed to closed is no transition");
    assert_eq!(handle.consecutive_failures(), 0, "but the counts are clean");

    for _ in 0..2 {
        handle.force_open();
    }
    assert_eq!(take(), vec![(State::Closed, State::ForcedOpen)]);
    for _ in 0..2 {
        handle.disable();
    }
    assert_eq!(take(), vec![(State::ForcedOpen, State::Disabled)]);

    handle.metrics_only();
    layer.acquire().unwrap().failure();
    handle.metrics_only();
    assert_eq!(take(), vec![(State::Disabled, State::MetricsOnly)]);
    assert_eq!(
        handle.consecutive_failures(),
        1,
        "metrics_only() again clears nothing"
    );

    handle.reset();
    handle.reset();
    assert_eq!(take(), vec![(State::MetricsOnly, State::Closed)]);
    assert_eq!(handle.state(), State::Closed);
}

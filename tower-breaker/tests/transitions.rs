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
    assert_eq!(seen.len(), 2000);
    let mut state = State::Closed;
    for (n, (from, to)) in seen.iter().enumerate() {
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

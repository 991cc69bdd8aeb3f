//! Half-open admission under contention: a call is refused as `HalfOpenFull` only when every
//! probe slot is really taken.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tower_breaker::{CircuitBreakerLayer, State};

/// Two OS threads take and give back probe slots as fast as they can, with 1000 slots and at
/// most two ever held: no call may be refused. (A compare-and-swap that failed only because
/// the other thread's probe came or went was once counted as a failed try, and four of them
/// refused the call as "full".)
#[test]
fn half_open_never_refuses_while_slots_are_free() {
    const PER_THREAD: u64 = 1_000_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _clock = runtime.enter();
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(1))
        .half_open_max_calls(1000)
        .success_threshold(1000)
        .build()
        .unwrap();
    layer.acquire().unwrap().failure();
    runtime.block_on(tokio::time::advance(Duration::from_secs(2)));
    // The first probe makes the transition to half-open; it is given back unused.
    drop(layer.acquire().unwrap());
    let handle = layer.handle();
    assert_eq!(handle.state(), State::HalfOpen);

    let refused = AtomicU64::new(0);
    let admitted = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let start = Barrier::new(2);
    // Bounded in time as well as in calls, for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::scope(|scope| {
        for thread in 0..2 {
            let (layer, refused, admitted, stop, start) =
                (&layer, &refused, &admitted, &stop, &start);
            let clock = runtime.handle().clone();
            scope.spawn(move || {
                let _clock = clock.enter();
                start.wait();
                for i in 0..PER_THREAD {
                    if i % 4096 == 0 && (stop.load(Relaxed) || Instant::now() > deadline) {
                        stop.store(true, Relaxed);
                        break;
                    }
                    match layer.acquire() {
                        Ok(permit) => {
                            admitted.fetch_add(1, Relaxed);
                            // Given back both ways: recorded (as saying nothing) or dropped.
                            if (i + thread) % 2 == 0 {
                                permit.ignore();
                            } else {
                                drop(permit);
                            }
                        }
                        Err(_) => {
                            refused.fetch_add(1, Relaxed);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(handle.state(), State::HalfOpen, "no transition happened");
    assert!(admitted.load(Relaxed) > 0);
    assert_eq!(
        refused.load(Relaxed),
        0,
        "refused with free slots, out of {} calls admitted",
        admitted.load(Relaxed)
    );
    // And every slot came back.
    let held: Vec<_> = std::iter::from_fn(|| layer.acquire().ok())
        .take(1001)
        .collect();
    assert_eq!(held.len(), 1000);
}

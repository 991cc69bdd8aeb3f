//! The guard reads the real error rate (every call in the window), trips once, stops acting
//! once disarmed, and watches latency.
#![cfg(feature = "inject")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt};
use tower_chaos::{ChaosLayer, Fault, Latency};

/// A service whose calls wait for a permit of `gate`, then fail while `failing` is set.
fn gated(
    gate: Arc<Semaphore>,
    failing: Arc<AtomicBool>,
) -> impl Service<
    u64,
    Response = u64,
    Error = std::io::Error,
    Future = impl Future<Output = Result<u64, std::io::Error>> + Send,
> + Clone {
    tower::service_fn(move |n: u64| {
        let gate = gate.clone();
        let failing = failing.clone();
        async move {
            gate.acquire().await.expect("open").forget();
            if failing.load(Ordering::SeqCst) {
                Err(std::io::Error::other("real outage"))
            } else {
                Ok(n)
            }
        }
    })
}

fn open_gate() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(Semaphore::MAX_PERMITS))
}

#[tokio::test(start_paused = true)]
async fn successes_before_the_first_failure_count() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(1))).rate(0.1))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let failing = Arc::new(AtomicBool::new(false));
    let mut svc = layer.layer(gated(open_gate(), failing.clone()));
    // 1 000 successes over 60 s: the 30 s window holds the last 500, in every slice.
    for n in 0..1_000 {
        svc.ready().await.unwrap().call(n).await.unwrap();
        tokio::time::advance(Duration::from_millis(60)).await;
    }
    failing.store(true, Ordering::SeqCst);
    for n in 0..11 {
        assert!(svc.ready().await.unwrap().call(n).await.is_err());
    }
    assert!(
        handle.is_armed(),
        "11 failures in about 511 calls is about 2 %, far under 50 %"
    );
    assert!(!handle.guard_tripped());
}

#[tokio::test(start_paused = true)]
async fn a_thousand_successes_then_eleven_failures_is_one_point_one_percent() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(1))).rate(0.1))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let failing = Arc::new(AtomicBool::new(false));
    let mut svc = layer.layer(gated(open_gate(), failing.clone()));
    // Armed a while before the traffic starts.
    tokio::time::advance(Duration::from_secs(40)).await;
    for n in 0..1_000 {
        svc.ready().await.unwrap().call(n).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    failing.store(true, Ordering::SeqCst);
    for n in 0..11 {
        assert!(svc.ready().await.unwrap().call(n).await.is_err());
    }
    assert!(handle.is_armed(), "1.1 % is not past 50 %");
}

#[tokio::test(start_paused = true)]
async fn calls_older_than_the_window_leave_it() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .guard(Duration::from_secs(30), 0.5, 10)
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(1))).rate(0.1))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let failing = Arc::new(AtomicBool::new(false));
    let mut svc = layer.layer(gated(open_gate(), failing.clone()));
    for n in 0..1_000 {
        svc.ready().await.unwrap().call(n).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    failing.store(true, Ordering::SeqCst);
    let mut failures = 0;
    while handle.is_armed() && failures < 100 {
        let _ = svc.ready().await.unwrap().call(1).await;
        failures += 1;
    }
    assert_eq!(failures, 10, "the window holds only the new calls");
}

#[tokio::test(start_paused = true)]
async fn the_guard_stops_acting_once_disarmed() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(1))).rate(0.1))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let gate = Arc::new(Semaphore::new(0));
    let svc = layer.layer(gated(gate.clone(), Arc::new(AtomicBool::new(true))));
    let calls: Vec<_> = (0..50)
        .map(|n| tokio::spawn(svc.clone().oneshot(n)))
        .collect();
    tokio::task::yield_now().await;
    handle.disarm();
    gate.add_permits(50);
    for call in calls {
        assert!(call.await.unwrap().is_err());
    }
    assert!(
        !handle.guard_tripped(),
        "failures after the kill switch are not the guard's to act on"
    );
    assert_eq!(handle.stats().guard_trips, 0);
}

fn guard_trips(recorder: &DebuggingRecorder) -> u64 {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) if key.key().name() == "chaos_guard_trips_total" => Some(n),
            _ => None,
        })
        .unwrap_or(0)
}

#[test]
fn the_trip_counter_counts_trips_not_calls() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let layer = ChaosLayer::<u64, u64>::builder()
                .fault(Fault::latency(Latency::Fixed(Duration::from_millis(1))).rate(0.1))
                .armed(true)
                .build()
                .unwrap();
            let handle = layer.handle();
            let gate = Arc::new(Semaphore::new(0));
            let svc = layer.layer(gated(gate.clone(), Arc::new(AtomicBool::new(true))));
            // 40 calls in flight, then all fail: the limit is passed at the 10th failure.
            let calls: Vec<_> = (0..40)
                .map(|n| tokio::spawn(svc.clone().oneshot(n)))
                .collect();
            tokio::task::yield_now().await;
            gate.add_permits(40);
            for call in calls {
                assert!(call.await.unwrap().is_err());
            }
            assert!(handle.guard_tripped());
            assert_eq!(handle.stats().guard_trips, 1);
        });
    });
    assert_eq!(
        guard_trips(&recorder),
        1,
        "one trip, however many calls failed after it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_hang_trips_the_latency_guard_and_the_trip_releases_the_calls() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::hang().rate(1.0))
        .guard_latency(Duration::from_secs(2))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::Echo::default());
    let calls: Vec<_> = (0..20)
        .map(|n| tokio::spawn(svc.clone().oneshot(n)))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(handle.is_armed(), "not yet past the bound");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(
        !handle.is_armed(),
        "every call is past the 2 s bound: p99 > 2 s"
    );
    assert!(handle.guard_tripped());
    assert_eq!(handle.stats().guard_trips, 1);
    for (n, call) in calls.into_iter().enumerate() {
        assert_eq!(
            call.await.unwrap().unwrap(),
            n as u64,
            "released by the trip"
        );
    }
    assert_eq!(handle.stats().active, 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_latency_fault_trips_the_latency_guard() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(2))).rate(1.0))
        .guard_latency(Duration::from_secs(1))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(support::Echo::default());
    let mut calls = 0;
    while handle.is_armed() && calls < 100 {
        support::call(&mut svc, calls).await.unwrap();
        calls += 1;
    }
    assert_eq!(
        calls, 10,
        "tripped once the window held its minimum of calls"
    );
    let start = tokio::time::Instant::now();
    support::call(&mut svc, 1).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "disarmed: no more delay");
}

#[tokio::test(start_paused = true)]
async fn latency_under_the_bound_does_not_trip() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(900))).rate(1.0))
        .guard_latency(Duration::from_secs(1))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(support::Echo::default());
    for n in 0..50 {
        support::call(&mut svc, n).await.unwrap();
    }
    assert!(handle.is_armed());
}

#[tokio::test(start_paused = true)]
async fn without_a_latency_bound_a_hang_never_trips() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::hang().rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::Echo::default());
    let calls: Vec<_> = (0..20)
        .map(|n| tokio::spawn(svc.clone().oneshot(n)))
        .collect();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(handle.is_armed());
    for call in calls {
        call.abort();
    }
}

#[test]
fn two_threads_failing_at_once_trip_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..20 {
            let layer = ChaosLayer::<u64, u64>::builder()
                .fault(Fault::latency(Latency::Fixed(Duration::ZERO)).rate(0.1))
                .guard(Duration::from_secs(30), 0.5, 10)
                .armed(true)
                .build()
                .unwrap();
            let handle = layer.handle();
            let svc = layer.layer(gated(open_gate(), Arc::new(AtomicBool::new(true))));
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let svc = svc.clone();
                    tokio::spawn(async move {
                        for n in 0..200 {
                            let _ = svc.clone().oneshot(n).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            assert!(!handle.is_armed());
            assert_eq!(handle.stats().guard_trips, 1);
        }
    });
}

#[tokio::test(start_paused = true)]
async fn a_panicking_classifier_leaves_the_layer_working() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(5))).rate(1.0))
        .max_active_faults(1)
        .guard_classifier(|r| match r {
            Ok(&7) => panic!("classifier bug"),
            _ => false,
        })
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::Echo::default());
    let panicked = tokio::spawn(svc.clone().oneshot(7)).await;
    assert!(panicked.unwrap_err().is_panic());
    assert_eq!(
        handle.stats().active,
        0,
        "the slot went with the unwinding future"
    );
    for n in 10..30 {
        assert_eq!(svc.clone().oneshot(n).await.unwrap(), n);
    }
    assert!(handle.is_armed());
    assert_eq!(handle.stats().fault("latency").unwrap().injected, 21);
}

#[tokio::test(start_paused = true)]
async fn a_full_response_delay_trips_the_latency_guard() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::response_delay(Latency::Fixed(Duration::from_secs(2))).rate(1.0))
        .guard_latency(Duration::from_secs(1))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(support::Echo::default());
    let mut calls = 0;
    while handle.is_armed() && calls < 100 {
        support::call(&mut svc, calls).await.unwrap();
        calls += 1;
    }
    assert_eq!(calls, 10);
}

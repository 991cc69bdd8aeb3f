//! Rollback: `auto_disarm_after` bounds how long a layer stays armed, and disarming releases
//! the calls held by hang and latency faults.
#![cfg(feature = "inject")]

mod support;

use std::time::Duration;

use support::{Echo, call};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt};
use tower_chaos::{ChaosLayer, Fault, Latency};

#[tokio::test(start_paused = true)]
async fn auto_disarm_after_bounds_the_armed_period() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::error(|| "injected".into()).rate(1.0))
        .auto_disarm_after(Duration::from_secs(60))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    assert!(call(&mut svc, 1).await.is_err());
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(handle.is_armed());
    assert!(call(&mut svc, 1).await.is_err());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        !handle.is_armed(),
        "60 s after arming, nobody disarmed it: it did"
    );
    assert_eq!(call(&mut svc, 1).await.unwrap(), 1);
    // Arming again starts a new period.
    handle.arm();
    assert!(call(&mut svc, 1).await.is_err());
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        call(&mut svc, 2).await.unwrap(),
        2,
        "disarmed by the call itself"
    );
    assert!(!handle.stats().armed);
}

#[tokio::test(start_paused = true)]
async fn a_call_held_past_auto_disarm_after_is_released_with_no_other_call() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::hang().rate(1.0))
        .auto_disarm_after(Duration::from_secs(30))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    let start = Instant::now();
    // Whoever armed the layer is gone: only the held call's own timer is left.
    let answer = svc.oneshot(5).await.unwrap();
    assert_eq!(answer, 5);
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert!(!handle.is_armed());
    assert_eq!(handle.stats().active, 0);
}

#[tokio::test(start_paused = true)]
async fn a_delay_is_cut_short_at_auto_disarm_after() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(600))).rate(1.0))
        .auto_disarm_after(Duration::from_secs(10))
        .armed(true)
        .build()
        .unwrap();
    let svc = layer.layer(Echo::default());
    let start = Instant::now();
    svc.oneshot(1).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

fn held_layer(release: bool) -> ChaosLayer<u64, u64> {
    ChaosLayer::<u64, u64>::builder()
        .fault(Fault::hang().rate(0.5))
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(3600))).rate(1.0))
        .release_on_disarm(release)
        .seed(3)
        .armed(true)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_kill_switch_releases_hung_and_delayed_calls() {
    let layer = held_layer(true);
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    let mut calls = Vec::new();
    for n in 0..10 {
        svc.ready().await.unwrap();
        let mut fut = task::spawn(svc.call(n));
        assert_pending!(fut.poll());
        calls.push(fut);
    }
    assert!(handle.stats().fault("hang").unwrap().injected > 0);
    assert_eq!(handle.stats().active, 10);
    handle.disarm();
    for (n, mut fut) in calls.into_iter().enumerate() {
        assert!(fut.is_woken());
        assert_eq!(assert_ready_ok!(fut.poll()), n as u64);
    }
    assert_eq!(handle.stats().active, 0);
}

#[tokio::test(start_paused = true)]
async fn release_on_disarm_false_lets_held_calls_finish_as_decided() {
    let layer = held_layer(false);
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(1));
    assert_pending!(fut.poll());
    handle.disarm();
    assert_pending!(fut.poll(), "still held");
    handle.release_held();
    assert_eq!(assert_ready_ok!(fut.poll()), 1);
}

#[tokio::test(start_paused = true)]
async fn disarm_with_overrides_the_layer_setting() {
    let layer = held_layer(true);
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(1));
    assert_pending!(fut.poll());
    handle.disarm_with(false);
    assert_pending!(fut.poll(), "kept");
    handle.arm();
    handle.disarm_with(true);
    assert_eq!(assert_ready_ok!(fut.poll()), 1);
}

#[tokio::test(start_paused = true)]
async fn release_hung_leaves_delays_alone() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(5))).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    let start = Instant::now();
    let call = tokio::spawn(svc.oneshot(1));
    tokio::task::yield_now().await;
    handle.release_hung();
    call.await.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

/// A call dropped at each of its polls while held, released, or answered, frees its slot.
#[tokio::test(start_paused = true)]
async fn a_held_call_dropped_at_any_poll_frees_its_slot() {
    for polls in 0..4 {
        let layer = held_layer(true);
        let handle = layer.handle();
        let mut svc = layer.layer(Echo::default());
        svc.ready().await.unwrap();
        let mut fut = task::spawn(svc.call(1));
        for step in 0..polls {
            if step == 1 {
                handle.disarm();
            }
            if fut.poll().is_ready() {
                break;
            }
        }
        drop(fut);
        assert_eq!(handle.stats().active, 0, "dropped after {polls} polls");
    }
}

/// An answer held by a response delay, dropped at any poll, frees its slot.
#[tokio::test(start_paused = true)]
async fn a_held_answer_dropped_at_any_poll_frees_its_slot() {
    for polls in 0..3 {
        let layer = ChaosLayer::<u64, u64>::builder()
            .fault(Fault::response_delay(Latency::Fixed(Duration::from_secs(10))).rate(1.0))
            .armed(true)
            .build()
            .unwrap();
        let handle = layer.handle();
        let mut svc = layer.layer(Echo::default());
        svc.ready().await.unwrap();
        let mut fut = task::spawn(svc.call(1));
        for _ in 0..polls {
            if fut.poll().is_ready() {
                break;
            }
            tokio::time::advance(Duration::from_secs(4)).await;
        }
        drop(fut);
        assert_eq!(handle.stats().active, 0, "dropped after {polls} polls");
    }
}

/// Disarming and arming on one OS thread while another makes held calls: every call ends,
/// no slot is left taken.
#[test]
fn disarming_races_with_calls_on_two_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let layer = ChaosLayer::<u64, u64>::builder()
            .fault(Fault::hang().rate(0.5))
            .fault(Fault::latency(Latency::Fixed(Duration::from_secs(3600))).rate(0.5))
            .armed(true)
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(Echo::default());
        let switch = std::thread::spawn({
            let handle = handle.clone();
            move || {
                for _ in 0..2_000 {
                    handle.disarm();
                    handle.arm();
                }
                handle.disarm();
            }
        });
        let calls: Vec<_> = (0..200)
            .map(|n| tokio::spawn(svc.clone().oneshot(n)))
            .collect();
        switch.join().unwrap();
        // The last disarm released every held call; calls made after it pass untouched.
        for (n, call) in calls.into_iter().enumerate() {
            let answer = tokio::time::timeout(Duration::from_secs(10), call)
                .await
                .expect("no call stays held")
                .unwrap()
                .unwrap();
            assert_eq!(answer, n as u64);
        }
        assert_eq!(handle.stats().active, 0);
    });
}

/// Arming on one OS thread while another reads the state (which expires it): no deadlock,
/// and the layer ends disarmed once `auto_disarm_after` has passed.
#[test]
fn arming_races_with_expiry_on_two_threads() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::abort().rate(1.0))
        .auto_disarm_after(Duration::from_millis(1))
        .build()
        .unwrap();
    let handle = layer.handle();
    let reader = std::thread::spawn({
        let handle = handle.clone();
        move || {
            for _ in 0..5_000 {
                let _ = handle.is_armed();
            }
        }
    });
    for _ in 0..5_000 {
        handle.arm();
    }
    reader.join().unwrap();
    // Let the 1 ms pass on a paused clock rather than sleeping.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::advance(Duration::from_millis(5)).await;
        assert!(!handle.is_armed());
        assert!(!handle.stats().armed);
    });
}

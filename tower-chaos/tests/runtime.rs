//! Outside a tokio runtime, a fault that needs one (a timer) is not injected and holds no
//! slot; faults that need none still are.
#![cfg(feature = "inject")]

mod support;

use std::time::Duration;

use support::Echo;
use tokio_test::{assert_ready_ok, task};
use tower::{Layer, Service};
use tower_chaos::{ChaosLayer, Fault, Latency};

#[test]
fn a_delay_outside_a_runtime_is_not_injected_and_holds_no_slot() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(1))).rate(1.0))
        .max_active_faults(1)
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let echo = Echo::default();
    let mut svc = layer.layer(echo.clone());
    for n in 0..3 {
        // No runtime here: `call` must neither panic nor keep the only slot.
        let mut fut = task::spawn(svc.call(n));
        assert_eq!(assert_ready_ok!(fut.poll()), n);
        let stats = handle.stats();
        assert_eq!(stats.active, 0);
        assert_eq!(stats.overflow, 0);
        assert_eq!(stats.no_runtime, n + 1);
        assert_eq!(stats.injected(), 0);
    }
    assert_eq!(echo.seen(), 3);
}

#[test]
fn a_hang_outside_a_runtime_needs_no_timer() {
    // A hang needs no timer: it is injected, and released by the handle.
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::hang().rate(1.0))
        .max_active_faults(1)
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    let mut fut = task::spawn(svc.call(4));
    assert!(fut.poll().is_pending());
    assert_eq!(handle.stats().active, 1);
    handle.release_hung();
    assert_eq!(assert_ready_ok!(fut.poll()), 4);
    drop(fut);
    assert_eq!(handle.stats().active, 0);
}

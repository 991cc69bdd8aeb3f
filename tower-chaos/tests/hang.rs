//! A hung call resolves when released and frees everything when dropped.
#![cfg(feature = "inject")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt};
use tower_chaos::{ChaosLayer, Fault};

/// A future that answers at once when polled and records that it was dropped.
struct Tracked(Arc<AtomicBool>, u64);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
impl std::future::Future for Tracked {
    type Output = Result<u64, std::convert::Infallible>;
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(self.1))
    }
}

fn layer() -> ChaosLayer<u64, u64> {
    ChaosLayer::<u64, u64>::builder()
        .fault(Fault::hang().rate(1.0))
        .max_active_faults(1)
        .armed(true)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_hung_call_resolves_when_released() {
    let layer = layer();
    let handle = layer.handle();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let mut svc = layer.layer(tower::service_fn(move |n: u64| Tracked(flag.clone(), n)));
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(9));
    assert_pending!(fut.poll());
    tokio::time::advance(std::time::Duration::from_secs(3600)).await;
    assert_pending!(fut.poll(), "still hung an hour later");
    assert_eq!(handle.stats().active, 1);
    handle.release_hung();
    assert!(fut.is_woken());
    assert_eq!(
        assert_ready_ok!(fut.poll()),
        9,
        "released: the service's answer goes through"
    );
    drop(fut);
    assert_eq!(handle.stats().active, 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_hung_call_frees_everything() {
    let layer = layer();
    let handle = layer.handle();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let mut svc = layer.layer(tower::service_fn(move |n: u64| Tracked(flag.clone(), n)));
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(1));
    assert_pending!(fut.poll());
    assert_eq!(handle.stats().active, 1);
    assert_eq!(
        Arc::strong_count(&dropped),
        3,
        "the held call keeps the ready service"
    );
    drop(fut);
    assert!(
        !dropped.load(Ordering::SeqCst),
        "the service was never called: the request never left"
    );
    assert_eq!(
        Arc::strong_count(&dropped),
        2,
        "the held service is dropped with the call"
    );
    assert_eq!(
        handle.stats().active,
        0,
        "the active-fault slot is free again"
    );
    // The slot is usable: the next call hangs (it is not an overflow).
    svc.ready().await.unwrap();
    let mut next = task::spawn(svc.call(2));
    assert_pending!(next.poll());
    assert_eq!(handle.stats().overflow, 0);
    handle.release_hung();
    assert_eq!(assert_ready_ok!(next.poll()), 2);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_delayed_call_frees_its_slot_and_its_timer() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(
            Fault::latency(tower_chaos::Latency::Fixed(std::time::Duration::from_secs(
                60,
            )))
            .rate(1.0),
        )
        .max_active_faults(1)
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let mut svc = layer.layer(tower::service_fn(move |n: u64| Tracked(flag.clone(), n)));
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(1));
    assert_pending!(fut.poll());
    assert_eq!(handle.stats().active, 1);
    drop(fut);
    assert!(
        !dropped.load(Ordering::SeqCst),
        "dropped during its delay: the service was never called"
    );
    assert_eq!(
        Arc::strong_count(&dropped),
        2,
        "nor is the held service kept"
    );
    assert_eq!(handle.stats().active, 0);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_layer_state() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(
            Fault::abort()
                .rate(1.0)
                .schedule(tower_chaos::Schedule::FirstCalls(1)),
        )
        .armed(true)
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(|n: u64| async move {
        Ok::<_, std::convert::Infallible>(n)
    }));
    let first = svc.clone().oneshot(1).await;
    let second = svc.clone().oneshot(2).await;
    assert!(
        first.is_err(),
        "the first call after arming, whichever clone makes it"
    );
    assert_eq!(second.unwrap(), 2);
    assert_eq!(layer.handle().stats().calls, 2);
}

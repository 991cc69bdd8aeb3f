//! The concurrency compartment: reject or wait (FIFO, bounded), never reserve in `poll_ready`.

mod support;

use std::time::Duration;

use support::{Gate, reason, settle};
use tokio::time::advance;
use tower::{Service, ServiceExt};
use tower_bulkhead::{BulkheadLayer, Reason, Rejected};
use tower_layer::Layer;
use tower_test::mock;

#[tokio::test(start_paused = true)]
async fn a_full_compartment_rejects_at_once_by_default() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .name("db")
        .max_concurrent(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    for n in 0..2 {
        tokio::spawn(svc.clone().oneshot(n));
    }
    settle().await;
    assert_eq!(handle.in_flight(), 2);
    let err = svc.clone().oneshot(9).await.unwrap_err();
    let rejected = err.downcast_ref::<Rejected>().unwrap();
    assert_eq!(rejected.reason(), Reason::BulkheadFull);
    assert_eq!(rejected.name(), Some("db"));
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(
        gate.calls(),
        2,
        "the refused call never reached the inner service"
    );
    gate.finish(2);
    settle().await;
    assert_eq!(handle.in_flight(), 0);
    let again = tokio::spawn(svc.oneshot(3));
    settle().await;
    gate.finish(1);
    assert_eq!(again.await.unwrap().unwrap(), 3);
}

#[tokio::test]
async fn poll_ready_takes_no_permit() {
    let layer = BulkheadLayer::builder().max_concurrent(5).build().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::instant());
    // 100 connections' services polled ready, none called: hyper does this for idle
    // keep-alive connections.
    let mut idle = Vec::new();
    for _ in 0..100 {
        let mut s = svc.clone();
        s.ready().await.unwrap();
        idle.push(s);
    }
    assert_eq!(handle.in_flight(), 0);
    assert_eq!(svc.clone().oneshot(7).await.unwrap(), 7);
    assert_eq!(idle[42].call(8).await.unwrap(), 8);

    // tower's ConcurrencyLimit, by contrast, reserves in poll_ready: 5 idle services hoard
    // every permit and a sixth cannot get ready.
    let limit = tower::limit::ConcurrencyLimitLayer::new(5).layer(support::instant());
    let mut hoarders = Vec::new();
    for _ in 0..5 {
        let mut s = limit.clone();
        s.ready().await.unwrap();
        hoarders.push(s);
    }
    let mut sixth = tokio_test::task::spawn(limit.clone().oneshot(9));
    tokio_test::assert_pending!(sixth.poll());
    drop(hoarders);
    assert!(sixth.is_woken());
}

#[tokio::test]
async fn a_refused_call_does_not_poll_the_inner_service() {
    let layer = BulkheadLayer::builder().max_concurrent(1).build().unwrap();
    let (mut svc, mut inner) = mock::spawn_layer::<u64, u64, _>(layer);
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let first = tokio_test::task::spawn(svc.call(1));
    let (_, respond) = inner.next_request().await.unwrap();
    // The inner service is not ready at all now; the bulkhead is full.
    inner.allow(0);
    tokio_test::assert_ready_ok!(svc.poll_ready(), "ready without the inner service");
    let err = svc.call(2).await.unwrap_err();
    assert_eq!(reason(&err), Reason::BulkheadFull);
    respond.send_response(1);
    assert_eq!(first.await.unwrap(), 1);
}

/// Counts `poll_ready` calls over all its clones.
#[derive(Clone, Default)]
struct CountsReady(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Service<u64> for CountsReady {
    type Response = u64;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u64, std::io::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u64) -> Self::Future {
        std::future::ready(Ok(n))
    }
}

#[tokio::test]
async fn a_clone_does_not_inherit_readiness() {
    let inner = CountsReady::default();
    let polls = inner.0.clone();
    let mut svc = BulkheadLayer::new().layer(inner);
    svc.ready().await.unwrap();
    assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let mut clone = svc.clone();
    // The clone was never polled ready: its call drives its own inner service to readiness.
    assert_eq!(clone.call(2).await.unwrap(), 2);
    assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The original is still ready and calls its inner service at once.
    assert_eq!(svc.call(1).await.unwrap(), 1);
    assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_admitted_in_fifo_order() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(10))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let mut tasks = Vec::new();
    for n in 0..6 {
        tasks.push(tokio::spawn(svc.clone().oneshot(n)));
        settle().await;
    }
    assert_eq!(handle.in_flight(), 1);
    assert_eq!(handle.waiters(), 5);
    for done in 1..=6 {
        gate.finish(1);
        settle().await;
        assert_eq!(gate.calls(), (done + 1).min(6));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(*gate.order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(
        gate.max_in_flight.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_later_call_never_overtakes_a_waiter() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(10))
        .build()
        .unwrap();
    let svc = layer.layer(gate.service());
    let _first = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    let _waiter = tokio::spawn(svc.clone().oneshot(2));
    settle().await;
    gate.finish(1);
    // The slot freed goes to the waiter, even to a call arriving in the same instant.
    let _late = tokio::spawn(svc.clone().oneshot(3));
    settle().await;
    assert_eq!(*gate.order.lock().unwrap(), vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_wait_times_out_after_max_wait() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let _first = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    let waiter = tokio::spawn(svc.clone().oneshot(2));
    settle().await;
    assert_eq!(handle.waiters(), 1);
    advance(Duration::from_millis(1999)).await;
    settle().await;
    assert!(!waiter.is_finished());
    advance(Duration::from_millis(1)).await;
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!(reason(&err), Reason::WaitTimedOut);
    assert_eq!(handle.waiters(), 0);
    assert_eq!(gate.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_while_queued_leaves_the_queue_intact() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(10))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let _first = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    let a = tokio::spawn(svc.clone().oneshot(2));
    settle().await;
    let b = tokio::spawn(svc.clone().oneshot(3));
    settle().await;
    let c = tokio::spawn(svc.clone().oneshot(4));
    settle().await;
    assert_eq!(handle.waiters(), 3);
    b.abort();
    settle().await;
    assert_eq!(handle.waiters(), 2);
    gate.finish(3);
    assert_eq!(a.await.unwrap().unwrap(), 2);
    assert_eq!(c.await.unwrap().unwrap(), 4);
    assert_eq!(*gate.order.lock().unwrap(), vec![1, 2, 4]);
    assert_eq!((handle.in_flight(), handle.waiters()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_at_once() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(10))
        .max_waiters(2)
        .build()
        .unwrap();
    let svc = layer.layer(gate.service());
    let mut tasks = Vec::new();
    for n in 0..3 {
        tasks.push(tokio::spawn(svc.clone().oneshot(n)));
        settle().await;
    }
    let err = svc.clone().oneshot(9).await.unwrap_err();
    assert_eq!(reason(&err), Reason::BulkheadFull);
    gate.finish(3);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn shrinking_25_to_5_with_25_in_flight_returns_at_once_and_drains() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder().max_concurrent(25).build().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    for n in 0..25 {
        tokio::spawn(svc.clone().oneshot(n));
    }
    settle().await;
    assert_eq!(handle.in_flight(), 25);
    handle.set_max_concurrent(5).unwrap(); // returns at once, cancels nothing
    assert_eq!((handle.in_flight(), gate.in_flight()), (25, 25));
    assert_eq!(
        reason(&svc.clone().oneshot(100).await.unwrap_err()),
        Reason::BulkheadFull
    );
    gate.finish(20);
    settle().await;
    assert_eq!(handle.in_flight(), 5);
    assert_eq!(
        reason(&svc.clone().oneshot(100).await.unwrap_err()),
        Reason::BulkheadFull
    );
    gate.finish(1);
    settle().await;
    assert_eq!(handle.in_flight(), 4);
    let admitted = tokio::spawn(svc.clone().oneshot(100));
    settle().await;
    assert_eq!(handle.in_flight(), 5);
    assert_eq!(
        reason(&svc.clone().oneshot(100).await.unwrap_err()),
        Reason::BulkheadFull
    );
    gate.finish(5);
    assert_eq!(admitted.await.unwrap().unwrap(), 100);
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_admits_waiters() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(10))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    for n in 0..3 {
        tokio::spawn(svc.clone().oneshot(n));
        settle().await;
    }
    assert_eq!((handle.in_flight(), handle.waiters()), (1, 2));
    handle.set_max_concurrent(3).unwrap();
    settle().await;
    assert_eq!((handle.in_flight(), handle.waiters()), (3, 0));
    gate.finish(3);
}

#[tokio::test(start_paused = true)]
async fn a_budget_refusal_leaves_nothing_reserved_downstream() {
    let layer = BulkheadLayer::builder()
        .refill(1, Duration::from_secs(3600))
        .build()
        .unwrap();
    let inner = tower::limit::ConcurrencyLimit::new(support::instant(), 1);
    let svc = layer.layer(inner);
    let mut connections: Vec<_> = (0..3).map(|_| svc.clone()).collect();
    // The first connection spends the only token.
    connections[0].ready().await.unwrap().call(1).await.unwrap();
    for connection in &mut connections {
        // Ready (the inner permit taken), then refused by the budget: the inner permit must
        // not stay with this connection, or the next one would never be ready.
        let mut ready =
            tokio_test::task::spawn(std::future::poll_fn(|cx| connection.poll_ready(cx)));
        tokio_test::assert_ready!(ready.poll()).unwrap();
        drop(ready);
        let err = connection.call(1).await.unwrap_err();
        assert_eq!(reason(&err), Reason::BudgetExhausted);
    }
    let mut other = svc.clone();
    let mut ready = tokio_test::task::spawn(std::future::poll_fn(|cx| other.poll_ready(cx)));
    tokio_test::assert_ready!(ready.poll()).unwrap();
}

//! A dropped response future gives back everything it holds, in every state.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::ServiceExt;
use tower_bulkhead::{BulkheadHandle, BulkheadLayer};
use tower_layer::Layer;
use tower_test::mock;

const HOUR: Duration = Duration::from_secs(3600);

fn layer() -> tower_bulkhead::BulkheadLayer<impl Fn(&u64) -> u64 + Clone> {
    BulkheadLayer::builder()
        .max_concurrent(1)
        .token_budget(100)
        .refill(1000, HOUR)
        .max_wait(Duration::from_secs(10))
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap()
}

#[track_caller]
fn assert_whole(handle: &BulkheadHandle) {
    assert_eq!(handle.in_flight(), 0, "slots");
    assert_eq!(handle.waiters(), 0, "queue");
    assert_eq!(handle.tokens_in_use(), Some(0), "in-flight budget");
    assert_eq!(handle.rate_tokens_available(), Some(1000), "rate budget");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_in_flight_gives_back_its_slot_and_in_flight_tokens() {
    let layer = layer();
    let handle = layer.handle();
    let (mut svc, mut inner) = mock::spawn_layer::<u64, u64, _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut call = task::spawn(svc.call(60));
    assert_pending!(call.poll());
    let _request = inner.next_request().await.unwrap();
    assert_eq!(
        (
            handle.in_flight(),
            handle.tokens_in_use(),
            handle.rate_tokens_available()
        ),
        (1, Some(60), Some(940))
    );
    drop(call);
    assert_eq!(handle.in_flight(), 0, "slots");
    assert_eq!(handle.tokens_in_use(), Some(0), "in-flight budget");
    assert_eq!(handle.rate_tokens_available(), Some(940), "sent: spent");
}

#[tokio::test(start_paused = true)]
async fn dropping_an_admitted_call_whose_inner_service_is_not_ready_gives_everything_back() {
    let layer = layer();
    let handle = layer.handle();
    let (mut svc, mut inner) = mock::spawn_layer::<u64, u64, _>(layer);
    inner.allow(0);
    // The inner service is not ready: poll_ready says so (backpressure), reserving nothing.
    assert_pending!(svc.poll_ready());
    assert_whole(&handle);
    // A clone that never polled: its call is admitted and drives the inner service itself.
    let mut clone = svc.clone();
    let mut call = task::spawn(clone.call(60));
    assert_pending!(call.poll());
    assert_eq!(handle.in_flight(), 1);
    drop(call);
    assert_whole(&handle);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_call_leaves_the_queue() {
    let layer = layer();
    let handle = layer.handle();
    let (mut svc, mut inner) = mock::spawn_layer::<u64, u64, _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut first = task::spawn(svc.call(10));
    assert_pending!(first.poll());
    let (_, respond) = inner.next_request().await.unwrap();
    assert_ready_ok!(svc.poll_ready());
    let mut waiting = task::spawn(svc.call(20));
    assert_pending!(waiting.poll());
    assert_eq!(handle.waiters(), 1);
    drop(waiting);
    assert_eq!(handle.waiters(), 0);
    respond.send_response(10);
    assert_eq!(first.await.unwrap(), 10);
    assert_eq!(handle.rate_tokens_available(), Some(990));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiter_granted_but_not_yet_polled_gives_the_grant_back() {
    let layer = layer();
    let handle = layer.handle();
    let (mut svc, mut inner) = mock::spawn_layer::<u64, u64, _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut first = task::spawn(svc.call(10));
    assert_pending!(first.poll());
    let (_, respond) = inner.next_request().await.unwrap();
    assert_ready_ok!(svc.poll_ready());
    let mut waiting = task::spawn(svc.call(50));
    assert_pending!(waiting.poll());
    respond.send_response(10);
    first.await.unwrap();
    // The slot went to the waiter at once; its future has not run since.
    assert!(waiting.is_woken());
    assert_eq!(
        (handle.in_flight(), handle.waiters(), handle.tokens_in_use()),
        (1, 0, Some(50))
    );
    drop(waiting);
    assert_eq!(handle.in_flight(), 0);
    assert_eq!(handle.tokens_in_use(), Some(0));
    assert_eq!(
        handle.rate_tokens_available(),
        Some(990),
        "only the first call spent"
    );
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_calls_with_random_drops_and_timeouts_leave_the_capacity_whole() {
    const LIMIT: usize = 8;
    const BUDGET: u64 = 400;
    // No refill during the test (a token per 1000 s): the budget only counts what was sent.
    const BURST: u64 = 2_000_000;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(AtomicU64::new(0));
    let max_tokens = Arc::new(AtomicU64::new(0));
    // What reached the inner service: spent, whether its caller waited for the answer or not.
    let sent = Arc::new(AtomicU64::new(0));
    let inner = {
        let sent = sent.clone();
        let (in_flight, max_in_flight) = (in_flight.clone(), max_in_flight.clone());
        let (tokens, max_tokens) = (tokens.clone(), max_tokens.clone());
        tower::service_fn(move |(cost, sleep_ms): (u64, u64)| {
            let (in_flight, max_in_flight) = (in_flight.clone(), max_in_flight.clone());
            let (tokens, max_tokens) = (tokens.clone(), max_tokens.clone());
            sent.fetch_add(cost, SeqCst);
            async move {
                // A drop guard: a cancelled inner call must be counted out too.
                struct Out(Arc<AtomicUsize>, Arc<AtomicU64>, u64);
                impl Drop for Out {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, SeqCst);
                        self.1.fetch_sub(self.2, SeqCst);
                    }
                }
                max_in_flight.fetch_max(in_flight.fetch_add(1, SeqCst) + 1, SeqCst);
                max_tokens.fetch_max(tokens.fetch_add(cost, SeqCst) + cost, SeqCst);
                let _out = Out(in_flight, tokens, cost);
                tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
                Ok::<_, std::io::Error>(cost)
            }
        })
    };
    let layer = BulkheadLayer::builder()
        .max_concurrent(LIMIT as u32)
        .token_budget(BUDGET)
        .refill(1, Duration::from_secs(1000))
        .burst_tokens(BURST)
        .max_wait(Duration::from_millis(5))
        .max_waiters(32)
        .cost(|request: &(u64, u64)| request.0)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(inner);
    let spent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut rng = fastrand::Rng::with_seed(0xb01d_face);
    let mut tasks = Vec::new();
    for i in 0..10_000 {
        let request = (rng.u64(0..=120), rng.u64(0..20));
        let limit = Duration::from_millis(rng.u64(1..30));
        let svc = svc.clone();
        let (spent, refused) = (spent.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            match tokio::time::timeout(limit, svc.oneshot(request)).await {
                Ok(Ok(cost)) => drop(spent.fetch_add(cost, SeqCst)),
                Ok(Err(_)) => drop(refused.fetch_add(1, SeqCst)),
                Err(_) => {}
            }
        }));
        if rng.u8(0..10) == 0 {
            let victim = rng.usize(0..tasks.len());
            tasks[victim].abort();
        }
        if i % 25 == 0 {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..8))).await;
            assert!(handle.in_flight() as usize <= LIMIT);
            assert!(handle.tokens_in_use().unwrap() <= BUDGET);
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    assert!(
        max_in_flight.load(SeqCst) <= LIMIT,
        "in flight never above the limit"
    );
    assert!(
        max_tokens.load(SeqCst) <= BUDGET,
        "tokens never above the budget"
    );
    assert_eq!(in_flight.load(SeqCst), 0);
    assert_eq!(handle.in_flight(), 0);
    assert_eq!(handle.waiters(), 0);
    assert_eq!(handle.tokens_in_use(), Some(0));
    assert!(sent.load(SeqCst) >= spent.load(SeqCst));
    let expected = BURST - sent.load(SeqCst);
    assert_eq!(handle.rate_tokens_available(), Some(expected as i64));
    assert!(spent.load(SeqCst) > 0);
    assert!(
        refused.load(SeqCst) > 0,
        "the compartment was full at times"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_after_it_reached_the_inner_service_has_spent_its_rate_tokens() {
    let layer = layer();
    let handle = layer.handle();
    let (mut svc, mut inner) = mock::spawn_layer::<u64, u64, _>(layer);
    assert_ready_ok!(svc.poll_ready());
    let mut call = task::spawn(svc.call(60));
    assert_pending!(call.poll());
    // The request reached the upstream: the client disconnecting does not undo it.
    let _request = inner.next_request().await.unwrap();
    drop(call);
    assert_eq!(handle.rate_tokens_available(), Some(940), "spent once sent");
    assert_eq!(
        (handle.in_flight(), handle.tokens_in_use()),
        (0, Some(0)),
        "the slot and in-flight tokens come back"
    );
}

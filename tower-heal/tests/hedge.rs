//! Hedging: a copy of a slow request wins, the loser is cancelled, the budget bounds copies.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_heal::{HedgeLayer, RetryBudget};

use support::call;

/// Sets a flag when dropped before it finished.
struct Cancelled(Arc<AtomicUsize>, bool);

impl Drop for Cancelled {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The first call takes `first`, every later one `later`; counts calls and cancellations.
fn slow_then_fast(
    first: Duration,
    later: Duration,
) -> (
    impl tower::Service<u32, Response = &'static str, Error = std::io::Error, Future = impl Send>
    + Clone,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let (c, x) = (calls.clone(), cancelled.clone());
    let svc = tower::service_fn(move |_: u32| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        let guard = Cancelled(x.clone(), false);
        async move {
            let mut guard = guard;
            tokio::time::sleep(if n == 0 { first } else { later }).await;
            guard.1 = true;
            Ok::<_, std::io::Error>(if n == 0 { "first" } else { "hedge" })
        }
    });
    (svc, calls, cancelled)
}

#[tokio::test(start_paused = true)]
async fn a_hedge_wins_against_a_slow_first_attempt_and_the_loser_is_cancelled() {
    let (inner, calls, cancelled) =
        slow_then_fast(Duration::from_secs(10), Duration::from_millis(10));
    let layer = HedgeLayer::builder()
        .delay(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    let start = Instant::now();
    assert_eq!(call(&mut svc, 1).await.unwrap(), "hedge");
    assert_eq!(start.elapsed(), Duration::from_millis(110));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        cancelled.load(Ordering::SeqCst),
        1,
        "the slow first attempt was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fast_answer_sends_no_hedge() {
    let (inner, calls, cancelled) =
        slow_then_fast(Duration::from_millis(50), Duration::from_millis(10));
    let layer = HedgeLayer::builder()
        .delay(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    assert_eq!(call(&mut svc, 1).await.unwrap(), "first");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cancelled.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn hedges_count_against_the_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = tower::service_fn(move |_: u32| {
        c.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(())
        }
    });
    // A reserve of exactly two copies, no deposits.
    let layer = HedgeLayer::builder()
        .delay(Duration::from_millis(100))
        .max_hedges(3)
        .budget(
            RetryBudget::new()
                .ratio(0.0)
                .min_per_second(2)
                .ttl(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    call(&mut svc, 1).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two copies, then the budget refused"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hedge_shares_a_retry_layers_budget() {
    let retry = tower_heal::RetryLayer::builder()
        .budget(RetryBudget::new().ratio(0.0).min_per_second(0))
        .build()
        .unwrap();
    let (inner, calls, _) = slow_then_fast(Duration::from_secs(10), Duration::from_millis(10));
    let layer = HedgeLayer::builder()
        .delay(Duration::from_millis(100))
        .share_budget_with(&retry)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    assert_eq!(
        call(&mut svc, 1).await.unwrap(),
        "first",
        "no budget: no copy"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_post_is_not_hedged_by_the_http_layer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = tower::service_fn(move |_: http::Request<()>| {
        c.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(http::Response::new(()))
        }
    });
    let layer = HedgeLayer::builder()
        .http_client()
        .delay(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(inner);
    call(&mut svc, http::Request::post("/").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    call(&mut svc, http::Request::get("/").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the GET got a copy");
}

#[tokio::test(start_paused = true)]
async fn a_percentile_delay_follows_the_latencies_seen() {
    let inner = tower::service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, std::io::Error>(ms)
    });
    let layer = HedgeLayer::builder()
        .percentile(90.0, Duration::from_millis(1), Duration::from_secs(2))
        .no_budget()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer.clone()).service(inner);
    assert_eq!(layer.current_delay(), Duration::from_secs(2));
    for i in 0..200 {
        call(&mut svc, 10 + i % 10).await.unwrap();
    }
    let d = layer.current_delay();
    assert!(
        d >= Duration::from_millis(18) && d <= Duration::from_millis(24),
        "{d:?}"
    );
}

/// A copy that is due while the service is not ready is not charged: the budget pays only for
/// copies sent. Seen failing before the fix: the first call's unsent copy spent the one
/// retry of the budget, and the second call's copy was refused.
#[tokio::test(start_paused = true)]
async fn only_a_hedge_actually_sent_is_charged() {
    use tower::{Layer, Service, ServiceExt};

    let (mock, mut handle) = tower_test::mock::pair::<u32, u32>();
    let layer = HedgeLayer::builder()
        .delay(Duration::from_millis(100))
        .budget(
            RetryBudget::new()
                .ratio(0.0)
                .min_per_second(1)
                .ttl(Duration::from_secs(1)),
        ) // exactly one copy
        .build()
        .unwrap();
    let mut svc = layer.layer(mock);

    // The first call: its copy is due while the service has no capacity.
    handle.allow(1);
    svc.ready().await.unwrap();
    let mut first = tokio_test::task::spawn(svc.call(1));
    assert!(first.poll().is_pending());
    let (_, primary) = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_millis(150)).await;
    assert!(first.poll().is_pending(), "the copy waits for readiness");
    primary.send_response(10);
    assert_eq!(first.await.unwrap(), 10);

    // The second call: ready, so its copy is sent, paid by the budget's one retry.
    handle.allow(2);
    svc.ready().await.unwrap();
    let mut second = tokio_test::task::spawn(svc.call(2));
    assert!(second.poll().is_pending());
    let (_, _primary) = handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_millis(150)).await;
    assert!(second.poll().is_pending());
    let (copy, answer) = tokio::time::timeout(Duration::from_millis(1), handle.next_request())
        .await
        .expect("the copy was sent")
        .unwrap();
    assert_eq!(copy, 2);
    answer.send_response(20);
    assert_eq!(second.await.unwrap(), 20);
}

/// A copy sends the request twice: the default gate hedges a GET but not a POST.
#[tokio::test(start_paused = true)]
async fn the_default_gate_does_not_hedge_a_post() {
    use tower::{Service, ServiceExt};

    for (method, sent) in [(http::Method::GET, 2), (http::Method::POST, 1)] {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let inner = tower::service_fn(move |_: http::Request<String>| {
            c.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, std::io::Error>(http::Response::new(String::new()))
            }
        });
        let layer = HedgeLayer::builder()
            .delay(Duration::from_millis(100))
            .no_budget()
            .build()
            .unwrap();
        let mut svc = ServiceBuilder::new().layer(layer).service(inner);
        let req = http::Request::builder()
            .method(method.clone())
            .uri("/orders")
            .body(String::new())
            .unwrap();
        svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), sent, "{method}");
    }
}

//! The retry layer over a plain service: delays, counts, seeds, cancellation, limits.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_heal::{Backoff, Class, ClassPolicy, Jitter, RetryEvent, RetryLayer};

use support::{Flaky, Script};

fn no_jitter() -> tower_heal::RetryBuilder {
    RetryLayer::builder()
        .initial_delay(Duration::from_secs(1))
        .max_delay(Duration::from_secs(60))
        .jitter(Jitter::None)
        .no_budget()
}

#[tokio::test(start_paused = true)]
async fn exponential_back_off_waits_1_2_4_seconds_without_jitter() {
    let script = Script::new([Err("down"), Err("down"), Err("down"), Ok(7)]);
    let mut svc = ServiceBuilder::new()
        .layer(no_jitter().max_retries(3).build().unwrap())
        .service(Flaky(script.clone()));
    assert_eq!(support::call(&mut svc, ()).await.unwrap(), 7);
    assert_eq!(script.gaps_ms(), [1000, 2000, 4000]);
}

#[tokio::test(start_paused = true)]
async fn max_retries_is_enforced_and_the_last_error_returned() {
    let script = Script::new([Err("down")]);
    let mut svc = ServiceBuilder::new()
        .layer(no_jitter().max_retries(2).build().unwrap())
        .service(Flaky(script.clone()));
    let err = support::call(&mut svc, ()).await.unwrap_err();
    assert_eq!(err.to_string(), "down");
    assert_eq!(script.count(), 3, "1 + max_retries attempts");
}

#[tokio::test(start_paused = true)]
async fn a_success_is_not_retried() {
    let script = Script::new([Ok(1)]);
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .service(Flaky(script.clone()));
    assert_eq!(support::call(&mut svc, ()).await.unwrap(), 1);
    assert_eq!(script.count(), 1);
}

async fn delays_with_seed(seed: u64) -> Vec<Duration> {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let seen = delays.clone();
    let layer = RetryLayer::builder()
        .max_retries(4)
        .seed(seed)
        .no_budget()
        .on_retry(move |e: &RetryEvent<'_>| seen.lock().unwrap().push(e.delay))
        .build()
        .unwrap();
    for _ in 0..3 {
        let mut svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(Flaky(Script::new([Err("down")])));
        let _ = support::call(&mut svc, ()).await;
    }
    let delays = delays.lock().unwrap().clone();
    assert_eq!(delays.len(), 12);
    delays
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_delays_another_seed_others() {
    let a = delays_with_seed(1).await;
    assert_eq!(a, delays_with_seed(1).await);
    assert_ne!(a, delays_with_seed(2).await);
}

#[tokio::test(start_paused = true)]
async fn cancellation_during_back_off_makes_no_further_attempt() {
    let script = Script::new([Err("down")]);
    let mut svc = ServiceBuilder::new()
        .layer(no_jitter().max_retries(5).build().unwrap())
        .service(Flaky(script.clone()));
    let future = support::start(&mut svc, ()).await;
    // The first attempt fails at once; the future is dropped 500 ms into its 1 s back-off.
    let outcome = tokio::time::timeout(Duration::from_millis(500), future).await;
    assert!(outcome.is_err(), "still backing off");
    assert_eq!(script.count(), 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(script.count(), 1, "no attempt after the future was dropped");
}

#[tokio::test(start_paused = true)]
async fn max_total_delay_stops_a_back_off_that_would_overrun_it() {
    let script = Script::new([Err("down")]);
    let start = Instant::now();
    let mut svc = ServiceBuilder::new()
        .layer(
            no_jitter()
                .max_retries(10)
                .max_total_delay(Duration::from_secs(5))
                .build()
                .unwrap(),
        )
        .service(Flaky(script.clone()));
    let _ = support::call(&mut svc, ()).await;
    // 1 + 2 = 3 s slept; the next 4 s would make 7 > 5: not started.
    assert_eq!(script.gaps_ms(), [1000, 2000]);
    assert_eq!(start.elapsed(), Duration::from_secs(3), "returned at once");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_stops_a_back_off_that_would_overrun_it() {
    use tower_heal::{AnyRequestWithDeadline, Deadline};
    let script = Script::new([Err("down")]);
    let mut svc = ServiceBuilder::new()
        .layer(
            no_jitter()
                .max_retries(10)
                .gate(AnyRequestWithDeadline)
                .build()
                .unwrap(),
        )
        .service(Flaky(script.clone()));
    let mut request = http::Request::new(());
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(3500)));
    let _ = support::call(&mut svc, request).await;
    assert_eq!(script.gaps_ms(), [1000, 2000]);
}

#[tokio::test(start_paused = true)]
async fn a_class_policy_overrides_the_default() {
    const FLAKY: Class = Class::new("network_error");
    let script = Script::new([Err("down")]);
    let mut svc = ServiceBuilder::new()
        .layer(
            no_jitter()
                .max_retries(1)
                .policy(
                    FLAKY,
                    ClassPolicy::new(4, Backoff::fixed(Duration::from_millis(250))),
                )
                .build()
                .unwrap(),
        )
        .service(Flaky(script.clone()));
    let _ = support::call(&mut svc, ()).await;
    assert_eq!(script.gaps_ms(), [250, 250, 250, 250]);
}

#[tokio::test(start_paused = true)]
async fn a_predicate_gate_keeps_some_requests_from_retrying() {
    let script = Script::new([Err("down")]);
    let mut svc = ServiceBuilder::new()
        .layer(
            no_jitter()
                .retry_if(|order: &&str| *order != "charge")
                .build()
                .unwrap(),
        )
        .service(Flaky(script.clone()));
    let _ = support::call(&mut svc, "charge").await;
    assert_eq!(script.count(), 1);
    let _ = support::call(&mut svc, "read").await;
    assert_eq!(script.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_clone_does_not_inherit_readiness_and_retries_poll_ready_first() {
    let (mock, mut handle) = tower_test::mock::pair::<(), u32>();
    let mut svc = ServiceBuilder::new()
        .layer(no_jitter().max_retries(1).build().unwrap())
        .service(mock);
    handle.allow(1);
    let future = tokio::spawn(support::start(&mut svc, ()).await);
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::other("reset"));
    // The retry waits 1 s, then for the mock to become ready again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!future.is_finished());
    handle.allow(1);
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(5);
    assert_eq!(future.await.unwrap().unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempts_response_is_dropped_before_the_back_off() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower_heal::{Class, Failure, FnClasses};

    /// A response that counts its drops; `ok` says whether it is a good one.
    struct Answer {
        ok: bool,
        drops: Arc<AtomicUsize>,
    }
    impl Drop for Answer {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (d, c) = (drops.clone(), calls.clone());
    let inner = tower::service_fn(move |_: ()| {
        let ok = c.fetch_add(1, Ordering::SeqCst) > 0;
        let drops = d.clone();
        async move { Ok::<_, std::io::Error>(Answer { ok, drops }) }
    });
    let classes = FnClasses::new(|r: &Result<Answer, std::io::Error>| match r {
        Ok(answer) if answer.ok => None,
        _ => Some(Failure::new(Class::API_ERRORS_5XX)),
    });
    let mut svc = ServiceBuilder::new()
        .layer(no_jitter().classifier(classes).build().unwrap())
        .service(inner);
    let future = tokio::spawn(support::start(&mut svc, ()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "backing off");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the failed response is already dropped"
    );
    let answer = future.await.unwrap().unwrap();
    assert!(answer.ok);
}

#[tokio::test(start_paused = true)]
async fn a_family_rejection_without_retry_after_is_returned_at_once() {
    use tower_heal::Rejected;
    use tower_heal::{LayerKind, Reason};
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    let inner = tower::service_fn(move |_: ()| {
        *c.lock().unwrap() += 1;
        async {
            Err::<u32, tower_heal::BoxError>(Box::new(Rejected::new(
                LayerKind::Bulkhead,
                Reason::BulkheadFull,
            )))
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(no_jitter().build().unwrap())
        .service(inner);
    let err = support::call(&mut svc, ()).await.unwrap_err();
    assert!(err.downcast_ref::<Rejected>().is_some());
    assert_eq!(*calls.lock().unwrap(), 1);
}

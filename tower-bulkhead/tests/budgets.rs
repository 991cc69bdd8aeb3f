//! Token budgets: in flight (held, given back) and per period (spent, refilled), estimate →
//! reserve → settle.

mod support;

use std::convert::Infallible;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use support::{Gate, reason, settle};
use tokio::time::advance;
use tower::ServiceExt;
use tower_bulkhead::{BulkheadLayer, HeaderCost, Reason, Rejected};
use tower_layer::Layer;
use tower_test::mock;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn rate_budget_1000_refuses_the_third_400_until_the_first_settles_to_100() {
    let layer = BulkheadLayer::builder()
        .refill(1000, HOUR)
        .cost(|estimate: &u64| *estimate)
        .actual_cost(|actual: &u64| Some(*actual))
        .build()
        .unwrap();
    let handle = layer.handle();
    let (mut svc, mut inner) = mock::spawn_layer::<u64, u64, _>(layer);

    tokio_test::assert_ready_ok!(svc.poll_ready());
    let first = tokio::spawn(svc.call(400));
    let (_, first_respond) = inner.next_request().await.unwrap();
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let second = tokio::spawn(svc.call(400));
    let (_, second_respond) = inner.next_request().await.unwrap();
    assert_eq!(handle.rate_tokens_available(), Some(200));

    tokio_test::assert_ready_ok!(svc.poll_ready());
    let err = svc.call(400).await.unwrap_err();
    assert_eq!(reason(&err), Reason::BudgetExhausted);

    // The first call's response says it cost 100: 300 come back.
    first_respond.send_response(100);
    assert_eq!(first.await.unwrap().unwrap(), 100);
    assert_eq!(handle.rate_tokens_available(), Some(500));
    tokio_test::assert_ready_ok!(svc.poll_ready());
    let third = tokio::spawn(svc.call(400));
    let (_, third_respond) = inner.next_request().await.unwrap();
    assert_eq!(handle.rate_tokens_available(), Some(100));

    // Without an actual cost the estimate stands; spent tokens do not come back.
    second_respond.send_response(400);
    third_respond.send_response(400);
    second.await.unwrap().unwrap();
    third.await.unwrap().unwrap();
    assert_eq!(handle.rate_tokens_available(), Some(100));
}

#[tokio::test(start_paused = true)]
async fn a_request_above_the_capacity_fails_fast_and_leaves_the_budget_untouched() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .token_budget(1000)
        .refill(1000, HOUR)
        .max_wait(Duration::from_secs(30)) // never queued, even with waiting on
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let err = svc.clone().oneshot(1500).await.unwrap_err();
    let rejected = err.downcast_ref::<Rejected>().unwrap();
    assert_eq!(rejected.reason(), Reason::CostExceedsCapacity);
    assert_eq!(rejected.retry_after(), None);
    assert_eq!(handle.rate_tokens_available(), Some(1000));
    assert_eq!(handle.tokens_in_use(), Some(0));
    assert_eq!(
        (handle.in_flight(), handle.waiters(), gate.calls()),
        (0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_budget_refills_continuously_up_to_its_burst() {
    let layer = BulkheadLayer::builder()
        .refill(100, Duration::from_secs(1))
        .burst_tokens(250)
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::instant());
    assert_eq!(handle.rate_tokens_available(), Some(250), "starts full");
    svc.clone().oneshot(250).await.unwrap();
    // The call ended; its tokens were spent, not given back.
    assert_eq!(handle.rate_tokens_available(), Some(0));
    assert_eq!(
        reason(&svc.clone().oneshot(1).await.unwrap_err()),
        Reason::BudgetExhausted
    );
    // 100 per second: a token every 10 ms, counted whole.
    advance(Duration::from_millis(9)).await;
    assert_eq!(handle.rate_tokens_available(), Some(0));
    advance(Duration::from_millis(1)).await;
    assert_eq!(handle.rate_tokens_available(), Some(1));
    advance(Duration::from_millis(990)).await;
    assert_eq!(handle.rate_tokens_available(), Some(100));
    advance(Duration::from_secs(1)).await;
    assert_eq!(handle.rate_tokens_available(), Some(200));
    advance(Duration::from_secs(5)).await;
    assert_eq!(
        handle.rate_tokens_available(),
        Some(250),
        "never beyond the burst"
    );
    svc.clone().oneshot(100).await.unwrap();
    assert_eq!(handle.rate_tokens_available(), Some(150));
}

#[tokio::test(start_paused = true)]
async fn an_in_flight_budgets_tokens_come_back_when_calls_end() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .token_budget(1000)
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let first = tokio::spawn(svc.clone().oneshot(600));
    settle().await;
    assert_eq!(handle.tokens_in_use(), Some(600));
    assert_eq!(
        reason(&svc.clone().oneshot(600).await.unwrap_err()),
        Reason::BudgetExhausted
    );
    // A refusal by the budget took no slot.
    assert_eq!(handle.in_flight(), 1);
    // A zero-cost request is admitted.
    let free = tokio::spawn(svc.clone().oneshot(0));
    settle().await;
    assert_eq!(handle.in_flight(), 2);
    gate.finish(2);
    first.await.unwrap().unwrap();
    free.await.unwrap().unwrap();
    assert_eq!(handle.tokens_in_use(), Some(0));
    let again = tokio::spawn(svc.clone().oneshot(600));
    settle().await;
    assert_eq!(handle.tokens_in_use(), Some(600));
    gate.finish(1);
    again.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refusal_by_one_limit_takes_nothing_from_the_others() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(2)
        .token_budget(1000)
        .refill(500, HOUR)
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let held = tokio::spawn(svc.clone().oneshot(400));
    settle().await;
    // The rate budget refuses (400 + 200 > 500): no slot, no in-flight token taken.
    assert_eq!(
        reason(&svc.clone().oneshot(200).await.unwrap_err()),
        Reason::BudgetExhausted
    );
    assert_eq!((handle.in_flight(), handle.tokens_in_use()), (1, Some(400)));
    assert_eq!(handle.rate_tokens_available(), Some(100));
    // The in-flight budget refuses (400 + 700 > 1000): the rate budget keeps its tokens.
    handle.set_refill(2000, 2000).unwrap();
    let level = handle.rate_tokens_available();
    assert_eq!(
        reason(&svc.clone().oneshot(700).await.unwrap_err()),
        Reason::BudgetExhausted
    );
    assert_eq!(handle.rate_tokens_available(), level);
    assert_eq!((handle.in_flight(), handle.tokens_in_use()), (1, Some(400)));
    // The concurrency limit refuses: no tokens taken.
    let second = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    let level = handle.rate_tokens_available();
    assert_eq!(
        reason(&svc.clone().oneshot(5).await.unwrap_err()),
        Reason::BulkheadFull
    );
    assert_eq!(handle.rate_tokens_available(), level);
    assert_eq!(handle.tokens_in_use(), Some(401));
    gate.finish(2);
    held.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_actual_cost_above_the_estimate_is_carried_as_debt() {
    let layer = BulkheadLayer::builder()
        .refill(100, Duration::from_secs(1))
        .cost(|_: &u64| 100)
        .actual_cost(|actual: &u64| Some(*actual))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::instant());
    svc.clone().oneshot(250).await.unwrap();
    assert_eq!(handle.rate_tokens_available(), Some(-150));
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        reason(&svc.clone().oneshot(100).await.unwrap_err()),
        Reason::BudgetExhausted
    );
    advance(Duration::from_secs(2)).await;
    assert_eq!(handle.rate_tokens_available(), Some(100));
    svc.clone().oneshot(100).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn twenty_requests_of_100_against_1000_never_exceed_10_in_flight_and_settle_exactly() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .token_budget(1000)
        .refill(5000, HOUR)
        .max_wait(Duration::from_secs(60))
        .cost(|_: &u64| 100)
        // The responses say each call cost 120.
        .actual_cost(|_: &u64| Some(120))
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let tasks: Vec<_> = (0..20)
        .map(|_| tokio::spawn(svc.clone().oneshot(100)))
        .collect();
    settle().await;
    assert_eq!((gate.in_flight(), handle.waiters()), (10, 10));
    for _ in 0..20 {
        gate.finish(1);
        settle().await;
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert!(gate.max_in_flight.load(SeqCst) <= 10);
    assert!(gate.max_tokens.load(SeqCst) <= 1000);
    assert_eq!(gate.calls(), 20);
    assert_eq!(handle.tokens_in_use(), Some(0));
    assert_eq!(handle.rate_tokens_available(), Some(5000 - 20 * 120));
    assert_eq!((handle.in_flight(), handle.waiters()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_rate_budget_answers_429_with_the_time_until_refill() {
    let layer = BulkheadLayer::builder()
        .name("tpm")
        .refill(100, Duration::from_secs(10))
        .cost(HeaderCost::new("x-estimated-tokens"))
        .http()
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(String::new()))
    }));
    let request = |tokens: u64| {
        http::Request::builder()
            .header("x-estimated-tokens", tokens)
            .body(())
            .unwrap()
    };
    assert_eq!(
        svc.clone().oneshot(request(100)).await.unwrap().status(),
        200
    );
    advance(Duration::from_secs(3)).await;
    // 30 tokens are back; 20 more take 2 s.
    let res = svc.clone().oneshot(request(50)).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "2");
    let res = svc.clone().oneshot(request(100)).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "7", "70 more take 7 s");
    let res = svc.clone().oneshot(request(100)).await.unwrap();
    assert_eq!(res.status(), 429);
    let res = BulkheadLayer::builder()
        .refill(100, Duration::from_secs(10))
        .burst_tokens(200)
        .cost(HeaderCost::new("x-estimated-tokens"))
        .http()
        .build()
        .unwrap()
        .layer(tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(String::new()))
        }))
        .oneshot(request(300))
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "a cost above the burst can never fit");
}

type Frames = tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, Infallible>>;

#[tokio::test(start_paused = true)]
async fn an_in_flight_budget_settled_higher_while_a_body_streams_holds_the_higher_cost_until_the_end()
 {
    let (frames, receiver) = tokio::sync::mpsc::channel(4);
    let receiver = std::sync::Arc::new(std::sync::Mutex::new(Some(receiver)));
    let inner = tower::service_fn(move |_: http::Request<()>| {
        let receiver = receiver.lock().unwrap().take().unwrap();
        async move {
            let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(receiver));
            Ok::<_, Infallible>(
                http::Response::builder()
                    .header("x-usage-tokens", "700")
                    .body(body)
                    .unwrap(),
            )
        }
    });
    let layer = BulkheadLayer::builder()
        .token_budget(1000)
        .cost(HeaderCost::new("x-estimated-tokens"))
        .actual_cost(HeaderCost::new("x-usage-tokens"))
        .hold_until_body_end()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(inner);
    let request = http::Request::builder()
        .header("x-estimated-tokens", "100")
        .body(())
        .unwrap();
    let mut body = svc.oneshot(request).await.unwrap().into_body();
    assert_eq!(handle.tokens_in_use(), Some(700));
    assert_eq!(handle.in_flight(), 1);
    let frames: Frames = frames;
    frames
        .send(Ok(http_body::Frame::data(Bytes::from("a"))))
        .await
        .unwrap();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "a");
    assert_eq!(
        handle.tokens_in_use(),
        Some(700),
        "held while the body streams"
    );
    drop(frames);
    assert!(body.frame().await.is_none());
    assert_eq!(handle.tokens_in_use(), Some(0));
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_waits_for_in_flight_tokens_given_back() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .token_budget(100)
        .max_wait(Duration::from_millis(500))
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let first = tokio::spawn(svc.clone().oneshot(80));
    settle().await;
    let waiting = tokio::spawn(svc.clone().oneshot(50));
    settle().await;
    assert_eq!(handle.waiters(), 1);
    advance(Duration::from_millis(200)).await;
    gate.finish(1);
    first.await.unwrap().unwrap();
    settle().await;
    assert_eq!((handle.waiters(), handle.tokens_in_use()), (0, Some(50)));
    gate.finish(1);
    assert_eq!(waiting.await.unwrap().unwrap(), 50);
}

#[tokio::test(start_paused = true)]
async fn a_call_blocked_by_the_rate_budget_waits_for_a_refill_within_max_wait() {
    let layer = BulkheadLayer::builder()
        .refill(100, Duration::from_secs(1))
        .max_wait(Duration::from_secs(2))
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::instant());
    svc.clone().oneshot(100).await.unwrap();
    advance(Duration::from_millis(400)).await;
    let start = tokio::time::Instant::now();
    // 40 tokens are back; the 20 missing refill in 200 ms: the call waits for them.
    assert_eq!(svc.clone().oneshot(60).await.unwrap(), 60);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(handle.rate_tokens_available(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_call_the_rate_budget_cannot_admit_within_max_wait_is_refused_at_once() {
    let layer = BulkheadLayer::builder()
        .refill(100, Duration::from_secs(10))
        .max_wait(Duration::from_secs(2))
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::instant());
    svc.clone().oneshot(100).await.unwrap();
    let start = tokio::time::Instant::now();
    let err = svc.clone().oneshot(50).await.unwrap_err();
    assert_eq!(reason(&err), Reason::BudgetExhausted);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "not queued: the refill is 10 s away"
    );
    assert_eq!(handle.waiters(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_burst_cannot_be_spent_just_before_a_period_boundary_and_again_just_after() {
    let layer = BulkheadLayer::builder()
        .refill(100, Duration::from_secs(60))
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::instant());
    advance(Duration::from_secs(59)).await;
    svc.clone().oneshot(100).await.unwrap();
    advance(Duration::from_secs(2)).await;
    let err = svc.clone().oneshot(100).await.unwrap_err();
    let rejected = tower_bulkhead::find_rejected(&*err).unwrap();
    assert_eq!(rejected.reason(), Reason::BudgetExhausted);
    // Two seconds of a 100-per-minute refill: 3 tokens, the rest in 58 s.
    assert_eq!(handle.rate_tokens_available(), Some(3));
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(58)));
    advance(Duration::from_secs(58)).await;
    svc.clone().oneshot(100).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_client_cost_of_zero_does_not_pass_an_exhausted_budget() {
    let layer = BulkheadLayer::builder()
        .refill(10, HOUR)
        .cost(HeaderCost::new("x-estimated-tokens"))
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, std::io::Error>(())
    }));
    let request = |tokens: &str| {
        http::Request::builder()
            .header("x-estimated-tokens", tokens)
            .body(())
            .unwrap()
    };
    svc.clone().oneshot(request("10")).await.unwrap();
    let err = svc.clone().oneshot(request("0")).await.unwrap_err();
    assert_eq!(reason(&err), Reason::BudgetExhausted);
}

#[tokio::test(start_paused = true)]
async fn a_chunked_body_of_unknown_length_is_charged_the_fallback() {
    let layer = BulkheadLayer::builder()
        .refill(10, HOUR)
        .cost(tower_bulkhead::BodySize::new())
        .build()
        .unwrap();
    let handle = layer.handle();
    type Chunks = StreamBody<tokio_stream::Empty<Result<http_body::Frame<Bytes>, Infallible>>>;
    let svc = layer.layer(tower::service_fn(|_: http::Request<Chunks>| async {
        Ok::<_, std::io::Error>(())
    }));
    let chunked = || http::Request::new(StreamBody::new(tokio_stream::empty()));
    svc.clone().oneshot(chunked()).await.unwrap();
    assert_eq!(handle.rate_tokens_available(), Some(9), "charged, not free");
}

#[tokio::test(start_paused = true)]
async fn a_wait_timed_out_on_the_rate_budget_says_when_it_refills() {
    let layer = BulkheadLayer::builder()
        .refill(100, Duration::from_secs(10))
        .max_wait(Duration::from_secs(1))
        .retry_after(Duration::from_secs(30))
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let svc = layer.layer(support::instant());
    svc.clone().oneshot(100).await.unwrap();
    // Each waits for 8 tokens (0.8 s of refill); the second is behind the first.
    let first = tokio::spawn(svc.clone().oneshot(8));
    let second = tokio::spawn(svc.clone().oneshot(8));
    assert_eq!(first.await.unwrap().unwrap(), 8);
    let err = second.await.unwrap().unwrap_err();
    let rejected = tower_bulkhead::find_rejected(&*err).unwrap();
    assert_eq!(rejected.reason(), Reason::WaitTimedOut);
    let retry_after = rejected.retry_after().unwrap();
    assert!(
        retry_after <= Duration::from_secs(1),
        "the refill of the missing tokens, not the configured 30 s: {retry_after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_the_rate_budget_refuses_while_others_queue_is_answered_429_at_once() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .max_concurrent(1)
        .max_wait(Duration::from_secs(5))
        .refill(10, HOUR)
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let first = tokio::spawn(svc.clone().oneshot(9));
    settle().await;
    let queued = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    assert_eq!(handle.waiters(), 1);
    let err = svc.clone().oneshot(5).await.unwrap_err();
    let rejected = tower_bulkhead::find_rejected(&*err).unwrap();
    assert_eq!(rejected.reason(), Reason::BudgetExhausted);
    assert!(rejected.retry_after().unwrap() > Duration::from_secs(5));
    assert_eq!(handle.waiters(), 1);
    gate.finish(2);
    first.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_no_longer_fits_a_lowered_budget_is_refused_and_the_queue_moves_on() {
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .token_budget(100)
        .max_wait(Duration::from_secs(30))
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(gate.service());
    let first = tokio::spawn(svc.clone().oneshot(60));
    settle().await;
    let big = tokio::spawn(svc.clone().oneshot(80));
    let small = tokio::spawn(svc.clone().oneshot(10));
    settle().await;
    assert_eq!(handle.waiters(), 2);
    handle.set_token_budget(50).unwrap();
    settle().await;
    assert!(big.is_finished(), "refused at once");
    let err = big.await.unwrap().unwrap_err();
    assert_eq!(reason(&err), Reason::CostExceedsCapacity);
    gate.finish(1);
    first.await.unwrap().unwrap();
    settle().await;
    assert_eq!(handle.in_flight(), 1, "the next waiter runs");
    gate.finish(1);
    assert_eq!(small.await.unwrap().unwrap(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_rate_waiter_that_no_longer_fits_a_lowered_burst_is_refused_at_once() {
    let layer = BulkheadLayer::builder()
        .refill(100, Duration::from_secs(10))
        .max_wait(Duration::from_secs(30))
        .cost(|cost: &u64| *cost)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(support::instant());
    svc.clone().oneshot(100).await.unwrap();
    let waiting = tokio::spawn(svc.clone().oneshot(80));
    settle().await;
    assert_eq!(handle.waiters(), 1);
    handle.set_refill(100, 50).unwrap();
    settle().await;
    assert!(waiting.is_finished(), "refused at once");
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(reason(&err), Reason::CostExceedsCapacity);
}

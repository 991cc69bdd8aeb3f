//! The breaker without a tower `Service`: `acquire` a permit and record, or `call` a future.

use std::error::Error;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::time::advance;
use tower_breaker::{
    CircuitBreakerLayer, FnClassifier, Outcome, Reason, Rejected, State, default_error_outcome,
};

fn breaker(failures: u32) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .name("db")
        .failure_threshold(failures)
        .reset_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn permits_follow_the_same_rules_as_calls_through_the_service() {
    let breaker = breaker(2);
    let handle = breaker.handle();
    breaker.acquire().unwrap().failure();
    breaker.acquire().unwrap().success();
    assert_eq!(handle.consecutive_failures(), 0, "a success ends the run");
    breaker.acquire().unwrap().failure();
    breaker.acquire().unwrap().ignore();
    breaker.acquire().unwrap().failure();
    assert_eq!(handle.state(), State::Open);

    let refused = breaker.acquire().unwrap_err();
    assert_eq!(refused.reason(), Reason::CircuitOpen);
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(10)));

    advance(Duration::from_secs(10)).await;
    let probe = breaker.acquire().unwrap();
    assert_eq!(handle.state(), State::HalfOpen);
    assert_eq!(
        breaker.acquire().unwrap_err().reason(),
        Reason::HalfOpenFull,
        "one probe at a time"
    );
    probe.success();
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_permit_frees_its_probe_slot_and_counts_nothing() {
    let breaker = breaker(1);
    let handle = breaker.handle();
    breaker.acquire().unwrap().failure();
    advance(Duration::from_secs(10)).await;
    let probe = breaker.acquire().unwrap();
    assert!(breaker.acquire().is_err());
    drop(probe);
    assert_eq!(
        handle.state(),
        State::HalfOpen,
        "a dropped probe counts for nothing"
    );
    breaker.acquire().unwrap().success();
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_counts_through_a_permit() {
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(None)
        .slow_call_rate_threshold(1.0, Duration::from_millis(100))
        .count_window(2)
        .minimum_calls(2)
        .build()
        .unwrap();
    let handle = breaker.handle();
    for _ in 0..2 {
        let permit = breaker.acquire().unwrap();
        advance(Duration::from_millis(150)).await;
        permit.success();
    }
    assert_eq!(handle.state(), State::Open, "two slow successes of two");
}

#[tokio::test(start_paused = true)]
async fn call_runs_the_future_and_classifies_it_with_the_breakers_classifier() {
    let empty_is_failure =
        FnClassifier::new(|r: Result<&Vec<u8>, &(dyn Error + 'static)>| match r {
            Ok(rows) if rows.is_empty() => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(err) => default_error_outcome(err),
        });
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .classifier(empty_is_failure)
        .build()
        .unwrap();
    let handle = breaker.handle();
    let rows = breaker
        .run(async { Ok::<_, std::io::Error>(vec![1, 2]) })
        .await;
    assert_eq!(rows.unwrap(), [1, 2]);
    for _ in 0..2 {
        let rows = breaker
            .run(async { Ok::<_, std::io::Error>(Vec::new()) })
            .await;
        assert!(rows.unwrap().is_empty());
    }
    assert_eq!(handle.state(), State::Open);

    let mut polled = false;
    let refused = breaker
        .run(async {
            polled = true;
            Ok::<_, std::io::Error>(vec![1])
        })
        .await
        .unwrap_err();
    assert!(refused.downcast_ref::<Rejected>().is_some());
    assert!(!polled, "a refused call is not run");
}

#[tokio::test(start_paused = true)]
async fn call_passes_your_error_through_boxed() {
    let breaker = breaker(5);
    let err = breaker
        .run(async { Err::<(), _>(std::io::Error::other("db down")) })
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<std::io::Error>().unwrap().to_string(),
        "db down"
    );
    assert_eq!(breaker.handle().consecutive_failures(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_future_frees_its_probe_slot() {
    let breaker = breaker(1);
    let handle = breaker.handle();
    breaker.acquire().unwrap().failure();
    advance(Duration::from_secs(10)).await;
    {
        let call = breaker.run(std::future::pending::<Result<(), std::io::Error>>());
        let mut call = pin!(call);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(call.as_mut().poll(&mut cx).is_pending());
        assert_eq!(handle.state(), State::HalfOpen);
        assert!(
            breaker.acquire().is_err(),
            "the pending call holds the probe"
        );
    }
    breaker.acquire().unwrap().success();
    assert_eq!(handle.state(), State::Closed);
}

#[test]
fn permits_and_refusals_are_counted_in_breaker_calls_total() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let breaker = breaker(1);
            breaker.acquire().unwrap().success();
            breaker.acquire().unwrap().failure();
            assert!(breaker.acquire().is_err());
        });
    });
    let mut counts: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "breaker_calls_total")
        .filter_map(|(key, _, _, value)| {
            let outcome = key
                .key()
                .labels()
                .find(|l| l.key() == "outcome")?
                .value()
                .to_owned();
            match value {
                DebugValue::Counter(n) if n > 0 => Some((outcome, n)),
                _ => None,
            }
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("failure".to_owned(), 1),
            ("rejected".to_owned(), 1),
            ("success".to_owned(), 1)
        ]
    );
}

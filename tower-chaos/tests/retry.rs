//! "Fail the first 2, then succeed" inside a retry of 3 attempts.
#![cfg(feature = "inject")]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tower::retry::{Policy, RetryLayer};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_chaos::{BoxError, ChaosLayer, Fault, Schedule};

/// Up to `left` retries on any error.
#[derive(Clone)]
struct Attempts {
    left: usize,
}

impl Policy<u64, u64, BoxError> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, BoxError>) -> Option<Self::Future> {
        if result.is_err() && self.left > 0 {
            self.left -= 1;
            Some(ready(()))
        } else {
            None
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

#[tokio::test(start_paused = true)]
async fn fail_the_first_two_then_succeed_inside_a_retry_of_three_attempts() {
    let chaos = ChaosLayer::<u64, u64>::builder()
        .fault(
            Fault::error(|| "injected outage".into())
                .rate(1.0)
                .schedule(Schedule::FirstCalls(2)),
        )
        .armed(true)
        .build()
        .unwrap();
    let handle = chaos.handle();
    let at_chaos = Arc::new(AtomicUsize::new(0));
    let at_inner = Arc::new(AtomicUsize::new(0));
    let (c, i) = (at_chaos.clone(), at_inner.clone());
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::new(Attempts { left: 2 }))
        .map_request(move |n: u64| {
            c.fetch_add(1, Ordering::SeqCst);
            n
        })
        .layer(chaos)
        .service_fn(move |n: u64| {
            i.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Infallible>(n * 10) }
        });
    let answer = svc.ready().await.unwrap().call(4).await;
    assert_eq!(answer.unwrap(), 40, "success for the caller");
    assert_eq!(
        at_chaos.load(Ordering::SeqCst),
        3,
        "3 attempts at the chaos layer"
    );
    assert_eq!(at_inner.load(Ordering::SeqCst), 1, "1 at the inner service");
    assert_eq!(handle.stats().fault("error").unwrap().injected, 2);
}

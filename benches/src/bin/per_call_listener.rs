//! What tower-breaker's per-call listener costs when one is set, in the same tight loop as
//! `per_call` (kept in its own binary so `per_call`'s figures, which show the path without a
//! listener, stay those of an unchanged build):
//!
//! ```sh
//! cargo build --release -p benches --bin per_call_listener
//! target/release/per_call_listener                 # best of 5 runs of 2,000,000 calls
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/per_call_listener 100000
//! ```
//!
//! Under callgrind, run once with `0` calls and once with N; the difference over N is the
//! per-call instruction count, to read beside `per_call consecutive`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use benches::Bare;
use tower::{Layer, Service};
use tower_breaker::{CallEvent, CircuitBreakerLayer};

fn run(calls: u64) {
    let seen = AtomicU64::new(0);
    let layer = CircuitBreakerLayer::builder()
        .reset_timeout(Duration::from_secs(3600))
        .on_call(move |event: &CallEvent<'_>| {
            black_box(event);
            seen.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .expect("valid");
    let mut svc = layer.layer(Bare);
    let mut cx = Context::from_waker(Waker::noop());
    let mut ok = 0;
    for i in 0..calls {
        let _ = svc.poll_ready(&mut cx);
        let future = pin!(svc.call(black_box(i)));
        ok += u64::from(black_box(matches!(
            future.poll(&mut cx),
            Poll::Ready(Ok(_))
        )));
    }
    assert_eq!(ok, calls);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _enter = runtime.enter();
    match std::env::args().nth(1).and_then(|n| n.parse().ok()) {
        Some(calls) => run(calls),
        None => {
            const CALLS: u64 = 2_000_000;
            let best = (0..5)
                .map(|_| {
                    let start = Instant::now();
                    run(CALLS);
                    start.elapsed().as_secs_f64() * 1e9 / CALLS as f64
                })
                .fold(f64::INFINITY, f64::min);
            println!("consecutive, with a call listener {best:6.1} ns/call");
        }
    }
}

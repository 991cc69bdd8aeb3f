//! Per-call cost in a tight loop, without a benchmark harness around each call, and a driver
//! for instruction counts, which stay stable on a loaded or virtual machine where wall-clock
//! figures do not:
//!
//! ```sh
//! cargo build --release -p benches --bin per_call
//! target/release/per_call                      # every case: best of 5 runs of 2,000,000 calls
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/per_call consecutive 100000
//! ```
//!
//! Under callgrind, run a case once with `0` calls and once with N; the difference over N is
//! the per-call instruction count.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use benches::{Bare, call_once};
use tower::Layer;
use tower::limit::ConcurrencyLimitLayer;
use tower_breaker::CircuitBreakerLayer;

const CASES: [&str; 9] = [
    "bare",
    "concurrency-limit",
    "consecutive",
    "count-window",
    "time-window",
    "forced-open",
    "open",
    "forced-open-decision",
    "open-decision",
];

/// The decision alone, as axum and hyper make it for every request: a fresh clone of the
/// service polled ready (the breaker answers ready at once, deciding to refuse), no call.
fn decide<S: tower::Service<u64> + Clone>(svc: &S, calls: u64) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..calls {
        let mut fresh = black_box(svc).clone();
        assert!(fresh.poll_ready(&mut cx).is_ready());
    }
}

/// `calls` calls, driven by hand in one tight loop: `poll_ready`, `call`, one poll.
fn run<S: tower::Service<u64>>(mut svc: S, calls: u64, expect_ok: bool) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut ok = 0;
    for i in 0..calls {
        let _ = svc.poll_ready(&mut cx);
        let future = pin!(svc.call(black_box(i)));
        let result = future.poll(&mut cx);
        ok += u64::from(black_box(matches!(result, Poll::Ready(Ok(_)))));
    }
    assert_eq!(ok, if expect_ok { calls } else { 0 });
    // Outside the timed loop: the driver's contract, checked once.
    assert!(call_once(&mut svc, 1) == expect_ok);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _enter = runtime.enter();
    match args.next() {
        Some(case) => {
            let calls: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
            case_run(&case, calls);
        }
        None => {
            const CALLS: u64 = 2_000_000;
            for case in CASES {
                let best = (0..5)
                    .map(|_| {
                        let start = Instant::now();
                        case_run(case, CALLS);
                        start.elapsed().as_secs_f64() * 1e9 / CALLS as f64
                    })
                    .fold(f64::INFINITY, f64::min);
                println!("{case:<18} {best:6.1} ns/call");
            }
        }
    }
}

fn case_run(case: &str, calls: u64) {
    let builder = || CircuitBreakerLayer::builder().reset_timeout(Duration::from_secs(3600));
    match case {
        "bare" => run(Bare, calls, true),
        "concurrency-limit" => run(
            ConcurrencyLimitLayer::new(1_000_000).layer(Bare),
            calls,
            true,
        ),
        "consecutive" => run(builder().build().expect("valid").layer(Bare), calls, true),
        "count-window" => {
            let layer = builder()
                .failure_threshold(None)
                .failure_rate_threshold(0.5)
                .count_window(100);
            run(layer.build().expect("valid").layer(Bare), calls, true);
        }
        "time-window" => {
            let layer = builder()
                .failure_threshold(None)
                .failure_rate_threshold(0.5)
                .time_window(Duration::from_secs(10), 10);
            run(layer.build().expect("valid").layer(Bare), calls, true);
        }
        "forced-open" => {
            let layer = builder().build().expect("valid");
            layer.handle().force_open();
            run(layer.layer(Bare), calls, false);
        }
        "open" => {
            let layer = builder().failure_threshold(1).build().expect("valid");
            let mut svc = layer.layer(Bare);
            assert!(!call_once(&mut svc, u64::MAX));
            run(svc, calls, false);
        }
        "forced-open-decision" => {
            let layer = builder().build().expect("valid");
            layer.handle().force_open();
            decide(&layer.layer(Bare), calls);
        }
        "open-decision" => {
            let layer = builder().failure_threshold(1).build().expect("valid");
            let mut svc = layer.layer(Bare);
            assert!(!call_once(&mut svc, u64::MAX));
            decide(&svc, calls);
        }
        other => panic!("unknown case {other}"),
    }
}

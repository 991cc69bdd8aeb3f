//! Per-call cost of tower-heal's layers on the happy path in a tight loop, and a driver for
//! instruction counts under callgrind:
//!
//! ```sh
//! cargo build --release -p benches --bin heal_retry_per_call
//! target/release/heal_retry_per_call                  # every case: best of 5 runs of 2,000,000 calls
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/heal_retry_per_call heal-retry 200000
//! ```
//!
//! Under callgrind, run a case once with `0` calls and once with N; the difference over N is
//! the per-call instruction count.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use benches::Bare;
use tower::Layer;

const CASES: [&str; 5] = [
    "bare",
    "tower-retry",
    "heal-retry",
    "heal-retry-no-budget",
    "heal-hedge",
];

#[derive(Clone, Copy)]
struct Attempts(usize);

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for Attempts {
    type Future = std::future::Ready<()>;
    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        (result.is_err() && self.0 > 0).then(|| {
            self.0 -= 1;
            std::future::ready(())
        })
    }
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// `calls` calls driven by hand: `poll_ready`, `call`, one poll.
fn run<S: tower::Service<u64>>(mut svc: S, calls: u64) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut ok = 0;
    for i in 0..calls {
        let _ = svc.poll_ready(&mut cx);
        let future = pin!(svc.call(black_box(i)));
        ok += u64::from(matches!(future.poll(&mut cx), Poll::Ready(Ok(_))));
    }
    assert_eq!(black_box(ok), calls);
}

fn case(name: &str, calls: u64) {
    match name {
        "bare" => run(Bare, calls),
        "tower-retry" => run(
            tower::retry::RetryLayer::new(Attempts(2)).layer(Bare),
            calls,
        ),
        "heal-retry" => run(tower_heal::RetryLayer::new().layer(Bare), calls),
        "heal-retry-no-budget" => run(
            tower_heal::RetryLayer::builder()
                .no_budget()
                .build()
                .unwrap()
                .layer(Bare),
            calls,
        ),
        "heal-hedge" => run(hedge().layer(Bare), calls),
        other => panic!("unknown case {other}; cases: {CASES:?}"),
    }
}

/// Hedging idle: the answer comes before the hedge delay (here: on the first poll).
fn hedge() -> tower_heal::HedgeLayer {
    tower_heal::HedgeLayer::builder()
        .delay(std::time::Duration::from_millis(50))
        .build()
        .unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = runtime.enter();
    let mut args = std::env::args().skip(1);
    if let Some(name) = args.next() {
        let calls = args.next().map_or(2_000_000, |n| n.parse().unwrap());
        case(&name, calls);
        return;
    }
    for name in CASES {
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                case(name, 2_000_000);
                start.elapsed().as_secs_f64() * 1e9 / 2_000_000.0
            })
            .fold(f64::MAX, f64::min);
        println!("{name:24} {best:6.1} ns/call");
    }
}

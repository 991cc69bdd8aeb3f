//! tower-heal's per-call cost in a tight loop, and the driver for instruction counts:
//!
//! ```sh
//! cargo build --release -p benches --bin heal_per_call
//! target/release/heal_per_call                  # every case: best of 5 runs
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/heal_per_call fallback 100000
//! ```
//!
//! Under callgrind, run a case once with `0` calls and once with N; the difference over N is
//! the per-call instruction count.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use benches::heal::{
    MarkedBare, fallback, recovery_hook, recovery_rebuild, replay_memory, replay_sqlite,
};
use benches::{Bare, call_once};

const CASES: [&str; 7] = [
    "bare-marked",
    "fallback",
    "bare",
    "recovery-hook",
    "recovery-rebuild",
    "replay-memory",
    "replay-sqlite",
];

/// `calls` calls, driven by hand in one tight loop: `poll_ready`, `call`, one poll.
fn run<S: tower::Service<u64>>(mut svc: S, calls: u64) {
    // The first call stores (for the replay cases); the loop then measures the steady state.
    assert!(call_once(&mut svc, 1));
    let mut cx = Context::from_waker(Waker::noop());
    let mut ok = 0;
    for _ in 0..calls {
        let _ = svc.poll_ready(&mut cx);
        let future = pin!(svc.call(black_box(1)));
        ok += u64::from(black_box(matches!(
            future.poll(&mut cx),
            Poll::Ready(Ok(_))
        )));
    }
    assert_eq!(ok, calls);
}

fn case_run(case: &str, calls: u64) {
    match case {
        "bare-marked" => run(MarkedBare, calls),
        "fallback" => run(fallback(), calls),
        "bare" => run(Bare, calls),
        "recovery-hook" => run(recovery_hook(), calls),
        "recovery-rebuild" => run(recovery_rebuild(), calls),
        "replay-memory" => run(replay_memory(), calls),
        "replay-sqlite" => run(replay_sqlite(&format!("loop-{calls}")), calls),
        other => panic!("unknown case {other:?}; cases: {CASES:?}"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _enter = runtime.enter();
    if let Some(case) = args.next() {
        let calls: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
        case_run(&case, calls);
        return;
    }
    for case in CASES {
        let calls: u64 = if case == "replay-sqlite" {
            50_000
        } else {
            2_000_000
        };
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                case_run(case, calls);
                start.elapsed().as_secs_f64() * 1e9 / calls as f64
            })
            .fold(f64::INFINITY, f64::min);
        println!("{case:<18} {best:>8.1} ns/call");
    }
}

//! The chaos layer's per-call cost in a tight loop, and a driver for instruction counts:
//!
//! ```sh
//! cargo build --release -p benches --bin chaos_per_call
//! target/release/chaos_per_call                 # every case: best of 5 runs of 2,000,000 calls
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/chaos_per_call disarmed 100000
//! # injection compiled out:
//! cargo build --release -p benches --bin chaos_per_call --no-default-features
//! ```
//!
//! Under callgrind, run a case once with `0` calls and once with N; the difference over N is
//! the per-call instruction count.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use benches::{Bare, call_once};
use tower::Layer;
use tower_chaos::{ChaosLayer, Fault};

const CASES: [&str; 5] = [
    "bare",
    "disarmed",
    "armed-guard",
    "armed-no-guard",
    "armed-3-faults",
];

/// `calls` calls, driven by hand in one tight loop: `poll_ready`, `call`, one poll.
fn run<S: tower::Service<u64>>(mut svc: S, calls: u64) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut ok = 0;
    for i in 0..calls {
        let _ = svc.poll_ready(&mut cx);
        let future = pin!(svc.call(black_box(i)));
        let result = future.poll(&mut cx);
        ok += u64::from(black_box(matches!(result, Poll::Ready(Ok(_)))));
    }
    assert_eq!(ok, calls);
    assert!(call_once(&mut svc, 1));
}

fn layer(faults: usize, guard: bool, armed: bool) -> ChaosLayer<u64, u64> {
    let mut builder = ChaosLayer::<u64, u64>::builder().armed(armed);
    for i in 0..faults {
        // Decided on every call (the hash is computed), never firing.
        builder = builder.fault(Fault::abort().named(format!("f{i}")).rate(1e-15));
    }
    if !guard {
        builder = builder.no_guard();
    }
    builder.build().expect("valid")
}

fn case_run(case: &str, calls: u64) {
    match case {
        "bare" => run(Bare, calls),
        "disarmed" => run(layer(1, true, false).layer(Bare), calls),
        "armed-guard" => run(layer(1, true, true).layer(Bare), calls),
        "armed-no-guard" => run(layer(1, false, true).layer(Bare), calls),
        "armed-3-faults" => run(layer(3, true, true).layer(Bare), calls),
        other => panic!("unknown case {other}"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _enter = runtime.enter();
    let build = if cfg!(feature = "chaos-inject") {
        "injection compiled in"
    } else {
        "injection compiled out"
    };
    match args.next() {
        Some(case) => {
            let calls: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
            case_run(&case, calls);
        }
        None => {
            println!("({build})");
            const CALLS: u64 = 2_000_000;
            for case in CASES {
                let best = (0..5)
                    .map(|_| {
                        let start = Instant::now();
                        case_run(case, CALLS);
                        start.elapsed().as_secs_f64() * 1e9 / CALLS as f64
                    })
                    .fold(f64::INFINITY, f64::min);
                println!("{case:<16} {best:6.1} ns/call");
            }
        }
    }
}

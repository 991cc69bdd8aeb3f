//! Per-call cost of the bulkhead in a tight loop, beside a bare service and tower's
//! `ConcurrencyLimit`, and a driver for instruction counts (stable where wall time is not):
//!
//! ```sh
//! cargo build --release -p benches --bin bulkhead_per_call
//! target/release/bulkhead_per_call                 # every case: best of 5 runs of 2,000,000 calls
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/bulkhead_per_call concurrency 200000
//! ```
//!
//! Under callgrind, run a case once with `0` calls and once with N; the difference over N is
//! the per-call instruction count.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use benches::{Bare, BareHttp, tenant, tenant_requests};

/// An always-ready service whose calls never end (they hold their permits).
#[derive(Clone, Copy)]
struct Pending;

impl tower::Service<u64> for Pending {
    type Response = u64;
    type Error = std::convert::Infallible;
    type Future = std::future::Pending<Result<u64, std::convert::Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u64) -> Self::Future {
        std::future::pending()
    }
}
use tower::Layer;
use tower::limit::ConcurrencyLimitLayer;
use tower_bulkhead::BulkheadLayer;

const CASES: [&str; 14] = [
    "bare",
    "concurrency-limit",
    "concurrency",
    "token",
    "rate",
    "clock",
    "bare-http",
    "concurrency-limit-http",
    "concurrency-http",
    "key-fn",
    "keyed",
    "keyed-one-key",
    "rejected",
    "keyed-full",
];

/// `calls` calls of `request(i)`, driven by hand in one tight loop: `poll_ready`, `call`,
/// one poll.
fn run<S, Req>(mut svc: S, calls: u64, request: impl Fn(u64) -> Req, expect_ok: bool)
where
    S: tower::Service<Req>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut ok = 0;
    for i in 0..calls {
        let _ = svc.poll_ready(&mut cx);
        let future = pin!(svc.call(request(black_box(i))));
        let result = future.poll(&mut cx);
        ok += u64::from(black_box(matches!(result, Poll::Ready(Ok(_)))));
    }
    assert_eq!(ok, if expect_ok { calls } else { 0 });
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
                println!("{case:<24} {best:6.1} ns/call");
            }
        }
    }
}

fn case_run(case: &str, calls: u64) {
    let requests = tenant_requests(1000);
    let by_tenant = |i: u64| &requests[(i % 1000) as usize];
    let builder = || BulkheadLayer::builder().max_concurrent(1_000_000);
    match case {
        "bare" => run(Bare, calls, |i| i, true),
        "concurrency-limit" => run(
            ConcurrencyLimitLayer::new(1_000_000).layer(Bare),
            calls,
            |i| i,
            true,
        ),
        "concurrency" => run(
            builder().build().expect("valid").layer(Bare),
            calls,
            |i| i,
            true,
        ),
        "token" => {
            let layer = builder().token_budget(2_000_000_000).cost(|_: &u64| 1);
            run(
                layer.build().expect("valid").layer(Bare),
                calls,
                |i| i,
                true,
            );
        }
        "rate" => {
            let layer = builder()
                .refill(2_000_000_000, Duration::from_secs(1))
                .cost(|_: &u64| 1);
            run(
                layer.build().expect("valid").layer(Bare),
                calls,
                |i| i,
                true,
            );
        }
        "bare-http" => run(BareHttp, calls, by_tenant, true),
        "concurrency-limit-http" => run(
            ConcurrencyLimitLayer::new(1_000_000).layer(BareHttp),
            calls,
            by_tenant,
            true,
        ),
        // The split of the keyed case: the key function alone, and an unkeyed compartment over
        // the same requests (admission without the lookup).
        "key-fn" => {
            let mut sum = 0_u64;
            for i in 0..calls {
                sum += u64::from(tenant(black_box(&by_tenant(black_box(i)))));
            }
            black_box(sum);
        }
        "concurrency-http" => run(
            builder().build().expect("valid").layer(BareHttp),
            calls,
            by_tenant,
            true,
        ),
        // What the rate budget needs per call: one `tokio::time::Instant::now()`.
        "clock" => {
            for _ in 0..calls {
                black_box(tokio::time::Instant::now());
            }
        }
        // Every call to one key (of 1000 live keys).
        "keyed-one-key" => {
            let layer = builder().max_keys(1000).build_keyed(tenant).expect("valid");
            let svc = layer.layer(BareHttp);
            run(svc.clone(), 1000, by_tenant, true);
            run(svc, calls, |_| &requests[7], true);
        }
        "keyed" => {
            let layer = builder().max_keys(1000).build_keyed(tenant).expect("valid");
            let svc = layer.layer(BareHttp);
            // Every key live before the measured calls.
            run(svc.clone(), 1000, by_tenant, true);
            run(svc, calls, by_tenant, true);
        }
        // A new key per call while the map holds 100 000 busy keys (each with a call in
        // flight that never ends): every call looks for room, finds none, and goes to the
        // shared overflow compartment.
        "keyed-full" => {
            const BUSY: u64 = 100_000;
            let layer = builder()
                .max_keys(BUSY as u32)
                .build_keyed(|n: &u64| *n)
                .expect("valid");
            let mut svc = layer.layer(Pending);
            let mut cx = Context::from_waker(Waker::noop());
            let held: Vec<_> = (0..BUSY)
                .map(|key| {
                    let _ = tower::Service::poll_ready(&mut svc, &mut cx);
                    let mut call = Box::pin(tower::Service::call(&mut svc, key));
                    assert!(call.as_mut().poll(&mut cx).is_pending());
                    call
                })
                .collect();
            let mut pending = 0;
            for i in 0..calls {
                let _ = tower::Service::poll_ready(&mut svc, &mut cx);
                let future = pin!(tower::Service::call(&mut svc, BUSY + black_box(i)));
                pending += u64::from(future.poll(&mut cx).is_pending());
            }
            assert_eq!(pending, calls);
            black_box(held);
        }
        "rejected" => {
            let layer = BulkheadLayer::builder()
                .max_concurrent(1)
                .build()
                .expect("valid");
            let mut svc = layer.layer(Bare);
            let mut cx = Context::from_waker(Waker::noop());
            let _ = tower::Service::poll_ready(&mut svc, &mut cx);
            // A call that never ends holds the only permit.
            let held = tower::Service::call(&mut svc, 0);
            let _held = std::mem::ManuallyDrop::new(Box::pin(held));
            run(svc, calls, |i| i, false);
        }
        other => panic!("unknown case {other}"),
    }
}

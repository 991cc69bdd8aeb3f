//! Soak: a long run of calls through the whole family under chaos, with a flood of distinct
//! keys, reporting resident memory, the keyed maps and the cost per call as it goes.
//!
//! Not a test (it takes minutes in a release build): run it by hand,
//!
//! ```sh
//! cargo run --release -p examples --example soak            # 1 000 000 calls
//! SOAK_CALLS=200000 cargo run --release -p examples --example soak
//! ```
//!
//! Every call carries a distinct idempotency key (the store is capped at 10 000 records) and
//! one of 5 000 tenants (the per-tenant bulkhead is capped at 1 000 keys). The stack is
//! idempotency → fallback → retry → breaker → per-tenant bulkhead → chaos → an in-process
//! upstream that answers 503 one call in twenty. Every 100 000 calls it prints resident memory
//! (Linux: `/proc/self/statm`), the keys held and the cost per call over the last window. At
//! the end it says whether memory stayed flat after warm-up (within 10 % of the first sample
//! after 200 000 calls), the maps under their caps, and the last window's cost per call within
//! 1.5 × the first window after warm-up; it exits with status 1 if not.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, HttpStatus};
use tower_bulkhead::BulkheadLayer;
use tower_chaos::{ChaosLayer, Fault};
use tower_heal::store::MemoryStore;
use tower_heal::{BoxError, DegradationLevel, FallbackLayer, IdempotencyLayer, RetryLayer};

type Req = http::Request<Full<Bytes>>;
type Res = http::Response<Full<Bytes>>;

const WINDOW: u64 = 100_000;
const WARM_UP: u64 = 200_000;
const TENANTS: u64 = 5_000;
const MAX_KEYS: u32 = 1_000;
const MAX_RECORDS: usize = 10_000;

/// Resident memory in MiB, where the platform tells it.
fn rss_mib() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / (1024.0 * 1024.0))
}

fn main() {
    let calls: u64 = std::env::var("SOAK_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let ok = runtime.block_on(soak(calls));
    std::process::exit(if ok { 0 } else { 1 });
}

async fn soak(calls: u64) -> bool {
    let upstream = tower::service_fn(|_: Req| async {
        let status = if fastrand::u32(0..20) == 0 { 503 } else { 200 };
        let res = http::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"fresh")))?;
        Ok::<Res, BoxError>(res)
    });
    let chaos = ChaosLayer::<Req, Res>::builder()
        .name("soak")
        .seed(1)
        .fault(Fault::error(|| "injected".into()).rate(0.01))
        .no_guard()
        .armed(true)
        .build()
        .expect("chaos");
    let bulkhead = BulkheadLayer::builder()
        .name("soak")
        .max_concurrent(16)
        .max_keys(MAX_KEYS)
        .build_keyed(|req: &Req| {
            req.headers()
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned()
        })
        .expect("bulkhead");
    let tenants = bulkhead.handle();
    let breaker = CircuitBreakerLayer::builder()
        .name("soak")
        .classifier(HttpStatus::new())
        .failure_threshold(20)
        .reset_timeout(Duration::from_millis(50))
        .build()
        .expect("breaker");
    let retry = RetryLayer::builder()
        .http_client()
        .name("soak")
        .max_retries(1)
        .initial_delay(Duration::from_micros(100))
        .max_delay(Duration::from_millis(1))
        .build()
        .expect("retry");
    let fallback = FallbackLayer::builder("soak")
        .classifier(HttpStatus::new())
        .chain(
            DegradationLevel::Minimal,
            tower::service_fn(|_: Req| async {
                Ok::<_, BoxError>(http::Response::new(Full::new(Bytes::from_static(
                    b"static",
                ))))
            }),
        )
        .build();
    let store = Arc::new(MemoryStore::new(MAX_RECORDS, 64 << 20));
    let idempotency = IdempotencyLayer::http()
        .store(store.clone())
        .ttl(Duration::from_secs(3600))
        .build();
    let stack = ServiceBuilder::new()
        .layer(idempotency)
        .map_err(|e: BoxError| -> Infallible { panic!("the fallback answers every error: {e}") })
        .layer(fallback)
        .layer(retry)
        .layer(breaker)
        .layer(bulkhead)
        .layer(chaos)
        .service(upstream);
    let stack = tower::util::BoxCloneSyncService::new(stack);

    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (next, done, mut stack) = (next.clone(), done.clone(), stack.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= calls {
                    return;
                }
                let request = http::Request::post("http://upstream/orders")
                    .header("idempotency-key", format!("call-{n}"))
                    .header("x-tenant", format!("tenant-{}", n % TENANTS))
                    .body(Full::new(Bytes::from_static(b"{}")))
                    .expect("a request");
                let svc = stack.ready().await.expect("ready");
                let res = svc.call(request).await.expect("answered");
                let _ = res.into_body().collect().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    println!(
        "{:>10} {:>10} {:>8} {:>8} {:>12}",
        "calls", "rss MiB", "tenants", "records", "ns/call"
    );
    let mut samples = Vec::new();
    let mut last = (0, Instant::now());
    let mut mark = WINDOW.min(calls);
    while mark <= calls {
        while done.load(Ordering::Relaxed) < mark {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let now = Instant::now();
        let per_call = (now - last.1).as_nanos() as f64 / (mark - last.0) as f64;
        last = (mark, now);
        let rss = rss_mib();
        let keys = tenants.keys();
        let records = store.len();
        println!(
            "{mark:>10} {:>10} {keys:>8} {records:>8} {per_call:>12.0}",
            rss.map_or("n/a".to_owned(), |r| format!("{r:.1}"))
        );
        samples.push((mark, rss, keys, records, per_call));
        if mark == calls {
            break;
        }
        mark = (mark + WINDOW).min(calls);
    }
    while workers.join_next().await.is_some() {}

    let mut ok = true;
    let after: Vec<_> = samples.iter().filter(|s| s.0 > WARM_UP).collect();
    if let (Some(first), Some(end)) = (after.first(), after.last()) {
        if let (Some(a), Some(b)) = (first.1, end.1) {
            let flat = b <= a * 1.10;
            println!(
                "memory after warm-up: {a:.1} → {b:.1} MiB: {}",
                if flat { "flat" } else { "GROWING" }
            );
            ok &= flat;
        }
        let steady = end.4 <= first.4 * 1.5;
        println!(
            "cost per call after warm-up: {:.0} → {:.0} ns: {}",
            first.4,
            end.4,
            if steady { "steady" } else { "SLOWER" }
        );
        ok &= steady;
    } else {
        println!("too few calls to judge past the warm-up ({WARM_UP})");
    }
    let capped = samples
        .iter()
        .all(|s| s.2 <= MAX_KEYS as usize + 1 && s.3 <= MAX_RECORDS);
    println!(
        "keyed maps under their caps ({MAX_KEYS} tenants, {MAX_RECORDS} records): {}",
        if capped { "yes" } else { "NO" }
    );
    ok && capped
}

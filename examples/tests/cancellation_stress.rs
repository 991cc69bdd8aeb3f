//! Cancellation stress: many calls through the whole family (idempotency, fallback, retry,
//! breaker, bulkhead, chaos) on a multi-thread runtime, with random drops (before the first
//! poll and at outer timeouts of a few hundred microseconds), injected hangs and errors, slow
//! answers and an inner service that panics now and then.
//!
//! Afterwards the family must be at rest: the bulkhead back to full capacity with nobody
//! waiting, the breaker closing again once the upstream is healthy (no probe slot stuck
//! half-open), no idempotency key left in progress (a call with each key is answered at once,
//! not with 409 after waiting), and every gauge at its resting value.
//!
//! `STRESS_CALLS` sets the number of calls: the default 20 000 take a few seconds in a debug
//! build; `STRESS_CALLS=100000 cargo test -p examples --test cancellation_stress` runs the
//! full 100 000.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, HttpStatus, State};
use tower_bulkhead::{BulkheadHandle, BulkheadLayer};
use tower_chaos::{ChaosHandle, ChaosLayer, Fault, Latency};
use tower_heal::store::MemoryStore;
use tower_heal::{BoxError, DegradationLevel, FallbackLayer, IdempotencyLayer, RetryLayer};

type Req = http::Request<Full<Bytes>>;
type Res = http::Response<Full<Bytes>>;

const KEYS: u64 = 64;
const PANIC: &str = "injected panic in the inner service";

/// The upstream: mostly fine, sometimes 503, slow or panicking, until told to be healthy.
#[derive(Clone, Default)]
struct Upstream {
    healthy: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
}

impl Service<Req> for Upstream {
    type Response = Res;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Req) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let healthy = self.healthy.load(Ordering::SeqCst);
        let roll = fastrand::u32(0..100);
        Box::pin(async move {
            if !healthy {
                if roll < 2 {
                    panic!("{PANIC}");
                }
                if roll < 10 {
                    tokio::time::sleep(Duration::from_micros(u64::from(roll) * 100)).await;
                } else if roll < 25 {
                    let res = http::Response::builder()
                        .status(503)
                        .body(Full::new(Bytes::from_static(b"down")))?;
                    return Ok(res);
                }
            }
            Ok(http::Response::new(Full::new(Bytes::from_static(b"fresh"))))
        })
    }
}

type Stack = BoxCloneSyncService<
    Req,
    http::Response<tower_heal::idempotency::IdempotentBody<Full<Bytes>>>,
    Infallible,
>;

struct Family {
    stack: Stack,
    upstream: Upstream,
    breaker: CircuitBreakerHandle,
    bulkhead: BulkheadHandle,
    chaos: ChaosHandle,
}

fn family() -> Family {
    let upstream = Upstream::default();
    let retry = RetryLayer::builder()
        .http_client()
        .name("stress")
        .max_retries(2)
        .initial_delay(Duration::from_micros(200))
        .max_delay(Duration::from_millis(1))
        .seed(3)
        .build()
        .unwrap();
    let breaker = CircuitBreakerLayer::builder()
        .name("stress")
        .classifier(HttpStatus::new())
        .failure_threshold(3)
        .reset_timeout(Duration::from_millis(5))
        .half_open_max_calls(2)
        .success_threshold(2)
        .build()
        .unwrap();
    let bulkhead = BulkheadLayer::builder()
        .name("stress")
        .max_concurrent(6)
        .max_waiters(8)
        .max_wait(Duration::from_millis(1))
        .build()
        .unwrap();
    let chaos = ChaosLayer::<Req, Res>::builder()
        .name("stress")
        .seed(9)
        .fault(Fault::hang().rate(0.02))
        .fault(Fault::latency(Latency::Fixed(Duration::from_micros(300))).rate(0.05))
        .fault(Fault::error(|| "injected error".into()).rate(0.05))
        .no_guard()
        .armed(true)
        .build()
        .unwrap();
    let fallback = FallbackLayer::builder("stress")
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
    let idempotency = IdempotencyLayer::http()
        .store(MemoryStore::default())
        .ttl(Duration::from_millis(20))
        .max_wait(Duration::from_millis(50))
        .build();
    let handles = (breaker.handle(), bulkhead.handle(), chaos.handle());
    let stack = ServiceBuilder::new()
        .layer(idempotency)
        .map_err(|e: BoxError| -> Infallible { panic!("the fallback answers every error: {e}") })
        .layer(fallback)
        .layer(retry)
        .layer(breaker)
        .layer(bulkhead)
        .layer(chaos)
        .service(upstream.clone());
    Family {
        stack: BoxCloneSyncService::new(stack),
        upstream,
        breaker: handles.0,
        bulkhead: handles.1,
        chaos: handles.2,
    }
}

fn request(key: Option<u64>) -> Req {
    let mut builder = http::Request::post("http://upstream/orders");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", format!("order-{key}"));
    }
    builder.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
}

/// One call, driven to its end (body included), or dropped on the way.
async fn one(mut stack: Stack, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let key = (rng.u32(0..10) < 7).then(|| rng.u64(0..KEYS));
    let call = async move {
        let res = stack
            .ready()
            .await
            .unwrap()
            .call(request(key))
            .await
            .unwrap();
        let _ = res.into_body().collect().await;
    };
    match rng.u32(0..10) {
        // Dropped before its first poll.
        0 => drop(call),
        // Dropped after its first poll.
        1 => {
            let mut call = std::pin::pin!(call);
            let _ = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        }
        // An outer timeout of up to 2 ms.
        2..=5 => {
            let limit = Duration::from_micros(rng.u64(0..2_000));
            let _ = tokio::time::timeout(limit, call).await;
        }
        // To the end, with a generous bound (injected hangs are cut here).
        _ => {
            let _ = tokio::time::timeout(Duration::from_millis(20), call).await;
        }
    }
}

/// Gauges and counters by `name{label=value,...}`.
fn values(snapshotter: &Snapshotter) -> BTreeMap<String, f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let value = match value {
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Counter(n) => n as f64,
                DebugValue::Histogram(_) => return None,
            };
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            Some((format!("{}{{{}}}", key.name(), labels.join(",")), value))
        })
        .collect()
}

fn stress(calls: u64) {
    // Injected panics are expected: keep them out of the log, and everything else in it.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let ours = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m == PANIC);
        if !ours {
            default(info);
        }
    }));
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let f = family();
        let panicked = Arc::new(AtomicU64::new(0));
        // At most 32 calls at once, so the compartments are contended, not flooded.
        let mut set = tokio::task::JoinSet::new();
        for n in 0..calls {
            if set.len() >= 32
                && let Some(Err(e)) = set.join_next().await
            {
                assert!(e.is_panic(), "{e}");
                panicked.fetch_add(1, Ordering::Relaxed);
            }
            set.spawn(one(f.stack.clone(), n));
        }
        while let Some(joined) = set.join_next().await {
            if let Err(e) = joined {
                assert!(e.is_panic(), "{e}");
                panicked.fetch_add(1, Ordering::Relaxed);
            }
        }
        assert!(
            panicked.load(Ordering::Relaxed) > 0,
            "the inner service panicked"
        );
        let reached = f.upstream.calls.load(Ordering::Relaxed);
        assert!(
            reached > calls / 10,
            "only {reached} calls reached the upstream"
        );

        // Every call is over: full capacity, nobody waiting.
        assert_eq!(f.bulkhead.in_flight(), 0, "bulkhead permits all returned");
        assert_eq!(f.bulkhead.waiters(), 0, "no waiter left behind");

        // A healthy upstream closes the breaker again: no probe slot is stuck.
        f.chaos.disarm();
        f.upstream.healthy.store(true, Ordering::SeqCst);
        let mut stack = f.stack.clone();
        let mut closed = false;
        for _ in 0..400 {
            let res = stack
                .ready()
                .await
                .unwrap()
                .call(request(None))
                .await
                .unwrap();
            let _ = res.into_body().collect().await;
            if f.breaker.state() == State::Closed {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(closed, "breaker stuck in {:?}", f.breaker.state());

        // No key is left in progress: each is answered at once (a replay or a fresh call),
        // never a 409 after waiting for a first call that is gone.
        for key in 0..KEYS {
            let started = tokio::time::Instant::now();
            let res = stack
                .ready()
                .await
                .unwrap()
                .call(request(Some(key)))
                .await
                .unwrap();
            assert_ne!(res.status(), 409, "key order-{key} left in progress");
            assert!(
                started.elapsed() < Duration::from_millis(50),
                "key order-{key} waited"
            );
            let _ = res.into_body().collect().await;
        }
        assert_eq!(f.bulkhead.in_flight(), 0);
    });

    let values = values(&snapshotter);
    if std::env::var_os("STRESS_VERBOSE").is_some() {
        eprintln!("{values:#?}");
    }
    let read = |name: &str| {
        *values
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {values:#?}"))
    };
    // The run met what it is meant to: open circuits, full compartments, replays, hangs.
    let sum = |prefix: &str| -> f64 {
        values
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    for met in [
        "breaker_transitions_total{breaker=stress,from=half_open,to=open",
        "bulkhead_rejected_total{bulkhead=stress",
        "heal_idempotent_replays_total",
        "heal_fallbacks_total",
        "chaos_injected_total{chaos=stress,fault=hang",
    ] {
        assert!(sum(met) > 0.0, "never met: {met} in {values:#?}");
    }
    // At rest.
    assert_eq!(read("bulkhead_in_flight{bulkhead=stress}"), 0.0);
    assert_eq!(read("bulkhead_tokens_in_use{bulkhead=stress}"), 0.0);
    assert_eq!(read("breaker_state{breaker=stress,state=closed}"), 1.0);
    assert_eq!(read("breaker_state{breaker=stress,state=open}"), 0.0);
    assert_eq!(read("breaker_state{breaker=stress,state=half_open}"), 0.0);
    assert_eq!(read("heal_degradation_level{component=stress}"), 0.0);
    assert_eq!(read("chaos_armed{chaos=stress}"), 0.0);
}

#[test]
fn cancellation_stress() {
    let calls = std::env::var("STRESS_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    stress(calls);
}

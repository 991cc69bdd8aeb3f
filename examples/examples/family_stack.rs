//! The whole family in one `ServiceBuilder`, in front of a flaky upstream on 127.0.0.1.
//!
//! ```text
//! cargo run -p examples --example family_stack
//! ```
//!
//! Client side, outermost first (DESIGN.md §2):
//! fallback → retry → breaker → bulkhead → per-attempt timeout → chaos → transport (reqwest).
//!
//! - the **retry** sees every failed attempt, and waits out a `Retry-After` (never early) when
//!   it fits `max_retry_after`;
//! - the **breaker** counts each attempt; once open, its rejection (retry after 2 s, beyond
//!   the retry's `max_retry_after` of 1 s) stops the retry at once, without reaching the
//!   upstream;
//! - the **bulkhead** refuses calls beyond its compartment (retry after 100 ms: the retry waits
//!   that long, it does not hammer), and the breaker never counts a refusal;
//! - the **fallback** answers what is left: the last good answer (level 1), else a static one
//!   (level 3), marked `Degraded`;
//! - the **chaos** layer (armed for one step only) injects a 503 that looks like a real one.
//!
//! It prints a timeline and exits by itself in about 4 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, HttpStatus};
use tower_bulkhead::BulkheadLayer;
use tower_chaos::{ChaosLayer, Fault, Schedule};
use tower_heal::{
    BoxError, Degradable, DegradationLevel, FallbackLayer, Jitter, LastGood, RetryLayer,
};

type Req = http::Request<String>;
type Res = http::Response<String>;

/// The flaky upstream: `fail_next` calls answer 503, all of them while `down`; `/item/slow`
/// takes 250 ms.
#[derive(Default)]
struct Upstream {
    fail_next: AtomicUsize,
    down: AtomicBool,
}

async fn item(State(up): State<Arc<Upstream>>, Path(id): Path<String>) -> (StatusCode, String) {
    if id == "slow" {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let burst = up
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if burst || up.down.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "down".to_owned())
    } else {
        (StatusCode::OK, format!("fresh {id}"))
    }
}

type Stack = BoxCloneSyncService<Req, Res, BoxError>;

/// Calls `/item/{id}` through the stack and prints the answer, and whether it is degraded.
async fn call(
    mut stack: Stack,
    addr: std::net::SocketAddr,
    id: &'static str,
    start: Instant,
) -> Result<(), BoxError> {
    let request = http::Request::get(format!("http://{addr}/item/{id}")).body(String::new())?;
    let answer = stack.ready().await?.call(request).await?;
    let how = match answer.degraded() {
        Some(d) => format!("DEGRADED level {} ({})", d.level().as_u8(), d.component()),
        None => "full".to_owned(),
    };
    println!(
        "{:>5} ms {id:>4}: {} {:?} [{how}]",
        ms(start),
        answer.status().as_u16(),
        answer.body()
    );
    Ok(())
}

/// Milliseconds since the start, for the timeline.
fn ms(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let start = Instant::now();

    // The upstream, in-process on 127.0.0.1.
    let up = Arc::new(Upstream::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/item/{id}", get(item))
        .with_state(up.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Fallback: the last good answer per path (level 1), then a static answer (level 3).
    let cache = LastGood::new(1000, |r: &Req| r.uri().path().to_owned());
    let fallback = FallbackLayer::builder("catalog")
        .classifier(HttpStatus::new()) // a 503 left after the retries falls back too
        .chain(DegradationLevel::Slight, cache.clone())
        .then(
            DegradationLevel::Minimal,
            tower::service_fn(|_: Req| async {
                Ok::<_, BoxError>(http::Response::new("static catalog".to_owned()))
            }),
        )
        .build();

    // Retry: idempotent requests only, 3 retries, short back-off; prints every retry.
    let retry = RetryLayer::builder()
        .http_client()
        .name("catalog")
        .max_retries(3)
        .initial_delay(Duration::from_millis(20))
        .jitter(Jitter::Full)
        .seed(7)
        // A rejection (open breaker, full bulkhead) is waited out only if its retry_after
        // fits here: the bulkhead's 100 ms does, the open breaker's ~2 s does not.
        .max_retry_after(Duration::from_secs(1))
        .on_retry(move |e| {
            println!(
                "{:>5} ms   retry: attempt {}/{} failed ({}{}), waiting {} ms",
                ms(start),
                e.attempt,
                e.max_attempts,
                e.class,
                e.code.map(|c| format!(" {c}")).unwrap_or_default(),
                e.delay.as_millis()
            );
        })
        .build()?;

    // Breaker: 3 failures in a row open it for 2 s; prints every transition.
    let breaker = CircuitBreakerLayer::builder()
        .name("catalog")
        .classifier(HttpStatus::new())
        .failure_threshold(3)
        .reset_timeout(Duration::from_secs(2))
        .on_transition(move |t| {
            println!(
                "{:>5} ms   breaker: {:?} -> {:?} ({:?})",
                ms(start),
                t.from,
                t.to,
                t.reason
            );
        })
        .build()?;

    // Bulkhead: one call in flight at a time; a full compartment says "retry after 100 ms".
    let bulkhead = BulkheadLayer::builder()
        .name("catalog")
        .max_concurrent(1)
        .retry_after(Duration::from_millis(100))
        .build()?;
    let bulkhead_handle = bulkhead.handle();

    // Chaos: one injected 503 with `Retry-After: 1`, once armed (it injects nothing before).
    let chaos = ChaosLayer::<Req, Res>::builder()
        .name("catalog-chaos")
        .seed(42)
        .fault(
            Fault::http_status(StatusCode::SERVICE_UNAVAILABLE)
                .retry_after(Duration::from_secs(1))
                .rate(1.0)
                .schedule(Schedule::FirstCalls(1)),
        )
        .build()?;
    let chaos_handle = chaos.handle();

    // The transport: reqwest, whole bodies as text.
    let client = reqwest::Client::new();
    let transport = tower::service_fn(move |request: Req| {
        let client = client.clone();
        async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            Ok::<_, BoxError>(answer.body(response.text().await?)?)
        }
    });

    // The whole family, outermost first.
    let stack = ServiceBuilder::new()
        .layer(fallback)
        .layer(cache.record()) // keeps each good (2xx) answer for the fallback
        .layer(retry)
        .layer(breaker)
        .layer(bulkhead)
        .timeout(Duration::from_secs(2)) // per attempt
        .layer(chaos)
        .service(transport);

    let stack = BoxCloneSyncService::new(stack);
    let call = |id: &'static str| call(stack.clone(), addr, id, start);

    println!("--- 1. healthy");
    call("a").await?;

    println!("--- 2. a burst of two 503s: retried and healed");
    up.fail_next.store(2, Ordering::SeqCst);
    call("a").await?;

    println!("--- 3. the compartment is full: the bulkhead refuses, the breaker does not count it");
    let slow = tokio::spawn(call("slow"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    call("b").await?;
    slow.await??;
    println!(
        "        bulkhead in flight: {}",
        bulkhead_handle.in_flight()
    );

    println!(
        "--- 4. the upstream goes down: the breaker opens, the retry stops, the fallback answers"
    );
    up.down.store(true, Ordering::SeqCst);
    call("a").await?; // cached: level 1
    call("c").await?; // never cached: level 3

    println!("--- 5. the upstream recovers; after the reset timeout a probe closes the breaker");
    up.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    call("a").await?;

    println!("--- 6. chaos: an injected 503 with Retry-After: 1, honoured by the retry");
    chaos_handle.arm();
    call("a").await?;
    chaos_handle.disarm();

    println!("done in {} ms", ms(start));
    Ok(())
}

//! The whole family in one `ServiceBuilder`, over real servers on 127.0.0.1.
//!
//! DESIGN.md §2, client side, outermost first:
//! fallback → retry → breaker → bulkhead → per-attempt timeout → chaos → transport (reqwest).
//!
//! Each test starts an axum upstream it controls, and an axum front server whose handler calls
//! the upstream through the stack. Real sockets need real time (paused time would fire the
//! timeouts while a socket is being read), so every delay here is short and every loop bounded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, HttpStatus, State as Breaker};
use tower_bulkhead::{BulkheadHandle, BulkheadLayer};
use tower_chaos::{ChaosHandle, ChaosLayer, Fault, Schedule};
use tower_heal::{
    BoxError, Class, Degradable, DegradationLevel, FallbackLayer, Jitter, LastGood, RetryLayer,
};

type Req = http::Request<String>;
type Res = http::Response<String>;
type Stack = BoxCloneSyncService<Req, Res, BoxError>;

// ---------------------------------------------------------------------------------------------
// The upstream: a flaky dependency we steer from the test.

#[derive(Default)]
struct Upstream {
    hits: AtomicUsize,
    /// How many of the next calls answer 503.
    fail_next: AtomicUsize,
    /// Every call answers 503.
    down: AtomicBool,
    /// Calls hang (bounded: 5 s) until released.
    hang: AtomicBool,
    arrived: Notify,
    release: Notify,
}

async fn item(State(up): State<Arc<Upstream>>, Path(id): Path<String>) -> impl IntoResponse {
    up.hits.fetch_add(1, Ordering::SeqCst);
    if up.hang.load(Ordering::SeqCst) {
        up.arrived.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(5), up.release.notified()).await;
    }
    let burst = up
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if burst || up.down.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "upstream down".to_owned())
    } else {
        (StatusCode::OK, format!("fresh {id}"))
    }
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn start_upstream() -> (SocketAddr, Arc<Upstream>) {
    let up = Arc::new(Upstream::default());
    let app = Router::new()
        .route("/item/{id}", get(item))
        .with_state(up.clone());
    (serve(app).await, up)
}

// ---------------------------------------------------------------------------------------------
// The transport: a tower service over reqwest, whole bodies as text.

fn transport(
    client: reqwest::Client,
) -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    tower::service_fn(move |request: Req| {
        let client = client.clone();
        async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.text().await?;
            Ok::<_, BoxError>(answer.body(body)?)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The stack, and what the tests read of it.

struct Knobs {
    max_retries: u32,
    failure_threshold: u32,
    reset_timeout: Duration,
    max_concurrent: u32,
    bulkhead_retry_after: Duration,
    chaos: Vec<Fault<Req, Res>>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            max_retries: 3,
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(3600),
            max_concurrent: 8,
            bulkhead_retry_after: Duration::from_millis(50),
            chaos: Vec::new(),
        }
    }
}

/// A retry the test saw: (attempt, class, status, delay).
type Retried = (u32, Class, Option<u16>, Duration);

struct Family {
    stack: Stack,
    breaker: CircuitBreakerHandle,
    bulkhead: BulkheadHandle,
    chaos: ChaosHandle,
    retries: Arc<Mutex<Vec<Retried>>>,
    cache: LastGood<fn(&Req) -> String, String, Res>,
}

fn path_of(request: &Req) -> String {
    request.uri().path().to_owned()
}

fn family(knobs: Knobs) -> Family {
    let retries = Arc::new(Mutex::new(Vec::new()));
    let seen = retries.clone();
    let retry = RetryLayer::builder()
        .http_client()
        .name("upstream")
        .max_retries(knobs.max_retries)
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .jitter(Jitter::None)
        .seed(7)
        .on_retry(move |e| {
            seen.lock()
                .unwrap()
                .push((e.attempt, e.class, e.code, e.delay));
        })
        .build()
        .unwrap();
    let breaker = CircuitBreakerLayer::builder()
        .name("upstream")
        .classifier(HttpStatus::new())
        .failure_threshold(knobs.failure_threshold)
        .reset_timeout(knobs.reset_timeout)
        // A rate window that never trips (minimum_calls out of reach), read by the tests.
        .count_window(100)
        .minimum_calls(1000)
        .failure_rate_threshold(1.0)
        .build()
        .unwrap();
    let bulkhead = BulkheadLayer::builder()
        .name("upstream")
        .max_concurrent(knobs.max_concurrent)
        .retry_after(knobs.bulkhead_retry_after)
        .build()
        .unwrap();
    let mut chaos = ChaosLayer::<Req, Res>::builder()
        .name("upstream-chaos")
        .seed(42);
    for fault in knobs.chaos {
        chaos = chaos.fault(fault);
    }
    let chaos = chaos.build().unwrap();

    // Level 1: the last good answer for the path; level 3: a static answer.
    let cache: LastGood<fn(&Req) -> String, String, Res> = LastGood::new(1000, path_of);
    let fallback = FallbackLayer::builder("upstream")
        .classifier(HttpStatus::new())
        .chain(DegradationLevel::Slight, cache.clone())
        .then(
            DegradationLevel::Minimal,
            tower::service_fn(|_: Req| async {
                Ok::<_, BoxError>(http::Response::new("static".to_owned()))
            }),
        )
        .build();

    let handles = (breaker.handle(), bulkhead.handle(), chaos.handle());
    let stack = ServiceBuilder::new()
        .layer(fallback)
        .layer(cache.record())
        .layer(retry)
        .layer(breaker)
        .layer(bulkhead)
        .timeout(Duration::from_secs(2))
        .layer(chaos)
        .service(transport(reqwest::Client::new()));
    Family {
        stack: BoxCloneSyncService::new(stack),
        breaker: handles.0,
        bulkhead: handles.1,
        chaos: handles.2,
        retries,
        cache,
    }
}

// ---------------------------------------------------------------------------------------------
// The front server: its handler calls the upstream through the stack.

#[derive(Clone)]
struct Front {
    stack: Stack,
    upstream: SocketAddr,
}

async fn front_handler(State(front): State<Front>, Path(id): Path<String>) -> impl IntoResponse {
    let request = http::Request::get(format!("http://{}/item/{id}", front.upstream))
        .body(String::new())
        .unwrap();
    let mut stack = front.stack.clone();
    match stack.ready().await.unwrap().call(request).await {
        Ok(response) => {
            let degraded = response.degraded().map(|d| d.header_value());
            let status = response.status();
            let mut answer = (status, response.into_body()).into_response();
            if let Some(degraded) = degraded {
                answer
                    .headers_mut()
                    .insert("x-degraded", degraded.parse().unwrap());
            }
            answer
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

async fn start_front(stack: Stack, upstream: SocketAddr) -> SocketAddr {
    let app = Router::new()
        .route("/front/{id}", get(front_handler))
        .with_state(Front { stack, upstream });
    serve(app).await
}

/// Polls `done` every 5 ms, for at most 2 s.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..400 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done()
}

fn retried(family: &Family) -> Vec<Retried> {
    family.retries.lock().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_upstream_503_burst_is_retried_and_healed() {
    let (upstream, up) = start_upstream().await;
    let f = family(Knobs::default());
    let front = start_front(f.stack.clone(), upstream).await;

    up.fail_next.store(2, Ordering::SeqCst);
    let reply = http1::get(front, "/front/a").await.unwrap();

    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "fresh a");
    assert_eq!(reply.header("x-degraded"), None, "healed, not degraded");
    assert_eq!(up.hits.load(Ordering::SeqCst), 3);
    // The retry saw each 503 ...
    let seen = retried(&f);
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|(_, class, code, _)| *class == Class::API_ERRORS_5XX && *code == Some(503))
    );
    // ... and the breaker counted every attempt: 3 calls, 2 failures, and closed.
    assert_eq!(f.breaker.window_totals(), Some((3, 2, 0)));
    assert_eq!(f.breaker.consecutive_failures(), 0);
    assert_eq!(f.breaker.state(), Breaker::Closed);
    assert_eq!(f.bulkhead.in_flight(), 0);
}

#[tokio::test]
async fn the_open_breaker_stops_the_retry_and_the_fallback_answers_degraded() {
    let (upstream, up) = start_upstream().await;
    let f = family(Knobs {
        max_retries: 5,
        failure_threshold: 3,
        ..Knobs::default()
    });
    let front = start_front(f.stack.clone(), upstream).await;

    // A good answer for /item/a is kept while the upstream is healthy.
    let reply = http1::get(front, "/front/a").await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "fresh a"));
    assert_eq!(f.cache.len(), 1);

    up.down.store(true, Ordering::SeqCst);
    let hits = up.hits.load(Ordering::SeqCst);
    let started = Instant::now();
    let reply = http1::get(front, "/front/a").await.unwrap();
    // Three 503s opened the breaker; the 4th attempt met its rejection (retry after an hour,
    // beyond `max_retry_after`), so the retry stopped at once instead of waiting.
    assert_eq!(up.hits.load(Ordering::SeqCst) - hits, 3);
    assert_eq!(f.breaker.state(), Breaker::Open);
    assert!(started.elapsed() < Duration::from_secs(2));
    // Retries after the three 503s; none after the rejection (no wait of an hour).
    let seen = retried(&f);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(_, class, _, _)| *class == Class::API_ERRORS_5XX)
    );
    // The fallback answered from the cache, marked level 1.
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "fresh a");
    assert_eq!(reply.header("x-degraded"), Some("upstream; level=1"));

    // A path never cached gets the static answer, level 3, without touching the upstream.
    let reply = http1::get(front, "/front/b").await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "static"));
    assert_eq!(reply.header("x-degraded"), Some("upstream; level=3"));
    assert_eq!(up.hits.load(Ordering::SeqCst) - hits, 3);
    // The upstream's 503s were never kept as "last good".
    assert_eq!(f.cache.len(), 1);
}

#[tokio::test]
async fn a_503_left_after_the_retries_never_replaces_the_last_good_answer() {
    let (upstream, up) = start_upstream().await;
    let f = family(Knobs {
        max_retries: 1,
        failure_threshold: 100,
        ..Knobs::default()
    });
    let front = start_front(f.stack.clone(), upstream).await;

    let reply = http1::get(front, "/front/a").await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "fresh a"));

    // The breaker stays closed: the retry gives up and returns the upstream's 503 response.
    up.down.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let reply = http1::get(front, "/front/a").await.unwrap();
        // The fallback answers with the last *good* answer, not the 503 it just saw.
        assert_eq!((reply.status, reply.body.as_str()), (200, "fresh a"));
        assert_eq!(reply.header("x-degraded"), Some("upstream; level=1"));
    }
    assert_eq!(f.breaker.state(), Breaker::Closed);
    assert_eq!(up.hits.load(Ordering::SeqCst), 1 + 2 * 2);
}

#[tokio::test]
async fn bulkhead_rejections_are_not_counted_by_the_breaker_nor_hammered_by_the_retry() {
    let (upstream, up) = start_upstream().await;
    let f = family(Knobs {
        max_retries: 2,
        // One failure would open the breaker: a counted rejection would show at once.
        failure_threshold: 1,
        max_concurrent: 1,
        bulkhead_retry_after: Duration::from_millis(50),
        ..Knobs::default()
    });
    let front = start_front(f.stack.clone(), upstream).await;

    // A call holds the compartment's only slot in the upstream.
    up.hang.store(true, Ordering::SeqCst);
    let holder = tokio::spawn(http1::get(front, "/front/slow"));
    tokio::time::timeout(Duration::from_secs(2), up.arrived.notified())
        .await
        .unwrap();
    assert_eq!(f.bulkhead.in_flight(), 1);

    let started = Instant::now();
    let reply = http1::get(front, "/front/b").await.unwrap();
    let elapsed = started.elapsed();
    // The compartment stayed full: the fallback answered; the upstream saw only the holder.
    assert_eq!(reply.header("x-degraded"), Some("upstream; level=3"));
    assert_eq!(up.hits.load(Ordering::SeqCst), 1);
    // The retry waited the bulkhead's Retry-After between tries, and gave up after its budget.
    let seen = retried(&f);
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (_, class, _, delay) in &seen {
        assert_eq!(*class, Class::REJECTED);
        assert!(*delay >= Duration::from_millis(50), "{delay:?}");
    }
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    // The breaker never counted the rejections.
    assert_eq!(f.breaker.state(), Breaker::Closed);
    assert_eq!(f.breaker.consecutive_failures(), 0);
    assert_eq!(f.breaker.window_totals(), Some((0, 0, 0)));

    up.hang.store(false, Ordering::SeqCst);
    up.release.notify_one();
    let held = holder.await.unwrap().unwrap();
    assert_eq!((held.status, held.body.as_str()), (200, "fresh slow"));
    assert!(eventually(|| f.bulkhead.in_flight() == 0).await);
    assert_eq!(f.breaker.window_totals(), Some((1, 0, 0)));
}

#[tokio::test]
async fn a_chaos_503_is_counted_like_a_real_one_and_its_retry_after_honoured() {
    let (upstream, up) = start_upstream().await;
    let f = family(Knobs {
        chaos: vec![
            Fault::http_status(StatusCode::SERVICE_UNAVAILABLE)
                .retry_after(Duration::from_secs(1))
                .rate(1.0)
                .schedule(Schedule::FirstCalls(1)),
        ],
        ..Knobs::default()
    });
    f.chaos.arm();
    let front = start_front(f.stack.clone(), upstream).await;

    let started = Instant::now();
    let reply = http1::get(front, "/front/a").await.unwrap();
    let elapsed = started.elapsed();

    assert_eq!((reply.status, reply.body.as_str()), (200, "fresh a"));
    assert_eq!(reply.header("x-degraded"), None);
    // The injected 503 answered instead of the upstream: only the retry reached it.
    assert_eq!(up.hits.load(Ordering::SeqCst), 1);
    // The breaker counted it as the failure a real 503 is.
    assert_eq!(f.breaker.window_totals(), Some((2, 1, 0)));
    // The retry waited exactly its Retry-After (no jitter, never early).
    assert_eq!(
        retried(&f),
        vec![(1, Class::API_ERRORS_5XX, Some(503), Duration::from_secs(1))]
    );
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test]
async fn a_cancelled_front_request_releases_every_obligation_of_the_stack() {
    let (upstream, up) = start_upstream().await;
    let f = family(Knobs {
        max_retries: 0,
        failure_threshold: 1,
        reset_timeout: Duration::from_millis(100),
        ..Knobs::default()
    });
    let front = start_front(f.stack.clone(), upstream).await;

    // One 503 opens the breaker; after the reset timeout the next call is its probe.
    up.fail_next.store(1, Ordering::SeqCst);
    let reply = http1::get(front, "/front/a").await.unwrap();
    assert_eq!(reply.header("x-degraded"), Some("upstream; level=3"));
    assert_eq!(f.breaker.state(), Breaker::Open);
    tokio::time::sleep(Duration::from_millis(150)).await;

    // The probe hangs in the upstream; the client gives up and drops the connection.
    up.hang.store(true, Ordering::SeqCst);
    let mut client = TcpStream::connect(front).await.unwrap();
    client
        .write_all(
            format!("GET /front/a HTTP/1.1\r\nHost: {front}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), up.arrived.notified())
        .await
        .unwrap();
    assert_eq!(f.bulkhead.in_flight(), 1);
    assert_eq!(f.breaker.state(), Breaker::HalfOpen);
    drop(client);

    // hyper drops the handler's future: the bulkhead's permit comes back ...
    assert!(
        eventually(|| f.bulkhead.in_flight() == 0).await,
        "bulkhead in flight: {}",
        f.bulkhead.in_flight()
    );
    // ... and the probe's slot too: the next call is admitted as a probe (not rejected as
    // half-open full), succeeds and closes the circuit.
    up.hang.store(false, Ordering::SeqCst);
    let hits = up.hits.load(Ordering::SeqCst);
    let reply = http1::get(front, "/front/a").await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "fresh a"));
    assert_eq!(reply.header("x-degraded"), None);
    assert_eq!(up.hits.load(Ordering::SeqCst) - hits, 1);
    assert_eq!(f.breaker.state(), Breaker::Closed);
}

#[tokio::test]
async fn a_dropped_stack_future_releases_the_permit_and_the_probe_slot() {
    let (upstream, up) = start_upstream().await;
    let f = family(Knobs {
        max_retries: 0,
        failure_threshold: 1,
        reset_timeout: Duration::from_millis(100),
        ..Knobs::default()
    });
    let get = |id: &str| {
        http::Request::get(format!("http://{upstream}/item/{id}"))
            .body(String::new())
            .unwrap()
    };
    let mut stack = f.stack.clone();

    up.fail_next.store(1, Ordering::SeqCst);
    let answer = stack.ready().await.unwrap().call(get("a")).await.unwrap();
    assert_eq!(
        answer.degraded().unwrap().level(),
        DegradationLevel::Minimal
    );
    assert_eq!(f.breaker.state(), Breaker::Open);
    tokio::time::sleep(Duration::from_millis(150)).await;

    up.hang.store(true, Ordering::SeqCst);
    let probe = stack.ready().await.unwrap().call(get("a"));
    let arrived = up.arrived.notified();
    tokio::select! {
        _ = probe => panic!("the probe should hang"),
        _ = arrived => {}
    }
    // The probe's future is dropped here, by select!.
    assert_eq!(f.bulkhead.in_flight(), 0);
    assert_eq!(f.breaker.state(), Breaker::HalfOpen);

    up.hang.store(false, Ordering::SeqCst);
    let answer = stack.ready().await.unwrap().call(get("a")).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.degraded().is_none());
    assert_eq!(f.breaker.state(), Breaker::Closed);
}

/// The front server's answers, read through reqwest.
mod http1 {
    use std::net::SocketAddr;

    pub(crate) struct Reply {
        pub(crate) status: u16,
        headers: http::HeaderMap,
        pub(crate) body: String,
    }

    impl Reply {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
    }

    pub(crate) async fn get(addr: SocketAddr, path: &'static str) -> reqwest::Result<Reply> {
        let res = reqwest::get(format!("http://{addr}{path}")).await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

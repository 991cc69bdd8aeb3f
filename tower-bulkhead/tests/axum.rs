//! An axum server on 127.0.0.1 behind compartments in `.http()` mode.
//!
//! Real sockets, so real time: nothing here sleeps; every network step is bounded.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::Request;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_bulkhead::{BulkheadConfig, BulkheadLayer};

/// A bound on every network step, so a broken test fails instead of hanging.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("step finished in time")
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One GET on `stream` (kept alive): the status and the `Retry-After` header, if any. The
/// handlers here answer bodies of 2 bytes.
async fn exchange(stream: &mut TcpStream, addr: SocketAddr, path: &str) -> (u16, Option<String>) {
    bounded(async {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let mut buf = [0; 1024];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed early");
            response.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&response);
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length: usize = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if response.len() >= head_end + 4 + length {
                    let mut lines = text.lines();
                    let status = lines
                        .next()
                        .unwrap()
                        .split(' ')
                        .nth(1)
                        .unwrap()
                        .parse()
                        .unwrap();
                    let retry_after = lines
                        .take_while(|l| !l.is_empty())
                        .find_map(|l| l.strip_prefix("retry-after: ").map(str::to_owned));
                    return (status, retry_after);
                }
            }
        }
    })
    .await
}

async fn get_once(addr: SocketAddr, path: &str) -> (u16, Option<String>) {
    let mut stream = bounded(TcpStream::connect(addr)).await.unwrap();
    exchange(&mut stream, addr, path).await
}

#[tokio::test]
async fn a_hundred_idle_keep_alive_connections_hold_no_permit() {
    let bulkhead = BulkheadLayer::builder()
        .name("api")
        .max_concurrent(5)
        .http()
        .build()
        .unwrap();
    let handle = bulkhead.handle();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route_layer(bulkhead);
    let addr = serve(app).await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        let mut stream = bounded(TcpStream::connect(addr)).await.unwrap();
        // One request, then the connection stays open, idle, kept alive.
        assert_eq!(exchange(&mut stream, addr, "/").await.0, 200);
        idle.push(stream);
    }
    assert_eq!(handle.in_flight(), 0, "idle connections hold no permit");
    // A request on a fresh connection is admitted at once, as on an idle one.
    assert_eq!(get_once(addr, "/").await.0, 200);
    assert_eq!(exchange(&mut idle[57], addr, "/").await.0, 200);
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test]
async fn one_tenant_flooding_gets_503_and_429_while_another_gets_200() {
    let acme_gate = Arc::new(Semaphore::new(0));
    let gate = acme_gate.clone();
    let per_tenant = BulkheadLayer::builder()
        .name("tenants")
        .max_concurrent(10)
        .key_config(
            "/t/acme",
            BulkheadConfig {
                max_concurrent: 2,
                refill_tokens: Some(5),
                refill_period_seconds: Some(3600.0),
                ..BulkheadConfig::default()
            },
        )
        .build_keyed(|request: &Request<Body>| {
            request
                .extensions()
                .get::<MatchedPath>()
                .map(|path| path.as_str().to_owned())
                .unwrap_or_default()
        })
        .unwrap()
        .http();
    let handle = per_tenant.handle();
    let app = Router::new()
        .route(
            "/t/acme",
            get(move || {
                let gate = gate.clone();
                async move {
                    gate.acquire().await.unwrap().forget();
                    "ok"
                }
            }),
        )
        .route("/t/globex", get(|| async { "ok" }))
        .route_layer(per_tenant);
    let addr = serve(app).await;

    // Acme floods: two requests hang in its compartment, the rest are refused at once.
    let hanging: Vec<_> = (0..2)
        .map(|_| tokio::spawn(get_once(addr, "/t/acme")))
        .collect();
    bounded(async {
        while handle.get(&"/t/acme".to_owned()).map(|h| h.in_flight()) != Some(2) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    for _ in 0..5 {
        let (status, retry_after) = get_once(addr, "/t/acme").await;
        assert_eq!(status, 503);
        assert_eq!(retry_after.as_deref(), Some("1"));
        // Globex is not slowed at all.
        assert_eq!(get_once(addr, "/t/globex").await.0, 200);
    }
    acme_gate.add_permits(100);
    for call in hanging {
        assert_eq!(call.await.unwrap().0, 200);
    }
    // Acme's quota: 5 per hour, 2 spent. 3 more pass, then 429 until the next token
    // (refilled continuously: one every 12 minutes).
    for _ in 0..3 {
        assert_eq!(get_once(addr, "/t/acme").await.0, 200);
    }
    let (status, retry_after) = get_once(addr, "/t/acme").await;
    assert_eq!(status, 429);
    let seconds: u64 = retry_after.unwrap().parse().unwrap();
    assert!((700..=720).contains(&seconds), "{seconds}");
    assert_eq!(get_once(addr, "/t/globex").await.0, 200);
    assert_eq!(handle.keys(), 2);
}

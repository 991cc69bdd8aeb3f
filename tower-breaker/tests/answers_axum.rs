//! An axum router served on 127.0.0.1, its routes protected by breakers in `.http()` mode.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_breaker::{CircuitBreakerLayer, HttpStatus, State};

/// Serves `app` on 127.0.0.1:0.
async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One GET through reqwest: the status and the `Retry-After` header, if any.
async fn get_status(addr: SocketAddr, path: &str) -> (u16, Option<String>) {
    let exchange = reqwest::get(format!("http://{addr}{path}"));
    let response = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("answered in time")
        .expect("a response");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), retry_after)
}

#[tokio::test]
async fn a_failing_route_trips_while_other_routes_keep_answering() {
    let reports_breaker = CircuitBreakerLayer::builder()
        .name("reports")
        .failure_threshold(3)
        .reset_timeout(Duration::from_secs(30))
        .classifier(HttpStatus::new())
        .http()
        .build()
        .unwrap();
    let users_breaker = CircuitBreakerLayer::builder()
        .name("users")
        .failure_threshold(3)
        .classifier(HttpStatus::new())
        .http()
        .build()
        .unwrap();
    let reports = reports_breaker.handle();
    let users = users_breaker.handle();
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();

    let app = Router::new()
        .route(
            "/reports",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { StatusCode::INTERNAL_SERVER_ERROR }
            }),
        )
        .route_layer(reports_breaker)
        .merge(
            Router::new()
                .route("/users", get(|| async { "ok" }))
                .route_layer(users_breaker),
        );
    let addr = serve(app).await;

    for _ in 0..3 {
        assert_eq!(get_status(addr, "/reports").await, (500, None));
    }
    assert_eq!(reports.state(), State::Open);
    assert_eq!(handled.load(Ordering::SeqCst), 3);

    // Open: 503 with Retry-After, answered without calling the handler.
    let (status, retry_after) = get_status(addr, "/reports").await;
    assert_eq!(status, 503);
    // The time left of the 30 s reset timeout, in whole seconds rounded up. The clock is real
    // here (real sockets), so leave room for a slow machine between the trip and this request.
    let retry_after: u64 = retry_after.expect("a Retry-After header").parse().unwrap();
    assert!((20..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(
        handled.load(Ordering::SeqCst),
        3,
        "the handler was not called"
    );

    // Another breaker's route is unaffected, and unknown paths are not wrapped at all.
    for _ in 0..5 {
        assert_eq!(get_status(addr, "/users").await.0, 200);
    }
    assert_eq!(users.state(), State::Closed);
    assert_eq!(get_status(addr, "/nowhere").await.0, 404);
}

#[tokio::test]
async fn per_route_breakers_keyed_by_matched_path() {
    let breaker = CircuitBreakerLayer::builder()
        .name("routes")
        .failure_threshold(2)
        .classifier(HttpStatus::new())
        .http()
        .build_keyed(|req: &Request<Body>| {
            // The route template, never the raw path: `/items/{id}` is one key for every id.
            req.extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default()
        })
        .unwrap();
    let handle = breaker.handle();
    let app = Router::new()
        .route("/items/{id}", get(|| async { StatusCode::BAD_GATEWAY }))
        .route("/health", get(|| async { "ok" }))
        .route_layer(breaker);
    let addr = serve(app).await;

    assert_eq!(get_status(addr, "/items/1").await.0, 502);
    assert_eq!(get_status(addr, "/items/2").await.0, 502);
    assert_eq!(
        get_status(addr, "/items/3").await.0,
        503,
        "every id shares the route's breaker"
    );
    assert_eq!(handle.state(&"/items/{id}".to_owned()), Some(State::Open));
    assert_eq!(get_status(addr, "/health").await.0, 200);
    assert_eq!(handle.keys(), 2);
}

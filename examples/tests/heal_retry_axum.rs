//! Body replay with axum's `Body` (not `Clone`): a streamed upload retried through an axum
//! router that answers 503 to the first attempt, after reading the body.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::routing::put;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_heal::RetryLayer;

#[tokio::test(start_paused = true)]
async fn an_axum_body_is_replayed_on_retry() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let app = Router::new().route(
        "/upload",
        put(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    (StatusCode::SERVICE_UNAVAILABLE, Bytes::new())
                } else {
                    (StatusCode::OK, body)
                }
            }
        }),
    );
    let mut svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .http_client()
                .replay_bodies(1024)
                .build()
                .unwrap(),
        )
        .service(app);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"hello, ")),
        Ok(Bytes::from_static(b"streamed ")),
        Ok(Bytes::from_static(b"world")),
    ];
    let request = http::Request::put("/upload")
        .body(Body::from_stream(tokio_stream::iter(chunks)))
        .unwrap();
    let response = ServiceExt::<http::Request<Body>>::ready(&mut svc)
        .await
        .unwrap()
        .call(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"hello, streamed world");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

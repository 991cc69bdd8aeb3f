//! An axum server with the chaos layer answers the injected 503 + Retry-After over 127.0.0.1.
#![cfg(all(feature = "inject", feature = "http"))]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_chaos::{ChaosLayer, Fault, Schedule};

/// One HTTP/1.1 GET over a fresh connection: the status and the `Retry-After` header, if any.
async fn get_status(addr: SocketAddr, path: &str) -> (u16, Option<String>) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let response = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("answered in time");
    let mut lines = response.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let retry_after = lines
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("retry-after: ").map(str::to_owned));
    (status, retry_after)
}

#[tokio::test]
async fn an_axum_server_answers_the_injected_503_with_retry_after() {
    let chaos = ChaosLayer::<Request, Response>::builder()
        .name("orders-chaos")
        .fault(
            Fault::http_status(StatusCode::SERVICE_UNAVAILABLE)
                .retry_after(Duration::from_secs(7))
                .rate(1.0)
                .schedule(Schedule::FirstCalls(2)),
        )
        .http()
        .armed(true)
        .build()
        .unwrap();
    let handle = chaos.handle();
    let app = Router::new()
        .route("/orders", get(|| async { "orders" }))
        .route_layer(chaos);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    assert_eq!(
        get_status(addr, "/orders").await,
        (503, Some("7".to_owned()))
    );
    assert_eq!(
        get_status(addr, "/orders").await,
        (503, Some("7".to_owned()))
    );
    assert_eq!(
        get_status(addr, "/orders").await,
        (200, None),
        "the first two only"
    );
    assert_eq!(
        get_status(addr, "/missing").await.0,
        404,
        "route_layer leaves unknown paths alone"
    );
    assert_eq!(handle.stats().fault("http_503").unwrap().injected, 2);
}

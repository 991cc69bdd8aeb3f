//! The family's metrics on `/metrics`, for Prometheus and the dashboard in `examples/ops/`.
//!
//! ```text
//! cargo run -p examples --example ops_metrics -- [--listen 127.0.0.1:9464] [--seconds N]
//! ```
//!
//! A breaker, a bulkhead, a retry, a fallback and a chaos layer (armed, 10 % of calls answered
//! `503`) sit in front of an upstream on 127.0.0.1 that goes down for 5 s every 20 s; a caller
//! sends 20 calls a second through them. `metrics-exporter-prometheus` (no listener of its own)
//! records what the layers emit and an axum route renders it. Install the recorder before
//! building the layers: they register their metrics when they are built.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, HttpStatus};
use tower_bulkhead::BulkheadLayer;
use tower_chaos::{ChaosLayer, Fault};
use tower_heal::{BoxError, DegradationLevel, FallbackLayer, RetryLayer};

type Req = http::Request<String>;
type Res = http::Response<String>;

async fn metrics(State(handle): State<PrometheusHandle>) -> String {
    handle.render()
}

async fn upstream(State(down): State<Arc<AtomicBool>>) -> (StatusCode, &'static str) {
    if down.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    } else {
        (StatusCode::OK, "ok")
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut listen = "127.0.0.1:9464".to_owned();
    let mut seconds: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            ("--seconds", Some(v)) => seconds = Some(v.parse()?),
            _ => return Err("usage: ops_metrics [--listen ADDR] [--seconds N]".into()),
        }
    }

    // First the recorder, then the layers.
    let handle = PrometheusBuilder::new().install_recorder()?;

    let down = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_url = format!("http://{}/", listener.local_addr()?);
    let app = Router::new()
        .route("/", get(upstream))
        .with_state(down.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let chaos = ChaosLayer::<Req, Res>::builder()
        .name("upstream-chaos")
        .seed(7)
        .fault(Fault::http_status(StatusCode::SERVICE_UNAVAILABLE).rate(0.1))
        .build()?;
    chaos.handle().arm();
    let client = reqwest::Client::new();
    let transport = tower::service_fn(move |request: Req| {
        let client = client.clone();
        async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let status = response.status();
            Ok::<_, BoxError>(
                http::Response::builder()
                    .status(status)
                    .body(response.text().await?)?,
            )
        }
    });
    let stack = ServiceBuilder::new()
        .layer(
            FallbackLayer::builder("upstream")
                .classifier(HttpStatus::new())
                .level(DegradationLevel::Minimal)
                .build(tower::service_fn(|_: Req| async {
                    Ok::<_, BoxError>(http::Response::new("canned".to_owned()))
                })),
        )
        .layer(
            RetryLayer::builder()
                .http_client()
                .name("upstream")
                .max_retries(2)
                .build()?,
        )
        .layer(
            CircuitBreakerLayer::builder()
                .name("upstream")
                .classifier(HttpStatus::new())
                .failure_rate_threshold(0.5)
                .count_window(20)
                .minimum_calls(10)
                .reset_timeout(Duration::from_secs(2))
                .build()?,
        )
        .layer(
            BulkheadLayer::builder()
                .name("upstream")
                .max_concurrent(8)
                .build()?,
        )
        .timeout(Duration::from_millis(500))
        .layer(chaos)
        .service(transport);
    let stack = BoxCloneSyncService::new(stack);

    // Traffic: 20 calls a second; the upstream is down 5 s in every 20.
    let traffic = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(50));
        for n in 0u64.. {
            ticks.tick().await;
            down.store(n % 400 >= 300, Ordering::Relaxed);
            let stack = stack.clone();
            let request = http::Request::get(upstream_url.as_str()).body(String::new());
            tokio::spawn(async move {
                if let Ok(request) = request {
                    let _ = stack.oneshot(request).await;
                }
            });
        }
    });
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(handle);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    match seconds {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => std::future::pending().await,
    }
    traffic.abort();
    server.abort();
    Ok(())
}

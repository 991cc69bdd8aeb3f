//! The main demo: a circuit breaker protecting an axum route that calls a flaky upstream.
//!
//! ```sh
//! cargo run -p examples --example breaker_axum
//! ```
//!
//! Both servers listen on 127.0.0.1. The upstream fails for a while; the breaker opens after
//! three failures, answers `503` with `Retry-After` without calling the upstream, and closes
//! again after one successful probe once the reset timeout (1 s here) has passed.
//!
//! What to copy is [`front`]: the breaker and its axum wiring. The flaky upstream, the scenario
//! and the table are scaffolding, in `examples/src/breaker_demo.rs`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use examples::breaker_demo::{self, Upstream, table};
use tower_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, ConfigError, Transition};

/// The front server: `GET /quote` asks the upstream at `upstream_url` for a price, behind a
/// circuit breaker named "prices".
pub(crate) fn front(
    upstream_url: String,
    reset_timeout: Duration,
    on_transition: impl Fn(&Transition<'_>) + Send + Sync + 'static,
) -> Result<(Router, CircuitBreakerHandle), ConfigError> {
    let breaker = CircuitBreakerLayer::builder()
        .name("prices")
        .failure_threshold(3) // open after 3 failures in a row,
        .reset_timeout(reset_timeout) // stay open this long, then let one probe through
        .on_transition(on_transition)
        .http() // answer 503 + Retry-After itself; count 5xx answers as failures
        .build()?;
    let handle = breaker.handle(); // to read (or force) its state from elsewhere

    let client = reqwest::Client::new();
    let app = Router::new()
        .route(
            "/quote",
            get(move || quote(client.clone(), format!("{upstream_url}/price"))),
        )
        .route_layer(breaker); // wraps /quote only; unknown paths still answer 404
    Ok((app, handle))
}

/// Calls the upstream. Its failure becomes this server's `502 Bad Gateway`, as a gateway says
/// "the server behind me failed"; the breaker counts that 502 as a failure.
async fn quote(client: reqwest::Client, url: String) -> (StatusCode, String) {
    match client.get(url).send().await {
        Ok(res) if res.status().is_success() => {
            (StatusCode::OK, res.text().await.unwrap_or_default())
        }
        Ok(res) => (
            StatusCode::BAD_GATEWAY,
            format!("upstream answered {}", res.status()),
        ),
        Err(err) => (
            StatusCode::BAD_GATEWAY,
            format!("upstream unreachable: {err}"),
        ),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reset_timeout = Duration::from_secs(1);
    let upstream = Upstream::start().await?;
    let (app, breaker) = front(upstream.url.clone(), reset_timeout, |t| {
        println!("{}", table::note(&t.to_string()));
    })?;
    let addr = breaker_demo::serve(app).await?;

    let start = Instant::now();
    println!("{}", table::header());
    let steps = breaker_demo::run(addr, &upstream, &breaker, reset_timeout, |step| {
        println!("{}", table::row(start.elapsed().as_millis(), step));
    })
    .await?;

    let answered = steps.iter().filter(|s| s.retry_after.is_some()).count();
    println!(
        "\n{} requests; {answered} answered by the breaker without reaching the upstream; final state {}.\n",
        steps.len(),
        breaker.state(),
    );
    println!("{}", table::LEGEND);
    Ok(())
}

//! A circuit breaker in front of a `reqwest::Client`: it opens on 5xx answers and on refused
//! connections, then fails fast without sending anything.
//!
//! ```sh
//! cargo run -p examples --example breaker_reqwest
//! ```
//!
//! A local upstream on 127.0.0.1 answers `500`; after three in a row the breaker is open and
//! the next requests are refused at once with a [`Rejected`] carrying `retry_after`.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{BoxError, CircuitBreaker, CircuitBreakerLayer, Rejected, ReqwestStatus};

/// The type of a breaker-wrapped client, to keep in a struct field.
type PricesClient = CircuitBreaker<reqwest::Client, ReqwestStatus>;

/// An API client of your own, holding the breaker-wrapped client.
struct Prices {
    base: String,
    client: PricesClient,
}

impl Prices {
    fn new(base: String) -> Result<Self, BoxError> {
        let breaker = CircuitBreakerLayer::builder()
            .name("prices")
            .failure_threshold(3) // open after 3 failures in a row,
            .reset_timeout(Duration::from_secs(30)) // fail fast for 30 s, then probe
            .classifier(ReqwestStatus::new()) // 5xx and connect errors are failures
            .build()?;
        let client = ServiceBuilder::new()
            .layer(breaker)
            .service(reqwest::Client::new());
        Ok(Self { base, client })
    }

    /// One `GET /price`: the status, or why there is none.
    async fn price(&mut self) -> Result<reqwest::Response, BoxError> {
        let request = reqwest::Request::new(
            reqwest::Method::GET,
            format!("{}/price", self.base).parse()?,
        );
        self.client.ready().await?.call(request).await
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let app = Router::new().route(
        "/price",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database down") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut prices = Prices::new(base)?;
    for n in 1..=5 {
        match prices.price().await {
            Ok(res) => println!("request {n}: upstream answered {}", res.status()),
            Err(err) => match err.downcast_ref::<Rejected>() {
                Some(rejected) => println!(
                    "request {n}: not sent, {rejected}; retry in {:?}",
                    rejected.retry_after().unwrap_or_default()
                ),
                None => println!("request {n}: failed: {err}"),
            },
        }
    }
    Ok(())
}

//! The scaffolding of the main demo (`examples/breaker_axum.rs`): a flaky upstream, the
//! scenario that drives the front server, and the table it prints. The code to copy, the
//! breaker and its axum wiring, is in the example file itself.
//!
//! [`run`] drives a fixed scenario and reports each request as a [`Step`]: the upstream is
//! healthy, goes down (the breaker opens after three failures), the breaker answers `503` with
//! `Retry-After` without touching the upstream, the upstream recovers, and after the reset
//! timeout one probe closes the circuit again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State as Shared;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_breaker::{CircuitBreakerHandle, State};

/// Serves `app` on 127.0.0.1, on a port of the system's choosing.
///
/// # Errors
/// If it cannot bind.
pub async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// A flaky upstream: `GET /price` answers `200 42` while healthy, `503` otherwise.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    /// Starts it on 127.0.0.1, healthy.
    ///
    /// # Errors
    /// If it cannot bind.
    pub async fn start() -> std::io::Result<Self> {
        let healthy = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route(
                "/price",
                get(|Shared((healthy, hits)): Shared<(Arc<AtomicBool>, Arc<AtomicUsize>)>| async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    if healthy.load(Ordering::SeqCst) {
                        (StatusCode::OK, "42")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "upstream down")
                    }
                }),
            )
            .with_state((healthy.clone(), hits.clone()));
        let addr = serve(app).await?;
        Ok(Self {
            url: format!("http://{addr}"),
            healthy,
            hits,
        })
    }

    /// Makes it fail (`false`) or recover (`true`).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests it has received.
    #[must_use]
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// One request of the scenario and what came of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The phase of the scenario.
    pub phase: &'static str,
    /// The front server's status.
    pub status: u16,
    /// Its `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The breaker's state after the request.
    pub state: State,
    /// Requests the upstream has received so far.
    pub upstream_hits: usize,
}

/// Runs the scenario against the front server at `front` (whose `/quote` calls `upstream`
/// behind the breaker `breaker`), calling `report` after each request; returns every step.
///
/// It waits `reset_timeout` once, with `tokio::time::sleep` (virtual under a paused clock).
///
/// # Errors
/// If a request fails at the connection level.
pub async fn run(
    front: SocketAddr,
    upstream: &Upstream,
    breaker: &CircuitBreakerHandle,
    reset_timeout: Duration,
    mut report: impl FnMut(&Step),
) -> Result<Vec<Step>, reqwest::Error> {
    let client = reqwest::Client::new();
    let mut steps = Vec::new();
    let phases: [(&'static str, usize); 5] = [
        ("upstream healthy", 3),
        ("upstream down", 3),
        ("breaker open", 3),
        ("upstream back, probe after reset", 1),
        ("closed again", 2),
    ];
    for (phase, requests) in phases {
        match phase {
            "upstream down" => upstream.set_healthy(false),
            "upstream back, probe after reset" => {
                upstream.set_healthy(true);
                tokio::time::sleep(reset_timeout).await;
            }
            _ => {}
        }
        for _ in 0..requests {
            let res = client.get(format!("http://{front}/quote")).send().await?;
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let step = Step {
                phase,
                status: res.status().as_u16(),
                retry_after,
                state: breaker.state(),
                upstream_hits: upstream.hits(),
            };
            report(&step);
            steps.push(step);
        }
    }
    Ok(steps)
}

/// The demo's table: fixed-width columns, a header, one row per step.
pub mod table {
    use super::Step;

    /// The header and its rule.
    #[must_use]
    pub fn header() -> String {
        let head = format!(
            "{:>7}  {:<33}  {:>6}  {:>11}  {:<9}  {:>8}",
            "time", "phase", "status", "retry-after", "breaker", "upstream"
        );
        let rule = "-".repeat(head.len());
        format!("{head}\n{rule}")
    }

    /// One step, `elapsed_ms` after the start.
    #[must_use]
    pub fn row(elapsed_ms: u128, step: &Step) -> String {
        format!(
            "{:>5}ms  {:<33}  {:>6}  {:>11}  {:<9}  {:>8}",
            elapsed_ms,
            step.phase,
            step.status,
            step.retry_after.as_deref().unwrap_or("-"),
            step.state.as_str(),
            format!("{} hits", step.upstream_hits),
        )
    }

    /// A line between rows, for a transition or a remark.
    #[must_use]
    pub fn note(text: &str) -> String {
        format!("{:>7}  ** {text}", "")
    }

    /// What the statuses mean.
    pub const LEGEND: &str = "\
status 502 (Bad Gateway): the upstream failed (its 503) and the front server said so; the
           breaker let the call through and counted it as a failure.
status 503 (Service Unavailable) with Retry-After: the breaker answered by itself, without
           calling the upstream (see its hit count stay still).";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_columns_line_up() {
        let step = Step {
            phase: "upstream back, probe after reset",
            status: 503,
            retry_after: Some("60".to_owned()),
            state: State::HalfOpen,
            upstream_hits: 12,
        };
        let header = table::header();
        let head = header.lines().next().unwrap();
        let row = table::row(12_345, &step);
        assert_eq!(head.len(), row.len());
        // Each column ends (right-aligned) or starts (left-aligned) at the same offset.
        for word in ["status", "retry-after", "upstream"] {
            let end = head.find(word).unwrap() + word.len();
            assert_ne!(
                row.as_bytes()[end - 1],
                b' ',
                "{word} column:\n{head}\n{row}"
            );
        }
        assert_eq!(head.find("breaker"), row.find("half_open"));
        assert_eq!(head.find("phase"), row.find("upstream back"));
    }
}

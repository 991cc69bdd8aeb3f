//! The main demo: a circuit breaker protecting an axum route whose handler calls a flaky
//! upstream, all on 127.0.0.1.
//!
//! [`run`] drives a fixed scenario and reports each request as a [`Step`]: the upstream is
//! healthy, goes down (the breaker opens after three failures), the breaker answers `503` with
//! `Retry-After` without touching the upstream, the upstream recovers, and after the reset
//! timeout one probe closes the circuit again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State as Shared;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, HttpStatus, State};

use crate::http1;

/// A flaky upstream: `GET /price` answers `200 42` while healthy, `503` otherwise.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
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
            addr,
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

async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// The front server: `GET /quote` calls the upstream's `/price` and answers `200` with it, or
/// `502` when the upstream fails. The route sits behind a circuit breaker in `.http()` mode.
#[derive(Clone, Debug)]
pub struct Front {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The breaker protecting `/quote`.
    pub breaker: CircuitBreakerHandle,
    transitions: Arc<Mutex<Vec<String>>>,
}

impl Front {
    /// Starts it on 127.0.0.1, calling `upstream`; the breaker opens after 3 consecutive
    /// failures and stays open for `reset_timeout`.
    ///
    /// # Errors
    /// If it cannot bind.
    pub async fn start(upstream: SocketAddr, reset_timeout: Duration) -> std::io::Result<Self> {
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let seen = transitions.clone();
        let breaker = CircuitBreakerLayer::builder()
            .name("prices")
            .failure_threshold(3)
            .reset_timeout(reset_timeout)
            .classifier(HttpStatus::new())
            .on_transition(move |t| {
                let line = format!("{} -> {} ({})", t.from, t.to, t.reason.as_str());
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            })
            .http()
            .build()
            .map_err(std::io::Error::other)?;
        let handle = breaker.handle();
        let app = Router::new()
            .route(
                "/quote",
                get(move || async move {
                    match http1::get(upstream, "/price").await {
                        Ok(reply) if reply.status == 200 => (StatusCode::OK, reply.body),
                        Ok(reply) => (
                            StatusCode::BAD_GATEWAY,
                            format!("upstream answered {}", reply.status),
                        ),
                        Err(err) => (
                            StatusCode::BAD_GATEWAY,
                            format!("upstream unreachable: {err}"),
                        ),
                    }
                }),
            )
            .route_layer(breaker);
        let addr = serve(app).await?;
        Ok(Self {
            addr,
            breaker: handle,
            transitions,
        })
    }

    /// The transitions so far, as `from -> to (reason)`, and forgets them.
    #[must_use]
    pub fn take_transitions(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .transitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
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
    /// Transitions during this request.
    pub transitions: Vec<String>,
}

/// Runs the scenario, calling `report` after each request; returns every step.
///
/// It waits `reset_timeout` once, with `tokio::time::sleep` (virtual under a paused clock).
///
/// # Errors
/// If a server cannot start or a request fails at the socket level.
pub async fn run(
    reset_timeout: Duration,
    mut report: impl FnMut(&Step),
) -> std::io::Result<Vec<Step>> {
    let upstream = Upstream::start().await?;
    let front = Front::start(upstream.addr, reset_timeout).await?;
    let mut steps = Vec::new();
    let phases: [(&'static str, usize); 5] = [
        ("upstream healthy", 3),
        ("upstream down", 3),
        ("breaker open", 3),
        ("upstream back, probe after reset timeout", 1),
        ("closed again", 2),
    ];
    for (phase, requests) in phases {
        match phase {
            "upstream down" => upstream.set_healthy(false),
            "upstream back, probe after reset timeout" => {
                upstream.set_healthy(true);
                tokio::time::sleep(reset_timeout).await;
            }
            _ => {}
        }
        for _ in 0..requests {
            let reply = http1::get(front.addr, "/quote").await?;
            let step = Step {
                phase,
                status: reply.status,
                retry_after: reply.header("retry-after").map(str::to_owned),
                state: front.breaker.state(),
                upstream_hits: upstream.hits(),
                transitions: front.take_transitions(),
            };
            report(&step);
            steps.push(step);
        }
    }
    Ok(steps)
}

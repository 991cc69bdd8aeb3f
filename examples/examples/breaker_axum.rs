//! The main demo: a circuit breaker protecting an axum route that calls a flaky upstream.
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p examples --example breaker_axum
//! ```
//!
//! Both servers listen on 127.0.0.1. The upstream fails for a while; the breaker opens after
//! three failures, answers `503` with `Retry-After` without calling the upstream, and closes
//! again after one successful probe once the reset timeout (1 s here) has passed.

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let start = Instant::now();
    println!(
        "{:>7}  {:<42} {:>6} {:>12} {:>10} {:>9}",
        "time", "phase", "status", "retry-after", "breaker", "upstream"
    );
    let steps = examples::breaker_demo::run(Duration::from_secs(1), |step| {
        for transition in &step.transitions {
            println!("{:>7}  ** circuit breaker \"prices\": {transition}", "");
        }
        println!(
            "{:>6}ms  {:<42} {:>6} {:>12} {:>10} {:>9}",
            start.elapsed().as_millis(),
            step.phase,
            step.status,
            step.retry_after.as_deref().unwrap_or("-"),
            step.state.as_str(),
            format!("{} hits", step.upstream_hits),
        );
    })
    .await?;
    let rejected = steps.iter().filter(|s| s.retry_after.is_some()).count();
    println!(
        "\n{} requests: {} answered by the breaker without reaching the upstream, final state {}.",
        steps.len(),
        rejected,
        steps.last().map_or("unknown", |s| s.state.as_str()),
    );
    Ok(())
}

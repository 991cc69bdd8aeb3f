//! Fleet budget on a local Redis: the latency a call adds (strict mode, one round trip)
//! beside the in-process budget, and 10 replicas sharing a 100 000 tokens-per-minute quota
//! under bursty load.
//!
//! `cargo run --release -p benches --features fleet --bin fleet_sim` (starts its own
//! `redis-server` on 127.0.0.1; about 10 s).

#[path = "../../../test-support/src/redis_server.rs"]
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tower_bulkhead::fleet::{BudgetStore, FailureMode, LocalBudget, RedisBudget};

const CALLS: usize = 5_000;

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    (
        mean,
        us(samples[samples.len() / 2]),
        us(samples[samples.len() * 99 / 100]),
    )
}

async fn latency<B: BudgetStore>(budget: &B) -> (f64, f64, f64) {
    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let start = Instant::now();
        let grant = budget.take(1).await;
        samples.push(start.elapsed());
        assert!(grant.allowed);
    }
    percentiles(samples)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let url = server.url();

    let local = LocalBudget::new(u64::MAX / 4, Duration::from_secs(1), u64::MAX / 4, 1);
    let redis = RedisBudget::builder("latency")
        .timeout(Duration::from_millis(250))
        .connect(&url)
        .await
        .unwrap();
    let (m, p50, p99) = latency(&local).await;
    println!("in-process take: mean {m:.2} µs, p50 {p50:.2} µs, p99 {p99:.2} µs");
    let (m, p50, p99) = latency(&redis).await;
    println!("redis strict take: mean {m:.1} µs, p50 {p50:.1} µs, p99 {p99:.1} µs");

    // 10 replicas, 100 000 tokens per minute, a burst of 6 s worth (10 000), 6 s of bursty
    // load of about 3 times the refill rate.
    let replicas = 10;
    let run = Duration::from_secs(6);
    let burst = 10_000_u64;
    let admitted = Arc::new(AtomicU64::new(0));
    let asked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for replica in 0..replicas {
        let budget = RedisBudget::builder("quota")
            .refill(100_000, Duration::from_secs(60))
            .burst(burst)
            .timeout(Duration::from_millis(250))
            .failure(FailureMode::FailClosed)
            .connect(&url)
            .await
            .unwrap();
        let (admitted, asked, refused, calls) = (
            Arc::clone(&admitted),
            Arc::clone(&asked),
            Arc::clone(&refused),
            Arc::clone(&calls),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(replica);
            while started.elapsed() < run {
                // A burst of 1 to 8 calls of 50 to 500 tokens, then 1 to 4 s of quiet.
                for _ in 0..rng.u64(1..=8) {
                    let cost = rng.u64(50..=500);
                    asked.fetch_add(cost, Ordering::Relaxed);
                    calls.fetch_add(1, Ordering::Relaxed);
                    if budget.take(cost).await.allowed {
                        admitted.fetch_add(cost, Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let pause = Duration::from_millis(rng.u64(1_000..=4_000));
                tokio::time::sleep(pause.min(run.saturating_sub(started.elapsed()))).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = admitted.load(Ordering::Relaxed);
    let bound = burst as f64 + 100_000.0 * elapsed / 60.0;
    let per_minute = (admitted as f64 - burst as f64) * 60.0 / elapsed;
    println!(
        "10 replicas, 100 000 tokens/min, burst {burst}, {elapsed:.1} s: asked {} tokens in {} calls, admitted {admitted} (bound {bound:.0}: burst + refill), overshoot {:.0}, refill rate admitted {per_minute:.0} tokens/min, rejected {:.1} % of calls",
        asked.load(Ordering::Relaxed),
        calls.load(Ordering::Relaxed),
        (admitted as f64 - bound).max(0.0),
        100.0 * refused.load(Ordering::Relaxed) as f64 / calls.load(Ordering::Relaxed) as f64,
    );
}

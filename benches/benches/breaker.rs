//! Per-call cost of the circuit breaker beside a bare service, tower's `ConcurrencyLimit` and
//! the peer crates, in one run. See `benches/README.md` for the figures and how to reproduce.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{Bare, call_once, poll_once};
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use failsafe::futures::CircuitBreaker as _;
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, Service, ServiceExt};
use tower_breaker::CircuitBreakerLayer;

fn consecutive() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .failure_threshold(5)
        .reset_timeout(Duration::from_secs(3600))
        .build()
        .unwrap()
}

fn count_window() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .failure_threshold(None)
        .failure_rate_threshold(0.5)
        .count_window(100)
        .minimum_calls(20)
        .reset_timeout(Duration::from_secs(3600))
        .build()
        .unwrap()
}

fn time_window() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .failure_threshold(None)
        .failure_rate_threshold(0.5)
        .time_window(Duration::from_secs(10), 10)
        .minimum_calls(20)
        .reset_timeout(Duration::from_secs(3600))
        .build()
        .unwrap()
}

fn peer_tower_resilience() -> tower_resilience_circuitbreaker::CircuitBreakerLayer<
    tower_resilience_circuitbreaker::DefaultClassifier,
> {
    tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(20)
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .unwrap()
}

fn peer_failsafe() -> impl failsafe::futures::CircuitBreaker {
    let policy = failsafe::failure_policy::consecutive_failures(
        5,
        failsafe::backoff::constant(Duration::from_secs(3600)),
    );
    failsafe::Config::new().failure_policy(policy).build()
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
}

fn closed(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = runtime.enter();
    let mut group = c.benchmark_group("closed");
    configure(&mut group);

    let mut bare = Bare;
    group.bench_function("bare", |b| b.iter(|| call_once(&mut bare, black_box(1))));
    let mut limit = ConcurrencyLimitLayer::new(1_000_000).layer(Bare);
    group.bench_function("tower ConcurrencyLimit", |b| {
        b.iter(|| call_once(&mut limit, black_box(1)))
    });
    let mut svc = consecutive().layer(Bare);
    group.bench_function("tower-breaker consecutive", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    let mut svc = count_window().layer(Bare);
    group.bench_function("tower-breaker count window", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    let mut svc = time_window().layer(Bare);
    group.bench_function("tower-breaker time window", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    let mut svc = peer_tower_resilience().layer(Bare);
    group.bench_function("tower-resilience 0.14 rate window", |b| {
        b.iter(|| {
            runtime.block_on(async { svc.ready().await.unwrap().call(black_box(1)).await.is_ok() })
        })
    });
    let breaker = peer_failsafe();
    group.bench_function("failsafe 1.3 consecutive", |b| {
        b.iter(|| {
            poll_once(breaker.call(std::future::ready(Ok::<u64, std::io::Error>(black_box(1)))))
                .is_ok()
        })
    });
    // The executor's own cost, to read the tower-resilience figure against.
    let mut bare = Bare;
    group.bench_function("bare via block_on", |b| {
        b.iter(|| {
            runtime.block_on(async { bare.ready().await.unwrap().call(black_box(1)).await.is_ok() })
        })
    });
    group.finish();
}

fn rejection(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = runtime.enter();
    let mut group = c.benchmark_group("rejection");
    configure(&mut group);

    let layer = consecutive();
    let mut svc = layer.layer(Bare);
    for _ in 0..5 {
        call_once(&mut svc, u64::MAX);
    }
    assert_eq!(layer.handle().state(), tower_breaker::State::Open);
    group.bench_function("tower-breaker open (BoxError answer)", |b| {
        b.iter(|| assert!(!call_once(&mut svc, black_box(1))))
    });
    let layer = consecutive();
    layer.handle().force_open();
    let mut svc = layer.layer(Bare);
    group.bench_function("tower-breaker forced open (BoxError answer)", |b| {
        b.iter(|| assert!(!call_once(&mut svc, black_box(1))))
    });
    let layer = peer_tower_resilience();
    let mut svc = layer.layer(Bare);
    for _ in 0..30 {
        let _ = runtime.block_on(async { svc.ready().await.unwrap().call(u64::MAX).await });
    }
    group.bench_function("tower-resilience 0.14 open", |b| {
        b.iter(|| {
            runtime.block_on(async {
                svc.ready().await.is_err() || svc.call(black_box(1)).await.is_err()
            })
        })
    });
    let breaker = peer_failsafe();
    for _ in 0..5 {
        let _ = poll_once(
            breaker.call(std::future::ready(Err::<u64, _>(std::io::Error::other(
                "down",
            )))),
        );
    }
    group.bench_function("failsafe 1.3 open", |b| {
        b.iter(|| {
            poll_once(breaker.call(std::future::ready(Ok::<u64, std::io::Error>(black_box(1)))))
                .is_err()
        })
    });
    group.finish();
}

/// `iters` calls spread over 64 tasks on 2 worker threads, each task on its own clone.
fn contended_run<S>(runtime: &tokio::runtime::Runtime, svc: &S, iters: u64) -> Duration
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    const TASKS: u64 = 64;
    let per_task = iters.div_ceil(TASKS);
    runtime.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let _ = svc.ready().await.unwrap().call(i).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        start.elapsed()
    })
}

fn contended(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("contended (64 tasks, 2 workers)");
    configure(&mut group);
    let bare = tower::service_fn(|n: u64| std::future::ready(Ok::<u64, std::io::Error>(n)));
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &bare, iters))
    });
    let limit = {
        let _enter = runtime.enter();
        tower::ServiceBuilder::new()
            .layer(ConcurrencyLimitLayer::new(1_000_000))
            .service(bare)
    };
    // ConcurrencyLimit's state is per `layer()` call, shared by clones of that one service.
    group.bench_function("tower ConcurrencyLimit", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &limit, iters))
    });
    let svc = consecutive().layer(bare);
    group.bench_function("tower-breaker consecutive", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &svc, iters))
    });
    let svc = count_window().layer(bare);
    group.bench_function("tower-breaker count window", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &svc, iters))
    });
    let svc = peer_tower_resilience().layer(bare);
    group.bench_function("tower-resilience 0.14 rate window", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &svc, iters))
    });
    let breaker = Arc::new(peer_failsafe());
    let svc = tower::service_fn(move |n: u64| {
        let breaker = breaker.clone();
        async move {
            breaker
                .call(std::future::ready(Ok::<u64, std::io::Error>(n)))
                .await
        }
    });
    group.bench_function("failsafe 1.3 consecutive", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &svc, iters))
    });
    group.finish();
}

criterion_group!(benches, closed, rejection, contended);
criterion_main!(benches);

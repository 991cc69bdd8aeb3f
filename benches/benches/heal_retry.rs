//! Per-call cost of tower-heal's retry (and hedge) on the happy path, beside a bare service and
//! tower's own `Retry`, in one run. See `benches/README.md` ("tower-heal") for the figures.

use std::hint::black_box;
use std::time::Duration;

use benches::{Bare, call_once};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use tower::retry::RetryLayer as TowerRetryLayer;
use tower_heal::RetryLayer;

/// tower's `Retry` with the simplest policy that can retry: a count of attempts.
#[derive(Clone, Copy, Debug)]
struct Attempts(usize);

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for Attempts {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => None,
            Err(_) if self.0 > 0 => {
                self.0 -= 1;
                Some(std::future::ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

fn happy_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = runtime.enter();
    let mut group = c.benchmark_group("heal happy path");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);

    let mut bare = Bare;
    group.bench_function("bare", |b| b.iter(|| call_once(&mut bare, black_box(1))));
    let mut tower_retry = TowerRetryLayer::new(Attempts(2)).layer(Bare);
    group.bench_function("tower Retry", |b| {
        b.iter(|| call_once(&mut tower_retry, black_box(1)))
    });
    let mut heal = RetryLayer::new().layer(Bare);
    group.bench_function("tower-heal retry (default: budget on)", |b| {
        b.iter(|| call_once(&mut heal, black_box(1)))
    });
    let mut heal = RetryLayer::builder()
        .no_budget()
        .build()
        .unwrap()
        .layer(Bare);
    group.bench_function("tower-heal retry, no budget", |b| {
        b.iter(|| call_once(&mut heal, black_box(1)))
    });
    let mut hedge = tower_heal::HedgeLayer::builder()
        .delay(Duration::from_millis(50))
        .build()
        .unwrap()
        .layer(Bare);
    group.bench_function("tower-heal hedge, idle", |b| {
        b.iter(|| call_once(&mut hedge, black_box(1)))
    });
    group.finish();
}

criterion_group!(benches, happy_path);
criterion_main!(benches);

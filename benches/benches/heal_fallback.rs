//! Per-call cost of tower-heal's fallback and recovery on the happy path beside a bare
//! service, and of an idempotent replay with the in-memory and the SQLite store, in one run.
//! See `benches/README.md` (section tower-heal) for the figures and how to reproduce.

use std::hint::black_box;
use std::time::Duration;

use benches::heal::{
    MarkedBare, fallback, recovery_hook, recovery_rebuild, replay_memory, replay_sqlite,
};
use benches::{Bare, call_once};
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
}

fn happy_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("heal_happy_path");
    configure(&mut group);
    let mut bare = MarkedBare;
    group.bench_function("bare (Marked<u64>)", |b| {
        b.iter(|| call_once(&mut bare, black_box(1)))
    });
    let mut svc = fallback();
    group.bench_function("fallback", |b| b.iter(|| call_once(&mut svc, black_box(1))));
    let mut bare = Bare;
    group.bench_function("bare (u64)", |b| {
        b.iter(|| call_once(&mut bare, black_box(1)))
    });
    let mut svc = recovery_hook();
    group.bench_function("recovery (hook)", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    let mut svc = recovery_rebuild();
    group.bench_function("recovery (rebuild)", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    group.finish();
}

fn replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("heal_idempotent_replay");
    configure(&mut group);
    let mut svc = replay_memory();
    assert!(call_once(&mut svc, 1), "the first call stores");
    group.bench_function("memory store", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    let mut svc = replay_sqlite("criterion");
    assert!(call_once(&mut svc, 1), "the first call stores");
    group.bench_function("sqlite store", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    group.finish();
}

criterion_group!(benches, happy_path, replay);
criterion_main!(benches);

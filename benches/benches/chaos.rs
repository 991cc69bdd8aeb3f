//! Per-call cost of the chaos layer beside a bare service, in one run: installed but disarmed,
//! armed and not firing (with and without the guard), and, in a build without the
//! `chaos-inject` feature (`--no-default-features`), compiled out. See `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use benches::{Bare, call_once};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;
use tower_chaos::{ChaosLayer, Fault};

/// A fault that is decided on every call (the hash is computed) and never fires.
fn never(name: &str) -> Fault<u64, u64> {
    Fault::<u64, u64>::abort().named(name).rate(1e-15)
}

fn layer(faults: usize, guard: bool, armed: bool) -> ChaosLayer<u64, u64> {
    let mut builder = ChaosLayer::<u64, u64>::builder().armed(armed);
    for i in 0..faults {
        builder = builder.fault(never(&format!("f{i}")));
    }
    if !guard {
        builder = builder.no_guard();
    }
    builder.build().unwrap()
}

fn chaos(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = runtime.enter();
    let mut group = c.benchmark_group("chaos");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);

    let mut bare = Bare;
    group.bench_function("bare", |b| b.iter(|| call_once(&mut bare, black_box(1))));
    if cfg!(feature = "chaos-inject") {
        let mut svc = layer(1, true, false).layer(Bare);
        group.bench_function("installed, disarmed", |b| {
            b.iter(|| call_once(&mut svc, black_box(1)))
        });
        let mut svc = layer(1, true, true).layer(Bare);
        group.bench_function("armed, 1 fault not firing, guard on", |b| {
            b.iter(|| call_once(&mut svc, black_box(1)))
        });
        let mut svc = layer(1, false, true).layer(Bare);
        group.bench_function("armed, 1 fault not firing, guard off", |b| {
            b.iter(|| call_once(&mut svc, black_box(1)))
        });
        let mut svc = layer(3, true, true).layer(Bare);
        group.bench_function("armed, 3 faults not firing, guard on", |b| {
            b.iter(|| call_once(&mut svc, black_box(1)))
        });
    } else {
        // Injection compiled out: `layer(Bare)` is `Bare` itself.
        let mut svc = layer(1, true, true).layer(Bare);
        group.bench_function("compiled out (armed)", |b| {
            b.iter(|| call_once(&mut svc, black_box(1)))
        });
    }
    group.finish();
}

criterion_group!(benches, chaos);
criterion_main!(benches);

//! Per-call cost of the bulkhead beside a bare service and tower's `ConcurrencyLimit`, in one
//! run: uncontended and 64 tasks on 2 workers, for the concurrency, token and keyed modes. See
//! `benches/README.md` for the figures and how to reproduce.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{Bare, BareHttp, call_once, tenant, tenant_requests};
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, Service, ServiceExt};
use tower_bulkhead::{BulkheadBuilder, BulkheadLayer};

fn builder() -> BulkheadBuilder {
    BulkheadLayer::builder().max_concurrent(1_000_000)
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
}

/// One call of `request`, driven by hand with a no-op waker (see `benches::call_once`).
#[inline]
fn call_with<S: Service<Req>, Req>(svc: &mut S, request: Req) -> bool {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    let result = pin!(svc.call(request)).poll(&mut cx);
    matches!(result, Poll::Ready(Ok(_)))
}

fn uncontended(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = runtime.enter();
    let mut group = c.benchmark_group("bulkhead uncontended");
    configure(&mut group);

    let mut bare = Bare;
    group.bench_function("bare", |b| b.iter(|| call_once(&mut bare, black_box(1))));
    let mut limit = ConcurrencyLimitLayer::new(1_000_000).layer(Bare);
    group.bench_function("tower ConcurrencyLimit", |b| {
        b.iter(|| call_once(&mut limit, black_box(1)))
    });
    let mut svc = builder().build().unwrap().layer(Bare);
    group.bench_function("tower-bulkhead concurrency", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    let mut svc = builder()
        .token_budget(2_000_000_000)
        .cost(|_: &u64| 1)
        .build()
        .unwrap()
        .layer(Bare);
    group.bench_function("tower-bulkhead token (in-flight budget)", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });
    let mut svc = builder()
        .refill(2_000_000_000, Duration::from_secs(1))
        .cost(|_: &u64| 1)
        .build()
        .unwrap()
        .layer(Bare);
    group.bench_function("tower-bulkhead token (rate budget)", |b| {
        b.iter(|| call_once(&mut svc, black_box(1)))
    });

    let requests = tenant_requests(1000);
    let mut i = 0usize;
    let mut next = move || {
        i = (i + 1) % 1000;
        &requests[i]
    };
    let mut bare = BareHttp;
    group.bench_function("bare (http request)", |b| {
        b.iter(|| call_with(&mut bare, next()))
    });
    let mut limit = ConcurrencyLimitLayer::new(1_000_000).layer(BareHttp);
    group.bench_function("tower ConcurrencyLimit (http request)", |b| {
        b.iter(|| call_with(&mut limit, next()))
    });
    let mut svc = builder()
        .max_keys(1000)
        .build_keyed(tenant)
        .unwrap()
        .layer(BareHttp);
    for request in requests {
        assert!(call_with(&mut svc, request));
    }
    group.bench_function(
        "tower-bulkhead keyed (1000 live keys, key from a header)",
        |b| b.iter(|| call_with(&mut svc, next())),
    );
    group.finish();
}

/// `iters` calls of `request(i)` spread over 64 tasks on 2 worker threads, each task on its
/// own clone.
fn contended_run<S, Req>(
    runtime: &tokio::runtime::Runtime,
    svc: &S,
    request: fn(u64) -> Req,
    iters: u64,
) -> Duration
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    Req: 'static,
{
    const TASKS: u64 = 64;
    let per_task = iters.div_ceil(TASKS);
    runtime.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let _ = svc
                            .ready()
                            .await
                            .unwrap()
                            .call(request(t * per_task + i))
                            .await;
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

static REQUESTS: std::sync::OnceLock<&'static [http::Request<()>]> = std::sync::OnceLock::new();

fn by_tenant(i: u64) -> &'static http::Request<()> {
    &REQUESTS.get().expect("built")[(i % 1000) as usize]
}

fn contended(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let _enter = runtime.enter();
    let mut group = c.benchmark_group("bulkhead contended (64 tasks, 2 workers)");
    configure(&mut group);
    let id = |i| i;
    let bare = tower::service_fn(|n: u64| std::future::ready(Ok::<u64, std::io::Error>(n)));
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &bare, id, iters))
    });
    // ConcurrencyLimit's state is per `layer()` call, shared by clones of that one service.
    let limit = ConcurrencyLimitLayer::new(1_000_000).layer(bare);
    group.bench_function("tower ConcurrencyLimit", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &limit, id, iters))
    });
    let svc = builder().build().unwrap().layer(bare);
    group.bench_function("tower-bulkhead concurrency", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &svc, id, iters))
    });
    let svc = builder()
        .token_budget(2_000_000_000)
        .cost(|_: &u64| 1)
        .build()
        .unwrap()
        .layer(bare);
    group.bench_function("tower-bulkhead token (in-flight budget)", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &svc, id, iters))
    });

    REQUESTS.get_or_init(|| tenant_requests(1000));
    let bare = BareHttp;
    group.bench_function("bare (http request)", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &bare, by_tenant, iters))
    });
    let limit = ConcurrencyLimitLayer::new(1_000_000).layer(BareHttp);
    group.bench_function("tower ConcurrencyLimit (http request)", |b| {
        b.iter_custom(|iters| contended_run(&runtime, &limit, by_tenant, iters))
    });
    let svc = builder()
        .max_keys(1000)
        .build_keyed(tenant)
        .unwrap()
        .layer(BareHttp);
    contended_run(&runtime, &svc, by_tenant, 1000);
    group.bench_function(
        "tower-bulkhead keyed (1000 live keys, key from a header)",
        |b| b.iter_custom(|iters| contended_run(&runtime, &svc, by_tenant, iters)),
    );
    group.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);

//! Safe by default: nothing until armed, dry run, the kill switch, the guard.
#![cfg(feature = "inject")]

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use support::{Echo, call};
use tower::{Layer, Service, ServiceExt};
use tower_chaos::{ChaosLayer, Fault, Latency};

#[tokio::test(start_paused = true)]
async fn a_layer_injects_nothing_until_armed() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::error(|| "injected".into()).rate(1.0))
        .build()
        .unwrap();
    let handle = layer.handle();
    let echo = Echo::default();
    let mut svc = layer.layer(echo.clone());
    for n in 0..100 {
        assert_eq!(call(&mut svc, n).await.unwrap(), n);
    }
    assert_eq!(echo.seen(), 100);
    assert_eq!(handle.stats().injected(), 0);
    handle.arm();
    assert!(call(&mut svc, 1).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn dry_run_injects_nothing_and_counts_everything() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .seed(9)
        .fault(Fault::error(|| "injected".into()).rate(0.5))
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(5))).rate(1.0))
        .dry_run(true)
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let echo = Echo::default();
    let mut svc = layer.layer(echo.clone());
    let start = tokio::time::Instant::now();
    for n in 0..1_000 {
        assert_eq!(call(&mut svc, n).await.unwrap(), n, "nothing injected");
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "no delay either");
    assert_eq!(echo.seen(), 1_000);
    let stats = handle.stats();
    assert_eq!(stats.injected(), 0);
    let errors = stats.fault("error").unwrap().dry_run;
    assert!((430..570).contains(&errors), "about half decided: {errors}");
    assert_eq!(
        stats.fault("latency").unwrap().dry_run,
        1_000,
        "every decision counted"
    );

    // The decisions are the live ones: leaving dry run injects exactly those.
    handle.set_dry_run(false);
    handle.arm();
    let mut failed = 0;
    for n in 0..1_000 {
        failed += u64::from(svc.ready().await.unwrap().call(n).await.is_err());
    }
    assert_eq!(failed, errors);
}

#[tokio::test(start_paused = true)]
async fn the_handle_disarms_rearms_and_changes_rates_live() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::error(|| "injected".into()).rate(1.0))
        .armed(true)
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    assert!(call(&mut svc, 1).await.is_err());
    handle.disarm();
    assert!(!handle.is_armed());
    assert!(call(&mut svc, 1).await.is_ok());
    handle.arm();
    assert!(call(&mut svc, 1).await.is_err());
    handle.set_rate("error", 0.0).unwrap();
    for n in 0..100 {
        assert!(call(&mut svc, n).await.is_ok());
    }
    handle.set_rate("error", 1.0).unwrap();
    assert!(call(&mut svc, 1).await.is_err());
}

/// An inner service whose calls fail while `failing` is set.
fn flaky(
    failing: Arc<AtomicU64>,
) -> impl tower::Service<
    u64,
    Response = u64,
    Error = std::io::Error,
    Future = impl Future<Output = Result<u64, std::io::Error>> + Send,
> + Clone {
    tower::service_fn(move |n: u64| {
        let fail = failing.load(Ordering::SeqCst) == 1;
        async move {
            if fail {
                Err(std::io::Error::other("real outage"))
            } else {
                Ok(n)
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn the_guard_disarms_once_the_real_error_rate_passes_the_limit() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(10))).rate(0.5))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let failing = Arc::new(AtomicU64::new(0));
    let mut svc = layer.layer(flaky(failing.clone()));
    for n in 0..50 {
        svc.ready().await.unwrap().call(n).await.unwrap();
    }
    assert!(handle.is_armed(), "healthy: the guard stays quiet");
    // The dependency itself goes down: 50 successes then failures; the rate over the window
    // passes 50 % after 51 failures.
    failing.store(1, Ordering::SeqCst);
    let mut failures = 0;
    while handle.is_armed() && failures < 500 {
        assert!(svc.ready().await.unwrap().call(1).await.is_err());
        failures += 1;
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert!(!handle.is_armed(), "the guard disarmed");
    assert!(handle.guard_tripped());
    assert!(
        (51..=55).contains(&failures),
        "tripped once past 50 %: after {failures}"
    );

    // It stays disarmed (nothing re-arms it by itself), even once the service recovers.
    failing.store(0, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(120)).await;
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert!(!handle.is_armed());
    handle.arm();
    assert!(
        handle.is_armed() && !handle.guard_tripped(),
        "only the handle re-arms"
    );
}

#[tokio::test(start_paused = true)]
async fn injected_faults_do_not_count_toward_the_guard() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::error(|| "injected".into()).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    for n in 0..1_000 {
        assert!(call(&mut svc, n).await.is_err());
    }
    assert!(
        handle.is_armed(),
        "100 % injected errors are not the service's"
    );
}

#[tokio::test(start_paused = true)]
async fn max_active_faults_holds_under_100_concurrent_requests() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::latency(Latency::Fixed(Duration::from_secs(1))).rate(1.0))
        .max_active_faults(10)
        .armed(true)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(
        |n: u64| async move { Ok::<_, Infallible>(n) },
    ));
    let peak = Arc::new(AtomicU64::new(0));
    let mut joins = Vec::new();
    for n in 0..100 {
        let svc = svc.clone();
        joins.push(tokio::spawn(async move { svc.oneshot(n).await }));
    }
    // Every call has been made and is either sleeping (faulted) or done (overflow).
    tokio::task::yield_now().await;
    for _ in 0..10 {
        peak.fetch_max(u64::from(handle.stats().active), Ordering::SeqCst);
        tokio::task::yield_now().await;
    }
    let stats = handle.stats();
    assert_eq!(stats.active, 10, "ten delayed calls in progress");
    assert_eq!(
        stats.overflow, 90,
        "the other 90 went through clean and were counted"
    );
    for join in joins {
        join.await.unwrap().unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 10);
    let stats = handle.stats();
    assert_eq!(stats.active, 0);
    assert_eq!(stats.fault("latency").unwrap().injected, 10);
}

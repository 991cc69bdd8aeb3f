//! Half-open probe slots: freed by cancellation, never over-granted under contention.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use support::{fail, rejected, succeed};
use tokio::time::advance;
use tokio_test::assert_ready_ok;
use tower::{Service, ServiceBuilder};
use tower_breaker::{CircuitBreakerLayer, Reason, State};
use tower_test::mock;

fn half_open_layer(max_calls: u32) -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .half_open_max_calls(max_calls)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_frees_its_slot() {
    let layer = half_open_layer(1);
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    fail(&mut svc, &mut handle).await;
    advance(Duration::from_secs(60)).await;

    assert_ready_ok!(svc.poll_ready());
    let probe = svc.call(1);
    let _request = handle.next_request().await.unwrap();

    // The only slot is taken: another caller is rejected.
    let (result, reached) = support::call(&mut svc, &mut handle, true).await;
    assert!(!reached);
    assert_eq!(
        rejected(&result.unwrap_err()).unwrap().reason(),
        Reason::HalfOpenFull
    );

    // The probe's caller goes away: the slot is free again and nothing was counted.
    drop(probe);
    assert_eq!(breaker.state(), State::HalfOpen);
    succeed(&mut svc, &mut handle).await;
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_slot_taken_in_poll_ready_is_freed_when_the_service_is_dropped() {
    let layer = half_open_layer(1);
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer.clone());
    fail(&mut svc, &mut handle).await;
    advance(Duration::from_secs(60)).await;

    // A clone polled ready holds the probe slot until it calls or is dropped.
    let mut idle = svc.get_ref().clone();
    let waker = Waker::noop();
    assert!(matches!(
        idle.poll_ready(&mut Context::from_waker(waker)),
        Poll::Ready(Ok(()))
    ));
    let (result, _) = support::call(&mut svc, &mut handle, true).await;
    assert_eq!(
        rejected(&result.unwrap_err()).unwrap().reason(),
        Reason::HalfOpenFull
    );
    drop(idle);
    succeed(&mut svc, &mut handle).await;
    assert_eq!(layer.handle().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn probes_stuck_past_the_max_wait_reopen() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .half_open_max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    fail(&mut svc, &mut handle).await;
    advance(Duration::from_secs(60)).await;
    assert_ready_ok!(svc.poll_ready());
    let stuck = svc.call(1);
    let _request = handle.next_request().await.unwrap();

    advance(Duration::from_secs(4)).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    advance(Duration::from_secs(1)).await;
    let (result, reached) = support::call(&mut svc, &mut handle, true).await;
    assert!(!reached);
    assert_eq!(
        rejected(&result.unwrap_err()).unwrap().reason(),
        Reason::CircuitOpen
    );
    assert_eq!(breaker.state(), State::Open);
    drop(stuck);
    assert_eq!(
        breaker.state(),
        State::Open,
        "dropping the stale probe changes nothing"
    );
}

/// 64 threads race for 3 probe slots, each on its own clone, at the same instant.
#[test]
fn concurrent_callers_never_get_more_probes_than_allowed() {
    const THREADS: usize = 64;
    const SLOTS: u32 = 3;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let layer = half_open_layer(SLOTS);
    let breaker = layer.handle();
    let reached = Arc::new(AtomicUsize::new(0));
    let inner = {
        let reached = reached.clone();
        tower::service_fn(move |fail: bool| {
            reached.fetch_add(1, Ordering::SeqCst);
            let reached = reached.clone();
            async move {
                if fail {
                    Err::<(), _>(std::io::Error::other("down"))
                } else {
                    // Probes hang until their callers drop them.
                    std::future::pending::<()>().await;
                    drop(reached);
                    Ok(())
                }
            }
        })
    };
    let svc = ServiceBuilder::new().layer(layer).service(inner);

    runtime.block_on(async {
        let mut svc = svc.clone();
        let _ = tower::ServiceExt::ready(&mut svc)
            .await
            .unwrap()
            .call(true)
            .await;
        assert_eq!(breaker.state(), State::Open);
        advance(Duration::from_secs(60)).await;
        assert_eq!(breaker.state(), State::HalfOpen);
    });
    reached.store(0, Ordering::SeqCst);

    for round in 0..20 {
        let barrier = Arc::new(Barrier::new(THREADS));
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let mut svc = svc.clone();
                    let barrier = barrier.clone();
                    scope.spawn(move || {
                        let mut cx = Context::from_waker(Waker::noop());
                        barrier.wait();
                        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
                        let mut fut = Box::pin(svc.call(false));
                        let admitted = fut.as_mut().poll(&mut cx).is_pending();
                        (admitted, fut)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let admitted = results.iter().filter(|(admitted, _)| *admitted).count();
        assert_eq!(admitted, SLOTS as usize, "round {round}: probes admitted");
        assert_eq!(
            reached.swap(0, Ordering::SeqCst),
            SLOTS as usize,
            "round {round}: probes reached"
        );
        // Every caller goes away: all slots come back for the next round.
        drop(results);
    }
    assert_eq!(breaker.state(), State::HalfOpen);
}

/// A probe whose outcome says nothing (a 404: the caller's mistake) frees its slot and leaves
/// the breaker half-open, rather than wedging it there.
#[tokio::test(start_paused = true)]
async fn an_ignored_probe_frees_its_slot() {
    use http::{Response, StatusCode};
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .classifier(tower_breaker::HttpStatus::new())
        .build()
        .unwrap();
    let breaker = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|status: u16| async move {
            Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(()).unwrap())
        });
    use tower::ServiceExt;
    let res = svc.ready().await.unwrap().call(503).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(breaker.state(), State::Open);
    advance(Duration::from_secs(60)).await;
    for _ in 0..3 {
        let res = svc.ready().await.unwrap().call(404).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "each 404 probe was admitted"
        );
        assert_eq!(breaker.state(), State::HalfOpen);
    }
    svc.ready().await.unwrap().call(200).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
}

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
        let runtime = runtime.handle();
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let mut svc = svc.clone();
                    let barrier = barrier.clone();
                    scope.spawn(move || {
                        // On the test's paused clock: the reset timeout has passed there.
                        let _clock = runtime.enter();
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

/// Stale probe admissions (slots taken in `poll_ready` by clones whose inner service was not
/// ready, before the circuit re-opened) race 61 fresh callers for the new half-open's slots:
/// never more than `half_open_max_calls` calls reach the dependency in the new half-open.
#[test]
fn stale_probe_admissions_never_add_probes_to_a_new_half_open() {
    const THREADS: usize = 64;
    const SLOTS: u32 = 3;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _enter = runtime.enter();
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .half_open_max_calls(SLOTS)
        .build()
        .unwrap();
    let breaker = layer.handle();
    let reached = Arc::new(AtomicUsize::new(0));
    // A gate per service: shut, its inner service is not ready.
    let service = |shut: Arc<std::sync::atomic::AtomicBool>| {
        let reached = reached.clone();
        tower::Layer::layer(&layer, Gate { shut, reached })
    };
    let open_gate = || Arc::new(std::sync::atomic::AtomicBool::new(false));

    for round in 0..10 {
        // Open, then due to probe.
        breaker.reset();
        let mut opener = service(open_gate());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(opener.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let _ = Box::pin(opener.call(true)).as_mut().poll(&mut cx);
        assert_eq!(breaker.state(), State::Open);
        runtime.block_on(advance(Duration::from_secs(60)));

        // SLOTS clones take every probe slot in poll_ready; their inner services are not ready.
        let gates: Vec<_> = (0..SLOTS)
            .map(|_| Arc::new(std::sync::atomic::AtomicBool::new(true)))
            .collect();
        let mut stale: Vec<_> = gates.iter().map(|g| service(g.clone())).collect();
        for svc in &mut stale {
            assert!(svc.poll_ready(&mut cx).is_pending());
        }
        // The circuit re-opens from this half-open (an operator forces it open and lets it
        // go), and is due to probe again.
        breaker.force_open();
        breaker.reset();
        let _ = Box::pin({
            assert!(matches!(opener.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            opener.call(true)
        })
        .as_mut()
        .poll(&mut cx);
        assert_eq!(breaker.state(), State::Open);
        runtime.block_on(advance(Duration::from_secs(60)));
        reached.store(0, Ordering::SeqCst);
        for gate in &gates {
            gate.store(false, Ordering::SeqCst);
        }

        let barrier = Arc::new(Barrier::new(THREADS));
        let handle = runtime.handle().clone();
        let fresh: Vec<_> = (SLOTS as usize..THREADS)
            .map(|_| service(open_gate()))
            .collect();
        let results: Vec<_> = std::thread::scope(|scope| {
            let threads: Vec<_> = stale
                .drain(..)
                .chain(fresh)
                .map(|mut svc| {
                    let barrier = barrier.clone();
                    let handle = handle.clone();
                    scope.spawn(move || {
                        let _enter = handle.enter();
                        let mut cx = Context::from_waker(Waker::noop());
                        barrier.wait();
                        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
                        let mut fut = Box::pin(svc.call(false));
                        let admitted = fut.as_mut().poll(&mut cx).is_pending();
                        (admitted, fut)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let admitted = results.iter().filter(|(admitted, _)| *admitted).count();
        assert_eq!(admitted, SLOTS as usize, "round {round}: probes admitted");
        assert_eq!(
            reached.load(Ordering::SeqCst),
            SLOTS as usize,
            "round {round}: probes reached"
        );
        assert_eq!(breaker.state(), State::HalfOpen);
        drop(results);
    }
}

/// An inner service for the race above: not ready while its gate is shut; `call(true)` fails,
/// `call(false)` hangs until dropped.
struct Gate {
    shut: Arc<std::sync::atomic::AtomicBool>,
    reached: Arc<AtomicUsize>,
}

impl Service<bool> for Gate {
    type Response = ();
    type Error = std::io::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<(), std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.shut.load(Ordering::SeqCst) {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, fail: bool) -> Self::Future {
        self.reached.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if fail {
                Err(std::io::Error::other("down"))
            } else {
                std::future::pending().await
            }
        })
    }
}

/// `half_open_max_wait` runs per probe from its admission: half-open since long ago (entered
/// by a call that found the reset timeout long passed), a probe admitted 1 ms ago is not stuck.
#[tokio::test(start_paused = true)]
async fn a_probe_admitted_just_now_is_not_stuck_after_a_quiet_half_open() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .half_open_max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    fail(&mut svc, &mut handle).await;
    advance(Duration::from_secs(60)).await;
    // A state read, then a quiet time, long past the max wait.
    assert_eq!(breaker.state(), State::HalfOpen);
    advance(Duration::from_secs(30)).await;

    assert_ready_ok!(svc.poll_ready());
    let _probe = svc.call(1);
    let _request = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1)).await;
    let (result, reached) = support::call(&mut svc, &mut handle, true).await;
    assert!(!reached);
    assert_eq!(
        rejected(&result.unwrap_err()).unwrap().reason(),
        Reason::HalfOpenFull,
        "the probe is 1 ms old: not stuck"
    );
    assert_eq!(breaker.state(), State::HalfOpen);
    advance(Duration::from_secs(5)).await;
    let (result, _) = support::call(&mut svc, &mut handle, true).await;
    assert_eq!(
        rejected(&result.unwrap_err()).unwrap().reason(),
        Reason::CircuitOpen,
        "5 s later it is stuck: the next call re-opens the circuit"
    );
    assert_eq!(breaker.state(), State::Open);
}

/// The same after an earlier successful probe (`success_threshold` 2): the second probe's wait
/// starts when it is admitted.
#[tokio::test(start_paused = true)]
async fn a_second_probe_is_timed_from_its_own_admission() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .success_threshold(2)
        .half_open_max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    fail(&mut svc, &mut handle).await;
    advance(Duration::from_secs(60)).await;
    succeed(&mut svc, &mut handle).await;
    advance(Duration::from_secs(20)).await;

    assert_ready_ok!(svc.poll_ready());
    let _probe = svc.call(1);
    let _request = handle.next_request().await.unwrap();
    advance(Duration::from_millis(1)).await;
    let (result, _) = support::call(&mut svc, &mut handle, true).await;
    assert_eq!(
        rejected(&result.unwrap_err()).unwrap().reason(),
        Reason::HalfOpenFull
    );
    assert_eq!(breaker.state(), State::HalfOpen);
}

//! Recovery behaviour through the public API (paused time).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tower::Layer;
use tower::{Service, ServiceExt, service_fn};
use tower_heal::{BoxError, DuringRebuild, RecoveryLayer, Rejected};

type Calls = Arc<Mutex<Vec<usize>>>;

/// Instance `id` records each call; instance 0 is broken, the others answer.
fn instance(
    id: usize,
    calls: Calls,
) -> impl Service<u32, Response = usize, Error = BoxError, Future: Send> + Clone + Send + 'static {
    service_fn(move |_: u32| {
        calls.lock().unwrap().push(id);
        async move {
            if id == 0 {
                Err::<usize, BoxError>("broken".into())
            } else {
                Ok(id)
            }
        }
    })
}

async fn settle() {
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
}

async fn call<S: Service<u32, Response = usize, Error = BoxError>>(
    svc: &mut S,
) -> Result<usize, BoxError> {
    svc.ready().await?.call(1).await
}

#[tokio::test(start_paused = true)]
async fn recovery_fires_once_per_holdoff() {
    let hooks = Arc::new(AtomicUsize::new(0));
    let counter = hooks.clone();
    let layer = RecoveryLayer::builder()
        .name("db")
        .seed(7)
        .hook(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, BoxError>(()) }
        })
        .unwrap();
    let calls = Calls::default();
    let mut svc = layer.layer(instance(0, calls.clone()));
    for _ in 0..5 {
        assert!(call(&mut svc).await.is_err());
    }
    settle().await;
    assert_eq!(
        hooks.load(Ordering::SeqCst),
        1,
        "5 failures in a row: one recovery"
    );
    // Still failing, but within the hold-off (5 s less up to 20 %): no second recovery.
    for _ in 0..20 {
        let _ = call(&mut svc).await;
        tokio::time::advance(Duration::from_millis(150)).await;
    }
    settle().await;
    assert_eq!(hooks.load(Ordering::SeqCst), 1);
    // After the hold-off, failures in a row trigger the next one.
    tokio::time::advance(Duration::from_secs(2)).await;
    for _ in 0..5 {
        let _ = call(&mut svc).await;
    }
    settle().await;
    assert_eq!(hooks.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_low_success_rate_triggers_recovery() {
    let hooks = Arc::new(AtomicUsize::new(0));
    let counter = hooks.clone();
    let layer = RecoveryLayer::builder()
        .consecutive_failures(None)
        .minimum_calls(5)
        .success_rate_threshold(0.8)
        .hook(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, BoxError>(()) }
        })
        .unwrap();
    let flip = Arc::new(AtomicUsize::new(0));
    let f = flip.clone();
    // Every other call fails: a 50 % success rate.
    let mut svc = layer.layer(service_fn(move |_: u32| {
        let n = f.fetch_add(1, Ordering::SeqCst);
        async move {
            if n.is_multiple_of(2) {
                Ok(n)
            } else {
                Err::<usize, BoxError>("flaky".into())
            }
        }
    }));
    for _ in 0..3 {
        let _ = call(&mut svc).await;
    }
    settle().await;
    assert_eq!(hooks.load(Ordering::SeqCst), 0, "fewer than minimum_calls");
    for _ in 0..3 {
        let _ = call(&mut svc).await;
    }
    settle().await;
    assert_eq!(hooks.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn recovery_rebuilds_the_inner_service() {
    let calls = Calls::default();
    let built = Arc::new(AtomicUsize::new(0));
    let (c, b) = (calls.clone(), built.clone());
    let layer = RecoveryLayer::builder()
        .rebuild(move || {
            let id = b.fetch_add(1, Ordering::SeqCst) + 1;
            let calls = c.clone();
            async move { Ok::<_, BoxError>(instance(id, calls)) }
        })
        .unwrap();
    let mut svc = layer.layer(instance(0, calls.clone()));
    // A clone made before the rebuild picks up the new instance too.
    let mut other = svc.clone();
    for _ in 0..5 {
        assert!(call(&mut svc).await.is_err());
    }
    settle().await;
    assert_eq!(built.load(Ordering::SeqCst), 1);
    assert_eq!(call(&mut svc).await.unwrap(), 1);
    assert_eq!(call(&mut other).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_call_reaches_the_broken_instance_during_a_rebuild() {
    let calls = Calls::default();
    let gate = Arc::new(Notify::new());
    let (c, g) = (calls.clone(), gate.clone());
    let layer = RecoveryLayer::builder()
        .during_rebuild(DuringRebuild::Wait)
        .rebuild(move || {
            let (calls, gate) = (c.clone(), g.clone());
            async move {
                gate.notified().await; // the reconnect takes until the test says so
                Ok::<_, BoxError>(instance(1, calls))
            }
        })
        .unwrap();
    let mut svc = layer.layer(instance(0, calls.clone()));
    for _ in 0..5 {
        let _ = call(&mut svc).await;
    }
    settle().await;
    assert_eq!(calls.lock().unwrap().len(), 5);

    // Three calls during the rebuild: they wait, and the broken instance sees none of them.
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let mut clone = svc.clone();
        waiting.push(tokio::spawn(async move { call(&mut clone).await }));
    }
    settle().await;
    assert_eq!(
        calls.lock().unwrap().len(),
        5,
        "no call went to the broken instance"
    );
    assert!(waiting.iter().all(|w| !w.is_finished()));

    gate.notify_one();
    for w in waiting {
        assert_eq!(w.await.unwrap().unwrap(), 1);
    }
    assert_eq!(&calls.lock().unwrap()[5..], &[1, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn calls_during_a_rebuild_can_be_rejected() {
    let calls = Calls::default();
    let gate = Arc::new(Notify::new());
    let (c, g) = (calls.clone(), gate.clone());
    let layer = RecoveryLayer::builder()
        .name("search")
        .during_rebuild(DuringRebuild::Reject)
        .rebuild(move || {
            let (calls, gate) = (c.clone(), g.clone());
            async move {
                gate.notified().await;
                Ok::<_, BoxError>(instance(1, calls))
            }
        })
        .unwrap();
    let mut svc = layer.layer(instance(0, calls.clone()));
    for _ in 0..5 {
        let _ = call(&mut svc).await;
    }
    settle().await;
    let err = call(&mut svc).await.unwrap_err();
    let rejected = err.downcast_ref::<Rejected>().expect("a rejection");
    assert_eq!(rejected.name(), Some("search"));
    assert_eq!(calls.lock().unwrap().len(), 5);
    gate.notify_one();
    settle().await;
    assert_eq!(call(&mut svc).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_wait_for_a_rebuild_is_bounded() {
    let layer = RecoveryLayer::builder()
        .max_rebuild_wait(Duration::from_secs(2))
        .rebuild(|| async {
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(instance(1, Calls::default()))
        })
        .unwrap();
    let mut svc = layer.layer(instance(0, Calls::default()));
    for _ in 0..5 {
        let _ = call(&mut svc).await;
    }
    settle().await;
    let err = call(&mut svc).await.unwrap_err();
    assert!(
        err.downcast_ref::<Rejected>().is_some(),
        "rejected after max_rebuild_wait"
    );
}

#[tokio::test(start_paused = true)]
async fn recovery_escalates_after_max_attempts() {
    let hooks = Arc::new(AtomicUsize::new(0));
    let escalations = Arc::new(Mutex::new(Vec::new()));
    let (h, e) = (hooks.clone(), escalations.clone());
    let layer = RecoveryLayer::builder()
        .name("payments")
        .max_attempts(2)
        .seed(1)
        .on_escalation(move |esc| e.lock().unwrap().push((esc.name.to_owned(), esc.attempts)))
        .hook(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, BoxError>(()) } // does not help: the dependency stays broken
        })
        .unwrap();
    let mut svc = layer.layer(instance(0, Calls::default()));
    // Keep failing for a long time; hold-offs are 5 s then 10 s (less jitter).
    for _ in 0..12 {
        for _ in 0..5 {
            let _ = call(&mut svc).await;
        }
        settle().await;
        tokio::time::advance(Duration::from_secs(3)).await;
    }
    assert_eq!(*escalations.lock().unwrap(), [("payments".to_owned(), 2)]);
    assert!(
        hooks.load(Ordering::SeqCst) >= 3,
        "it keeps recovering after escalating"
    );
    // And keeps serving: calls still reach the dependency.
    assert_eq!(call(&mut svc).await.unwrap_err().to_string(), "broken");
}

#[tokio::test(start_paused = true)]
async fn a_recovery_that_helps_resets_the_escalation_count() {
    let escalations = Arc::new(AtomicUsize::new(0));
    let hooks = Arc::new(AtomicUsize::new(0));
    let (e, h) = (escalations.clone(), hooks.clone());
    let layer = RecoveryLayer::builder()
        .max_attempts(1)
        .on_escalation(move |_| {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .hook(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, BoxError>(()) }
        })
        .unwrap();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let up = healthy.clone();
    let mut svc = layer.layer(service_fn(move |_: u32| {
        let ok = up.load(Ordering::SeqCst);
        async move {
            if ok {
                Ok(1)
            } else {
                Err::<usize, BoxError>("down".into())
            }
        }
    }));
    for round in 0..2 {
        healthy.store(false, Ordering::SeqCst);
        for _ in 0..5 {
            let _ = call(&mut svc).await;
        }
        settle().await;
        assert_eq!(hooks.load(Ordering::SeqCst), round + 1);
        // The recovery helped: a whole healthy window follows.
        healthy.store(true, Ordering::SeqCst);
        for _ in 0..10 {
            call(&mut svc).await.unwrap();
        }
        tokio::time::advance(Duration::from_secs(31)).await;
    }
    assert_eq!(
        escalations.load(Ordering::SeqCst),
        0,
        "each recovery helped: no escalation"
    );
}

/// A factory that fails in the way `how` says: 0 panics, 1 hangs, 2 errors.
fn failing_factory(
    how: usize,
    built: Arc<AtomicUsize>,
) -> impl Fn() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<ServiceFnInstance, BoxError>> + Send>,
> + Send
+ Sync
+ 'static {
    move || {
        built.fetch_add(1, Ordering::SeqCst);
        assert!(how != 0, "factory panics");
        Box::pin(async move {
            if how == 1 {
                std::future::pending::<()>().await;
            }
            Err::<ServiceFnInstance, BoxError>("cannot reconnect".into())
        })
    }
}

type ServiceFnInstance = tower::util::BoxCloneSyncService<u32, usize, BoxError>;

/// Fails its first `failures` calls, then answers 0 (the old instance, recovering alone).
fn flaky(failures: usize) -> ServiceFnInstance {
    let n = Arc::new(AtomicUsize::new(0));
    tower::util::BoxCloneSyncService::new(service_fn(move |_: u32| {
        let k = n.fetch_add(1, Ordering::SeqCst);
        async move {
            if k < failures {
                Err::<usize, BoxError>("broken".into())
            } else {
                Ok(0)
            }
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn a_factory_that_panics_hangs_or_fails_leaves_the_old_instance_serving() {
    for how in 0..3 {
        let built = Arc::new(AtomicUsize::new(0));
        let layer = RecoveryLayer::builder()
            .rebuild_timeout(Duration::from_secs(2))
            .max_rebuild_wait(Duration::from_secs(30))
            .seed(3)
            .rebuild(failing_factory(how, built.clone()))
            .unwrap();
        let mut svc = layer.layer(flaky(15));
        for _ in 0..5 {
            assert!(call(&mut svc).await.is_err());
        }
        settle().await;
        assert_eq!(built.load(Ordering::SeqCst), 1, "case {how}: one rebuild");
        // The old instance serves again once the rebuild is given up (a hang: after the
        // 2 s rebuild timeout, well within the 30 s a call may wait).
        let started = tokio::time::Instant::now();
        let _ = call(&mut svc).await.expect_err("the old instance answers");
        assert!(
            started.elapsed() <= Duration::from_secs(2),
            "case {how}: answered by the old instance, not after a 30 s wait"
        );
        // Within the hold-off, more failures do not call the factory again...
        for _ in 0..4 {
            let _ = call(&mut svc).await;
        }
        settle().await;
        assert_eq!(built.load(Ordering::SeqCst), 1, "case {how}: hold-off");
        // ...after it, they do.
        tokio::time::advance(Duration::from_secs(6)).await;
        for _ in 0..5 {
            let _ = call(&mut svc).await;
        }
        settle().await;
        assert_eq!(built.load(Ordering::SeqCst), 2, "case {how}: tried again");
        tokio::time::advance(Duration::from_secs(3)).await;
        settle().await;
        assert_eq!(
            call(&mut svc).await.unwrap(),
            0,
            "case {how}: still serving"
        );
    }
}

/// A waker that counts its live clones.
struct CountingWaker;

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {}
}

#[tokio::test(start_paused = true)]
async fn calls_that_stop_waiting_for_a_hung_rebuild_release_their_wakers() {
    let layer = RecoveryLayer::builder()
        .rebuild_timeout(Duration::from_secs(600))
        .max_rebuild_wait(Duration::from_secs(1))
        .rebuild(failing_factory(1, Arc::default()))
        .unwrap();
    let mut svc = layer.layer(flaky(usize::MAX));
    for _ in 0..5 {
        let _ = call(&mut svc).await;
    }
    settle().await;
    let counter = Arc::new(CountingWaker);
    let waker = std::task::Waker::from(counter.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    let idle = Arc::strong_count(&counter);
    for round in 0..50 {
        let mut clone = svc.clone();
        std::future::poll_fn(|cx| clone.poll_ready(cx))
            .await
            .unwrap();
        let mut fut = Box::pin(clone.call(1));
        assert!(
            fut.as_mut().poll(&mut cx).is_pending(),
            "waits for the rebuild"
        );
        // Held by the waiter and by the timer of `max_rebuild_wait`.
        assert_eq!(
            Arc::strong_count(&counter),
            idle + 2,
            "round {round}: wakers held"
        );
        if round % 2 == 0 {
            // Cancelled while waiting.
            drop(fut);
        } else {
            // Timed out.
            tokio::time::advance(Duration::from_secs(2)).await;
            assert!(fut.as_mut().poll(&mut cx).is_ready());
        }
        assert_eq!(
            Arc::strong_count(&counter),
            idle,
            "round {round}: the waiter's waker was released"
        );
    }
}

use std::future::Future as _;

/// An instance that records a violation when called without a `poll_ready` of its own.
struct Strict {
    ready: bool,
    violations: Arc<AtomicUsize>,
    fail: bool,
}

impl Clone for Strict {
    fn clone(&self) -> Self {
        // A clone does not inherit readiness.
        Self::new(self.violations.clone(), self.fail)
    }
}

impl Strict {
    fn new(violations: Arc<AtomicUsize>, fail: bool) -> Self {
        Self {
            ready: false,
            violations,
            fail,
        }
    }
}

impl Service<u32> for Strict {
    type Response = usize;
    type Error = BoxError;
    type Future = std::future::Ready<Result<usize, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.ready = true;
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Self::Future {
        if !std::mem::replace(&mut self.ready, false) {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
        std::future::ready(if self.fail {
            Err("broken".into())
        } else {
            Ok(7)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn only_ready_instances_are_called_even_after_a_failed_rebuild() {
    let violations = Arc::new(AtomicUsize::new(0));
    for outcome in [false, true] {
        let gate = Arc::new(Notify::new());
        let (g, v) = (gate.clone(), violations.clone());
        let layer = RecoveryLayer::builder()
            .rebuild(move || {
                let (gate, v) = (g.clone(), v.clone());
                async move {
                    gate.notified().await;
                    if outcome {
                        Ok(Strict::new(v, false))
                    } else {
                        Err::<Strict, BoxError>("cannot reconnect".into())
                    }
                }
            })
            .unwrap();
        let mut svc = layer.layer(Strict::new(violations.clone(), true));
        for _ in 0..5 {
            let _ = call(&mut svc).await;
        }
        settle().await;
        // Polled ready during the rebuild (the old instance is not polled)...
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        // ...and the rebuild ends before the call.
        gate.notify_one();
        settle().await;
        let _ = svc.call(1).await;
        let _ = call(&mut svc).await;
        assert_eq!(
            violations.load(Ordering::SeqCst),
            0,
            "rebuild ok: {outcome}: every call followed its instance's poll_ready"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn failures_of_calls_sent_to_the_old_instance_do_not_count_against_the_new_one() {
    let built = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let b = built.clone();
    let layer = RecoveryLayer::builder()
        .seed(5)
        .rebuild(move || {
            b.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, BoxError>(tower::util::BoxCloneSyncService::new(service_fn(
                    |_: u32| async { Ok::<usize, BoxError>(1) },
                )))
            }
        })
        .unwrap();
    // The old instance: request 1 fails after the test releases it, request 0 fails at once.
    let r = release.clone();
    let old = tower::util::BoxCloneSyncService::new(service_fn(move |slow: u32| {
        let release = r.clone();
        async move {
            if slow == 1 {
                release.notified().await;
            }
            Err::<usize, BoxError>("broken".into())
        }
    }));
    let mut svc = layer.layer(old);
    let mut slow = Vec::new();
    for _ in 0..5 {
        let mut clone = svc.clone();
        slow.push(tokio::spawn(
            async move { clone.ready().await?.call(1).await },
        ));
    }
    settle().await;
    for _ in 0..5 {
        let _ = svc.ready().await.unwrap().call(0).await;
    }
    settle().await;
    assert_eq!(built.load(Ordering::SeqCst), 1);
    assert_eq!(call(&mut svc).await.unwrap(), 1, "the new instance serves");
    // Past the hold-off, the old instance's five slow calls fail.
    tokio::time::advance(Duration::from_secs(10)).await;
    release.notify_waiters();
    for s in slow {
        assert!(s.await.unwrap().is_err());
    }
    settle().await;
    assert_eq!(
        built.load(Ordering::SeqCst),
        1,
        "five failures of the old generation do not trigger a second rebuild"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_threads_calling_through_failing_panicking_and_good_rebuilds() {
    let violations = Arc::new(AtomicUsize::new(0));
    let built = Arc::new(AtomicUsize::new(0));
    let (v, b) = (violations.clone(), built.clone());
    let layer = RecoveryLayer::builder()
        .consecutive_failures(2)
        .minimum_calls(2)
        .holdoff(Duration::from_millis(1), Duration::from_millis(2))
        .max_attempts(1_000_000)
        .rebuild_timeout(Duration::from_secs(5))
        .max_rebuild_wait(Duration::from_secs(5))
        .rebuild(move || {
            let n = b.fetch_add(1, Ordering::SeqCst);
            let v = v.clone();
            async move {
                tokio::task::yield_now().await;
                match n % 3 {
                    0 => Err::<Strict, BoxError>("cannot reconnect".into()),
                    1 => panic!("factory panics (on purpose)"),
                    // Every instance fails, so recoveries keep coming.
                    _ => Ok(Strict::new(v, true)),
                }
            }
        })
        .unwrap();
    let svc = layer.layer(Strict::new(violations.clone(), true));
    let run = async {
        let mut callers = Vec::new();
        for _ in 0..2 {
            let (svc, built) = (svc.clone(), built.clone());
            callers.push(tokio::spawn(async move {
                // Until six rebuilds (two of each kind) have run; bounded by the timeout.
                while built.load(Ordering::SeqCst) < 6 {
                    let mut svc = svc.clone();
                    let _ = call(&mut svc).await;
                }
            }));
        }
        for caller in callers {
            caller.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("no call is wedged by a rebuild");
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "only ready instances called"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_panics_or_hangs_does_not_stop_later_recoveries() {
    for hang in [false, true] {
        let hooks = Arc::new(AtomicUsize::new(0));
        let h = hooks.clone();
        let layer = RecoveryLayer::builder()
            .seed(2)
            .rebuild_timeout(Duration::from_secs(1))
            .hook(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async move {
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    panic!("hook panics (on purpose)");
                    #[allow(unreachable_code)]
                    Ok::<_, BoxError>(())
                }
            })
            .unwrap();
        let mut svc = layer.layer(instance(0, Calls::default()));
        for _ in 0..5 {
            let _ = call(&mut svc).await;
        }
        settle().await;
        assert_eq!(hooks.load(Ordering::SeqCst), 1);
        // The hung hook is given up after its 1 s timeout; the hold-off runs from then.
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        tokio::time::advance(Duration::from_secs(6)).await;
        settle().await;
        for _ in 0..5 {
            let _ = call(&mut svc).await;
        }
        settle().await;
        assert_eq!(
            hooks.load(Ordering::SeqCst),
            2,
            "hang: {hang}: recovered again"
        );
    }
}

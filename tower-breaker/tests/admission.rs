//! Admission is valid only for the state it was granted in, and readiness errors of the inner
//! service are treated alike by the single and the keyed breaker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::advance;
use tower::{Layer, Service};
use tower_breaker::{
    BoxError, CircuitBreakerLayer, LayerKind, Reason, Rejected, State, TransitionReason,
};

/// What a request asks of the inner service.
#[derive(Clone, Copy, Debug)]
enum Req {
    Ok,
    Fail,
    Hang,
}

/// An inner service whose readiness the test controls: pending while its gate is shut, or an
/// error while `ready_error` holds one.
#[derive(Clone, Default)]
struct Gated {
    shut: Arc<AtomicBool>,
    /// 0: none; 1: an I/O error (a failure); 2: a bulkhead's rejection (ignored).
    ready_error: Arc<AtomicUsize>,
    reached: Arc<AtomicUsize>,
}

impl Gated {
    fn shut() -> Self {
        let gated = Self::default();
        gated.shut.store(true, SeqCst);
        gated
    }
    fn open(&self) {
        self.shut.store(false, SeqCst);
    }
    fn reached(&self) -> usize {
        self.reached.load(SeqCst)
    }
}

impl Service<Req> for Gated {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self.ready_error.load(SeqCst) {
            1 => return Poll::Ready(Err(std::io::Error::other("connection refused").into())),
            2 => {
                return Poll::Ready(Err(Rejected::new(
                    LayerKind::Bulkhead,
                    Reason::BulkheadFull,
                )
                .into()));
            }
            _ => {}
        }
        if self.shut.load(SeqCst) {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.reached.fetch_add(1, SeqCst);
        Box::pin(async move {
            match req {
                Req::Ok => Ok(()),
                Req::Fail => Err("down".into()),
                Req::Hang => std::future::pending().await,
            }
        })
    }
}

fn cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut cx())
}

fn reason(result: Poll<Result<(), BoxError>>) -> Reason {
    match result {
        Poll::Ready(Err(e)) => e.downcast_ref::<Rejected>().expect("a rejection").reason(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn is_ready<E: std::fmt::Debug>(poll: Poll<Result<(), E>>) -> bool {
    matches!(poll, Poll::Ready(Ok(())))
}

fn layer() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// One call through `svc`, polled once; the inner service must be ready.
fn call_now<S: Service<Req, Response = (), Error = BoxError>>(
    svc: &mut S,
    req: Req,
) -> Poll<Result<(), BoxError>>
where
    S::Future: Unpin,
{
    assert!(is_ready(svc.poll_ready(&mut cx())));
    poll_once(&mut svc.call(req))
}

#[tokio::test(start_paused = true)]
async fn a_call_readied_while_closed_is_refused_once_forced_open() {
    let layer = layer();
    let handle = layer.handle();
    let inner = Gated::shut();
    let mut svc = layer.layer(inner.clone());
    assert!(
        svc.poll_ready(&mut cx()).is_pending(),
        "the inner is not ready"
    );

    handle.force_open();
    inner.open();
    assert!(is_ready(svc.poll_ready(&mut cx())));
    let result = poll_once(&mut svc.call(Req::Ok));
    assert_eq!(reason(result), Reason::ForcedOpen);
    assert_eq!(inner.reached(), 0, "a forced-open breaker sent nothing");
}

#[tokio::test(start_paused = true)]
async fn a_call_readied_while_closed_is_refused_once_the_circuit_opened() {
    let layer = layer();
    let handle = layer.handle();
    let waiting = Gated::shut();
    let mut svc = layer.layer(waiting.clone());
    assert!(svc.poll_ready(&mut cx()).is_pending());

    // Another caller's failure opens the circuit meanwhile.
    let mut other = layer.layer(Gated::default());
    assert!(call_now(&mut other, Req::Fail).is_ready());
    assert_eq!(handle.state(), State::Open);

    waiting.open();
    assert!(is_ready(svc.poll_ready(&mut cx())));
    assert_eq!(
        reason(poll_once(&mut svc.call(Req::Ok))),
        Reason::CircuitOpen
    );
    assert_eq!(waiting.reached(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_readied_before_a_reset_is_admitted_in_the_new_closed_state() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let inner = Gated::shut();
    let mut svc = layer.layer(inner.clone());
    assert!(svc.poll_ready(&mut cx()).is_pending());
    handle.reset();
    inner.open();
    assert!(is_ready(svc.poll_ready(&mut cx())));
    assert!(poll_once(&mut svc.call(Req::Fail)).is_ready());
    assert_eq!(inner.reached(), 1, "closed again: the call goes through");
    assert_eq!(
        handle.consecutive_failures(),
        1,
        "and its failure counts in the state it was admitted in"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_slot_held_by_a_readied_clone_does_not_outlive_its_half_open() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .half_open_max_calls(1)
        .half_open_max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut opener = layer.layer(Gated::default());
    assert!(call_now(&mut opener, Req::Fail).is_ready());
    advance(Duration::from_secs(60)).await;

    // A clone takes the only probe slot in poll_ready; its inner is not ready.
    let waiting = Gated::shut();
    let mut stale = layer.layer(waiting.clone());
    assert!(stale.poll_ready(&mut cx()).is_pending());

    // The probe outlives its maximum wait: the next caller re-opens the circuit, and once the
    // reset timeout has passed again a new caller takes the new half-open's only slot.
    advance(Duration::from_secs(5)).await;
    let mut other = layer.layer(Gated::default());
    assert_eq!(reason(call_now(&mut other, Req::Ok)), Reason::CircuitOpen);
    advance(Duration::from_secs(60)).await;
    let fresh_inner = Gated::default();
    let mut fresh = layer.layer(fresh_inner.clone());
    let mut probe = {
        assert!(is_ready(fresh.poll_ready(&mut cx())));
        fresh.call(Req::Hang)
    };
    assert!(poll_once(&mut probe).is_pending());
    assert_eq!(handle.state(), State::HalfOpen);

    // The stale slot is worth nothing now: the call is refused, not a second probe.
    waiting.open();
    assert!(is_ready(stale.poll_ready(&mut cx())));
    assert_eq!(
        reason(poll_once(&mut stale.call(Req::Ok))),
        Reason::HalfOpenFull
    );
    assert_eq!(waiting.reached(), 0);
    assert_eq!(fresh_inner.reached(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_keyed_admission_is_checked_again_when_the_inner_becomes_ready() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .build_keyed(|_: &Req| 0u32)
        .unwrap();
    let handle = layer.handle();
    let inner = Gated::shut();
    let mut svc = layer.layer(inner.clone());
    assert!(is_ready(svc.poll_ready(&mut cx())));
    let mut fut = svc.call(Req::Ok);
    assert!(poll_once(&mut fut).is_pending(), "waiting for the inner");

    handle.get(&0).unwrap().force_open();
    inner.open();
    assert_eq!(reason(poll_once(&mut fut)), Reason::ForcedOpen);
    assert_eq!(inner.reached(), 0);
}

#[tokio::test(start_paused = true)]
async fn readiness_errors_count_alike_in_the_single_and_the_keyed_breaker() {
    let builder = || {
        CircuitBreakerLayer::builder()
            .failure_threshold(2)
            .reset_timeout(Duration::from_secs(60))
    };
    // Single breaker: two readiness errors are two failed calls.
    let single = builder().build().unwrap();
    let inner = Gated::default();
    inner.ready_error.store(1, SeqCst);
    let mut svc = single.layer(inner.clone());
    for _ in 0..2 {
        assert!(matches!(svc.poll_ready(&mut cx()), Poll::Ready(Err(_))));
    }
    assert_eq!(single.handle().state(), State::Open);

    // Keyed breaker: the same two errors, the same state.
    let keyed = builder().build_keyed(|_: &Req| 0u32).unwrap();
    let mut svc = keyed.layer(inner.clone());
    for _ in 0..2 {
        assert!(matches!(call_now(&mut svc, Req::Ok), Poll::Ready(Err(_))));
    }
    assert_eq!(keyed.handle().state(&0), Some(State::Open));
    assert_eq!(inner.reached(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_readiness_error_never_leaves_a_probe_slot_held() {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let layer = {
        let events = events.clone();
        CircuitBreakerLayer::builder()
            .failure_threshold(1)
            .half_open_max_calls(1)
            .on_transition(move |t| events.lock().unwrap().push(t.reason))
            .build()
            .unwrap()
    };
    let handle = layer.handle();
    let mut opener = layer.layer(Gated::default());
    assert!(call_now(&mut opener, Req::Fail).is_ready());
    advance(Duration::from_secs(60)).await;

    // The probe's inner answers readiness with a bulkhead's rejection (ignored): the slot is
    // freed at once, not held by this service.
    let inner = Gated::default();
    inner.ready_error.store(2, SeqCst);
    let mut svc = layer.layer(inner);
    assert!(matches!(svc.poll_ready(&mut cx()), Poll::Ready(Err(_))));
    assert_eq!(handle.state(), State::HalfOpen);

    let next = Gated::default();
    let mut other = layer.layer(next.clone());
    assert!(call_now(&mut other, Req::Ok).is_ready());
    assert_eq!(next.reached(), 1, "the slot was free for the next probe");
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(
        *events.lock().unwrap(),
        vec![
            TransitionReason::ConsecutiveFailures,
            TransitionReason::ResetTimeoutElapsed,
            TransitionReason::ProbesSucceeded
        ]
    );
    drop(svc);
}

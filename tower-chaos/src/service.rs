//! The service: decides every fault once per request in `call`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::answer::ChaosAnswer;
use crate::core::{Scan, Shared};
use crate::future::{Decided, ResponseFuture};

/// A service with faults injected into its calls. Made by [`ChaosLayer`](crate::ChaosLayer).
///
/// `poll_ready` forwards to the inner service: the layer adds no readiness of its own and
/// never fails it. `call` decides every fault for the request exactly once, from the seed, the
/// fault and the request's number (or key). Disarmed, it costs one atomic load; armed, one
/// atomic increment, a hash per fault, and (with the guard on) a reference-count pair so the
/// response future can count the call's outcome for the guard, and one atomic increment to
/// count it (a success reads the clock once in 8 calls).
///
/// When a terminal fault (error, abort, status) fires, the inner service is not called: the
/// readiness `poll_ready` obtained stays with this instance for its next call, as tower allows.
/// When a latency or hang fault holds the request, the ready inner service goes with it into
/// the response future (it is called when the hold ends) and a clone takes its place here,
/// to be made ready by the next `poll_ready`: hence `S: Clone`, as for tower's `Buffer`-style
/// services.
pub struct Chaos<S, Req, Res, A> {
    inner: S,
    shared: Arc<Shared<Req, Res>>,
    _answer: PhantomData<fn() -> A>,
}

impl<S, Req, Res, A> Chaos<S, Req, Res, A> {
    pub(crate) const fn new(inner: S, shared: Arc<Shared<Req, Res>>) -> Self {
        Self {
            inner,
            shared,
            _answer: PhantomData,
        }
    }

    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the layer.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, Req, Res, A> Clone for Chaos<S, Req, Res, A> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

impl<S: fmt::Debug, Req, Res, A> fmt::Debug for Chaos<S, Req, Res, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish()
    }
}

impl<S, Req, Res, A> Service<Req> for Chaos<S, Req, Res, A>
where
    S: Service<Req, Response = Res> + Clone,
    A: ChaosAnswer<Res, S::Error>,
{
    type Response = Res;
    type Error = A::Error;
    type Future = ResponseFuture<S, Req, Res, A>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(A::inner_error)
    }

    #[inline(always)]
    fn call(&mut self, mut request: Req) -> Self::Future {
        // Disarmed: one relaxed load and a branch, and a future that carries nothing.
        if !self.shared.armed.load(Relaxed) {
            if let Some(strip) = &self.shared.strip {
                strip(&mut request);
            }
            return ResponseFuture::called(self.inner.call(request), None);
        }
        self.call_armed(request)
    }
}

impl<S, Req, Res, A> Chaos<S, Req, Res, A>
where
    S: Service<Req, Response = Res> + Clone,
{
    /// Out of line, so the disarmed path stays small enough to inline.
    #[inline(never)]
    fn call_armed(&mut self, mut request: Req) -> ResponseFuture<S, Req, Res, A> {
        let decided = decide(&self.shared, &request);
        // The control string is for this layer only: the inner service never sees it.
        if let Some(strip) = &self.shared.strip {
            strip(&mut request);
        }
        match decided {
            Decided::Call(extra) => ResponseFuture::called(self.inner.call(request), extra),
            Decided::Held(faulted) => {
                // The ready service goes with the held request (it is called when the gates
                // pass); a clone takes its place, to be made ready by the next `poll_ready`.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::parked(ready, request, faulted)
            }
            Decided::Answer(faulted) => ResponseFuture::answer(faulted),
        }
    }
}

/// Decides every fault for an armed call.
#[inline]
fn decide<Req, Res>(shared: &Arc<Shared<Req, Res>>, request: &Req) -> Decided<Req, Res> {
    // `auto_disarm_after` passed: disarmed now, the call goes through untouched.
    if shared.auto_disarm.is_some() && shared.expire() {
        return Decided::Call(None);
    }
    let scan = shared.scan(request);
    if scan.fired == 0 {
        return Decided::observed(shared);
    }
    decide_faulted(shared, scan)
}

#[cold]
#[inline(never)]
fn decide_faulted<Req, Res>(shared: &Arc<Shared<Req, Res>>, scan: Scan) -> Decided<Req, Res> {
    let plan = shared.plan(scan);
    if shared.dry_run.load(Relaxed) {
        shared.record(&plan, true);
        return Decided::observed(shared);
    }
    if shared.needs_timer(&plan) && tokio::runtime::Handle::try_current().is_err() {
        // Outside a tokio runtime a delay (or a timer of its own) cannot run: the fault is
        // not injected, and holds no slot.
        shared.no_runtime(&plan);
        return Decided::observed(shared);
    }
    let Some(slot) = shared.try_activate() else {
        return Decided::observed(shared);
    };
    shared.record(&plan, false);
    if plan.terminal.is_some() {
        Decided::answer(shared, &plan, slot)
    } else {
        Decided::faulted(shared, &plan, slot)
    }
}

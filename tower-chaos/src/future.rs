//! Response futures.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, SeqCst};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};
use tower_outcome::{LayerKind, Reason, Rejected};
use tower_service::Service;

use crate::answer::ChaosAnswer;
use crate::core::{ActiveSlot, Plan, Shared};
use crate::fault::Action;

pin_project! {
    /// The response future of [`Chaos`](crate::Chaos) over service `S`.
    ///
    /// A faulted call holds an active-fault slot (see `max_active_faults`) and, if it is
    /// delayed or hung, its timer, its place among the held calls, the request and the
    /// (ready) inner service it will be sent to; dropping the future releases them all.
    pub struct ResponseFuture<S, Req, Res, A>
    where
        S: Service<Req>,
    {
        // The inner call, unless a terminal fault answers instead of it.
        #[pin]
        inner: Inner<S, Req>,
        // Nothing for a passthrough call (disarmed, or armed without the guard and no fault).
        state: State<Req, Res>,
        _answer: PhantomData<fn() -> A>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<S, Req>
    where
        S: Service<Req>,
    {
        Called { #[pin] future: S::Future },
        // Held by a gate or a response delay (boxed: only held calls pay for the room, and
        // the passthrough's drop stays one tag test).
        Held { held: HeldBox<S, Req> },
        // A terminal fault answers; the inner service was not called.
        Skipped,
    }
}

/// A held call's box: dropped out of line, so the future's drop glue stays small enough to
/// inline into the caller (`None` only while it is being dropped).
struct HeldBox<S: Service<Req>, Req>(Option<Box<Held<S, Req>>>);

impl<S: Service<Req>, Req> HeldBox<S, Req> {
    fn new(held: Held<S, Req>) -> Self {
        Self(Some(Box::new(held)))
    }

    fn get(&mut self) -> &mut Held<S, Req> {
        // Invariant: `None` only inside `drop`.
        self.0
            .as_mut()
            .expect("a held call's box is there until dropped")
    }
}

impl<S: Service<Req>, Req> Drop for HeldBox<S, Req> {
    #[inline]
    fn drop(&mut self) {
        #[inline(never)]
        fn free<T>(held: Box<T>) {
            drop(held);
        }
        if let Some(held) = self.0.take() {
            free(held);
        }
    }
}

/// What a held call holds.
enum Held<S: Service<Req>, Req> {
    // Held by a latency or hang fault: the ready service and the request, sent once the
    // gates pass.
    Parked(Option<(S, Req)>),
    // The service has answered; a response delay holds the answer.
    Delivering(Option<Result<S::Response, S::Error>>),
}

/// What a call carries besides the inner future. `None` is the passthrough: polling and
/// dropping it is a test of one tag, inlined into the caller.
struct State<Req, Res>(Option<Extra<Req, Res>>);

pub(crate) enum Extra<Req, Res> {
    // No fault fired: the shared state, so the guard counts the result (armed, guard on),
    // and when the call started if the guard watches latency.
    Observe(Arc<Shared<Req, Res>>, Option<Instant>),
    // A fault fired: gates before the inner call, post-call faults after, or the answer.
    // In an `Arc` (never shared: polled through `Arc::get_mut`) rather than a `Box`: the
    // drop of an `Arc` is a decrement and an out-of-line call, which keeps this enum's drop
    // small enough to inline into the passthrough caller.
    Faulted(Arc<Faulted<Req, Res>>),
}

/// What a faulted call carries. Dropping it frees the active-fault slot, unless a body fault
/// took the slot along with the body.
pub(crate) struct Faulted<Req, Res> {
    shared: Arc<Shared<Req, Res>>,
    slot: Option<ActiveSlot>,
    delay: Option<Pin<Box<Sleep>>>,
    hang: bool,
    /// The response delay, started when the service answers.
    response_delay: Duration,
    /// The release epochs when the call was faulted: a change releases it.
    hang_epoch: u64,
    delay_epoch: u64,
    /// The call's place among the calls a release wakes, while it is held.
    notified: Option<Pin<Box<OwnedNotified>>>,
    /// `auto_disarm_after`'s deadline: a held call is released there.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The guard's latency watch.
    watch: Option<Watch>,
    terminal: Option<u8>,
    post: u64,
    done: bool,
}

/// When a call started, for the guard's latency bound, and the timer that counts it as slow
/// while it is still held.
struct Watch {
    start: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    counted: bool,
}

impl<Req, Res> Faulted<Req, Res> {
    fn new(shared: Arc<Shared<Req, Res>>, plan: &Plan, slot: ActiveSlot) -> Arc<Self> {
        // The epochs first, then whether the layer is still armed (all `SeqCst`, as in
        // `disarm` and `release_held`): a releasing disarm either comes after the epochs were
        // read, and the call sees it, or before, and the call is not held at all.
        let hang_epoch = shared.release_epoch.load(SeqCst);
        let delay_epoch = shared.delay_epoch.load(SeqCst);
        let hold = shared.armed.load(SeqCst) || !shared.release_on_disarm;
        let delay =
            (hold && !plan.delay.is_zero()).then(|| Box::pin(tokio::time::sleep(plan.delay)));
        let hang = hold && plan.hang;
        let response_delay = if hold {
            plan.response_delay
        } else {
            Duration::ZERO
        };
        let gated = delay.is_some() || hang || !response_delay.is_zero();
        let deadline = if gated && shared.release_on_disarm {
            shared
                .disarm_deadline()
                .map(|at| Box::pin(tokio::time::sleep_until(at)))
        } else {
            None
        };
        let watch = match shared.guard.as_ref().and_then(|g| g.latency) {
            Some(bound) if plan.terminal.is_none() => {
                let start = Instant::now();
                Some(Watch {
                    start,
                    // Past the bound by a nanosecond: a call that took exactly the bound is
                    // not slow.
                    timer: gated.then(|| {
                        Box::pin(tokio::time::sleep_until(
                            start + bound + Duration::from_nanos(1),
                        ))
                    }),
                    counted: false,
                })
            }
            _ => None,
        };
        Arc::new(Self {
            hang_epoch,
            delay_epoch,
            shared,
            slot: Some(slot),
            delay,
            hang,
            response_delay,
            notified: None,
            deadline,
            watch,
            terminal: plan.terminal,
            post: plan.post,
            done: false,
        })
    }

    /// Waits out the delay, then the hang, unless a release (or `auto_disarm_after`) lets the
    /// call go first.
    fn poll_gates(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.delay.is_some() && self.shared.delay_epoch.load(Acquire) != self.delay_epoch {
                self.delay = None;
            }
            if self.hang && self.shared.release_epoch.load(Acquire) != self.hang_epoch {
                self.hang = false;
            }
            if let Some(deadline) = self.deadline.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                self.deadline = None;
                if self.delay.is_some() || self.hang {
                    // The layer has been armed too long: disarm it (releasing every held call).
                    self.shared.expire();
                    self.delay = None;
                    self.hang = false;
                }
            }
            if let Some(sleep) = self.delay.as_mut()
                && sleep.as_mut().poll(cx).is_ready()
            {
                self.delay = None;
            }
            if self.delay.is_none() && !self.hang {
                // The deadline stays: a response delay may still come.
                self.notified = None;
                return Poll::Ready(());
            }
            match self.notified.as_mut() {
                None => {
                    let mut notified = Box::pin(Arc::clone(&self.shared.hung).notified_owned());
                    notified.as_mut().enable();
                    self.notified = Some(notified);
                    // A release between the epoch check and `enable` is seen on the next turn.
                }
                Some(notified) => {
                    ready!(notified.as_mut().poll(cx));
                    self.notified = None;
                }
            }
        }
    }

    /// Counts a call held past the guard's latency bound as slow, once, while it is held.
    fn poll_watch(&mut self, cx: &mut Context<'_>) {
        if let Some(watch) = self.watch.as_mut()
            && let Some(timer) = watch.timer.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            watch.timer = None;
            watch.counted = true;
            self.shared.observe_slow();
        }
    }

    fn mutate(&mut self, mut response: Res) -> Res {
        let mut post = self.post;
        // A body fault holds the call's slot until its stream ends.
        let mut body_slot: Option<Arc<ActiveSlot>> = None;
        while post != 0 {
            let index = post.trailing_zeros() as usize;
            post &= post - 1;
            match &self.shared.faults[index].action {
                Action::Mutate(mutate) => response = mutate(response),
                Action::Body(wrap) => {
                    if body_slot.is_none() {
                        body_slot = self.slot.take().map(Arc::new);
                    }
                    response = wrap(response, body_slot.clone());
                }
                _ => {}
            }
        }
        response
    }
}

impl<S: Service<Req>, Req, Res, A> ResponseFuture<S, Req, Res, A> {
    #[inline(always)]
    const fn new(inner: Inner<S, Req>, state: Option<Extra<Req, Res>>) -> Self {
        Self {
            inner,
            state: State(state),
            _answer: PhantomData,
        }
    }

    /// The inner call, and what the armed layer decided to carry beside it.
    #[inline(always)]
    pub(crate) const fn called(future: S::Future, extra: Option<Extra<Req, Res>>) -> Self {
        Self::new(Inner::Called { future }, extra)
    }

    /// A call held by a gate: `service` (ready) is called with `request` once it passes.
    #[inline]
    pub(crate) fn parked(service: S, request: Req, faulted: Arc<Faulted<Req, Res>>) -> Self {
        Self::new(
            Inner::Held {
                held: HeldBox::new(Held::Parked(Some((service, request)))),
            },
            Some(Extra::Faulted(faulted)),
        )
    }

    /// A terminal fault's answer, without the inner call.
    #[inline]
    pub(crate) const fn answer(faulted: Arc<Faulted<Req, Res>>) -> Self {
        Self::new(Inner::Skipped, Some(Extra::Faulted(faulted)))
    }
}

/// What an armed layer decided for a call, made out of line; the inner call is made by the
/// caller, inline, whatever the decision.
pub(crate) enum Decided<Req, Res> {
    /// Call the inner service, carrying this beside its future.
    Call(Option<Extra<Req, Res>>),
    /// Hold the request (and the ready service) until the gates pass, then call.
    Held(Arc<Faulted<Req, Res>>),
    /// A terminal fault answers: the inner service is not called.
    Answer(Arc<Faulted<Req, Res>>),
}

impl<Req, Res> Decided<Req, Res> {
    /// No fault: the shared state rides along only when the guard must see the result.
    pub(crate) fn observed(shared: &Arc<Shared<Req, Res>>) -> Self {
        Self::Call(
            shared.guard.as_ref().map(|guard| {
                Extra::Observe(Arc::clone(shared), guard.latency.map(|_| Instant::now()))
            }),
        )
    }

    /// Faults that gate the call or change its result.
    pub(crate) fn faulted(shared: &Arc<Shared<Req, Res>>, plan: &Plan, slot: ActiveSlot) -> Self {
        let faulted = Faulted::new(Arc::clone(shared), plan, slot);
        if faulted.delay.is_some() || faulted.hang {
            Self::Held(faulted)
        } else {
            Self::Call(Some(Extra::Faulted(faulted)))
        }
    }

    /// A terminal fault.
    pub(crate) fn answer(shared: &Arc<Shared<Req, Res>>, plan: &Plan, slot: ActiveSlot) -> Self {
        Self::Answer(Faulted::new(Arc::clone(shared), plan, slot))
    }
}

/// Maps the inner result, counting it for the guard: every real call, failed or not, with
/// its latency when the guard watches it (`counted`: already counted as slow while held).
#[inline(never)]
fn real<Req, Res, E, A>(
    shared: &Shared<Req, Res>,
    result: Result<Res, E>,
    latency: Option<Duration>,
    counted: bool,
) -> Result<Res, A::Error>
where
    A: ChaosAnswer<Res, E>,
{
    let result = result.map_err(A::inner_error);
    if let Some(guard) = &shared.guard {
        let failed = match &result {
            Ok(res) => guard.ok_can_fail && (guard.classify)(Ok(res)),
            Err(err) => (guard.classify)(Err(A::error_ref(err))),
        };
        shared.observe(failed, latency, counted);
    }
    result
}

/// The faulted call's state: its `Arc` is never cloned, so this always succeeds.
fn unique<Req, Res>(faulted: &mut Arc<Faulted<Req, Res>>) -> &mut Faulted<Req, Res> {
    Arc::get_mut(faulted).expect("a faulted call's state is never shared")
}

/// What a faulted call does once the service has answered.
enum Step<Res, E, AE> {
    /// The caller's answer.
    Done(Result<Res, AE>),
    /// The service's answer, held by a response delay.
    Hold(Result<Res, E>),
}

/// A faulted call: the gates, the inner call, then the post-call faults (or the response
/// delay first).
#[inline(never)]
fn poll_faulted<F, Req, Res, E, A>(
    future: Pin<&mut F>,
    faulted: &mut Arc<Faulted<Req, Res>>,
    cx: &mut Context<'_>,
) -> Poll<Step<Res, E, A::Error>>
where
    F: Future<Output = Result<Res, E>>,
    A: ChaosAnswer<Res, E>,
{
    let faulted = unique(faulted);
    if faulted.poll_gates(cx).is_pending() {
        faulted.poll_watch(cx);
        return Poll::Pending;
    }
    let Poll::Ready(result) = future.poll(cx) else {
        faulted.poll_watch(cx);
        return Poll::Pending;
    };
    if !faulted.response_delay.is_zero() {
        faulted.delay = Some(Box::pin(tokio::time::sleep(faulted.response_delay)));
        faulted.response_delay = Duration::ZERO;
        return Poll::Ready(Step::Hold(result));
    }
    Poll::Ready(Step::Done(finish::<Req, Res, E, A>(faulted, result)))
}

/// An answer held by a response delay, let through when the delay is over (or released).
#[inline(never)]
fn poll_delivering<Req, Res, E, A>(
    result: &mut Option<Result<Res, E>>,
    faulted: &mut Arc<Faulted<Req, Res>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Res, A::Error>>
where
    A: ChaosAnswer<Res, E>,
{
    let faulted = unique(faulted);
    if faulted.poll_gates(cx).is_pending() {
        faulted.poll_watch(cx);
        return Poll::Pending;
    }
    // Invariant: taken once, as the future completes.
    let result = result
        .take()
        .expect("ResponseFuture polled after completion");
    Poll::Ready(finish::<Req, Res, E, A>(faulted, result))
}

/// The service's answer, counted for the guard, through the post-call faults.
fn finish<Req, Res, E, A>(
    faulted: &mut Faulted<Req, Res>,
    result: Result<Res, E>,
) -> Result<Res, A::Error>
where
    A: ChaosAnswer<Res, E>,
{
    let (latency, counted) = match &faulted.watch {
        Some(watch) if watch.counted => (None, true),
        Some(watch) => (Some(watch.start.elapsed()), false),
        None => (None, false),
    };
    let result = real::<Req, Res, E, A>(&faulted.shared, result, latency, counted);
    result.map(|res| faulted.mutate(res))
}

/// A terminal fault's answer, once the gates have passed.
#[inline(never)]
fn poll_answer<Req, Res, E, A>(
    faulted: &mut Arc<Faulted<Req, Res>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Res, A::Error>>
where
    A: ChaosAnswer<Res, E>,
{
    let faulted = unique(faulted);
    ready!(faulted.poll_gates(cx));
    assert!(!faulted.done, "ResponseFuture polled after completion");
    faulted.done = true;
    let index = usize::from(faulted.terminal.unwrap_or_default());
    let fault = &faulted.shared.faults[index];
    Poll::Ready(match &fault.action {
        Action::Error(factory) => A::injected_error(factory()),
        Action::Respond(respond) => Ok((respond.make)(respond)),
        _ => A::rejected(
            Rejected::new(LayerKind::Chaos, Reason::Injected)
                .with_name(Arc::clone(&faulted.shared.name)),
        ),
    })
}

impl<S, Req, Res, E, A> Future for ResponseFuture<S, Req, Res, A>
where
    S: Service<Req, Response = Res, Error = E>,
    A: ChaosAnswer<Res, E>,
{
    type Output = Result<Res, A::Error>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The passthrough (disarmed, or armed with nothing to carry): one tag test, inline.
        if this.state.0.is_none()
            && let InnerProj::Called { future } = this.inner.as_mut().project()
        {
            return Poll::Ready(ready!(future.poll(cx)).map_err(A::inner_error));
        }
        if let (InnerProj::Called { future }, Some(Extra::Observe(shared, start))) =
            (this.inner.as_mut().project(), &mut this.state.0)
        {
            let result = ready!(future.poll(cx));
            return Poll::Ready(observe::<Req, Res, E, A>(shared, result, *start));
        }
        poll_rest::<S, Req, Res, E, A>(this.inner, &mut this.state.0, cx)
    }
}

/// An observed call's result: a failure, an error, or a call the guard must time goes out of
/// line to it; a success is counted with one increment.
#[inline(always)]
fn observe<Req, Res, E, A>(
    shared: &Shared<Req, Res>,
    result: Result<Res, E>,
    start: Option<Instant>,
) -> Result<Res, A::Error>
where
    A: ChaosAnswer<Res, E>,
{
    if start.is_none()
        && let Some(guard) = &shared.guard
        && let Ok(res) = &result
        && !(guard.ok_can_fail && (guard.classify)(Ok(res)))
    {
        shared.observe_success(guard);
        return result.map_err(A::inner_error);
    }
    let latency = start.map(|start| start.elapsed());
    real::<Req, Res, E, A>(shared, result, latency, false)
}

/// Every state but the passthrough and an observed call in flight: a faulted call's gates,
/// its held request, its delayed answer or its terminal answer. Out of line.
#[inline(never)]
fn poll_rest<S, Req, Res, E, A>(
    mut inner: Pin<&mut Inner<S, Req>>,
    state: &mut Option<Extra<Req, Res>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Res, A::Error>>
where
    S: Service<Req, Response = Res, Error = E>,
    A: ChaosAnswer<Res, E>,
{
    loop {
        let next = match (inner.as_mut().project(), &mut *state) {
            (InnerProj::Called { future }, None) => {
                return Poll::Ready(ready!(future.poll(cx)).map_err(A::inner_error));
            }
            (InnerProj::Called { future }, Some(Extra::Observe(shared, start))) => {
                let result = ready!(future.poll(cx));
                return Poll::Ready(observe::<Req, Res, E, A>(shared, result, *start));
            }
            (InnerProj::Called { future }, Some(Extra::Faulted(faulted))) => {
                match ready!(poll_faulted::<S::Future, Req, Res, E, A>(
                    future, faulted, cx
                )) {
                    Step::Done(answer) => return Poll::Ready(answer),
                    Step::Hold(result) => Inner::Held {
                        held: HeldBox::new(Held::Delivering(Some(result))),
                    },
                }
            }
            (InnerProj::Held { held }, Some(Extra::Faulted(faulted))) => match held.get() {
                Held::Delivering(result) => {
                    return poll_delivering::<Req, Res, E, A>(result, faulted, cx);
                }
                Held::Parked(parked) => Inner::Called {
                    future: ready!(poll_parked::<S, Req, Res>(parked, faulted, cx)),
                },
            },
            (InnerProj::Skipped, Some(Extra::Faulted(faulted))) => {
                return poll_answer::<Req, Res, E, A>(faulted, cx);
            }
            // Invariant: `answer`, `parked` and a faulted call's answer are the only ways
            // to `Skipped` and `Held`, and they always carry the fault.
            (InnerProj::Skipped | InnerProj::Held { .. }, _) => {
                unreachable!("an answered or held call carries its fault")
            }
        };
        inner.set(next);
    }
}

/// A held call: the gates, then the inner service is called with the request.
#[inline(never)]
fn poll_parked<S, Req, Res>(
    parked: &mut Option<(S, Req)>,
    faulted: &mut Arc<Faulted<Req, Res>>,
    cx: &mut Context<'_>,
) -> Poll<S::Future>
where
    S: Service<Req>,
{
    let faulted = unique(faulted);
    if faulted.poll_gates(cx).is_pending() {
        faulted.poll_watch(cx);
        return Poll::Pending;
    }
    // Invariant: taken once, then the future becomes `Called`.
    let (mut service, request) = parked.take().expect("a held call is sent once");
    Poll::Ready(service.call(request))
}

impl<S: Service<Req>, Req, Res, A> fmt::Debug for ResponseFuture<S, Req, Res, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (&self.inner, &self.state.0) {
            (_, None) => "passthrough",
            (_, Some(Extra::Observe(..))) => "observed",
            (Inner::Called { .. }, Some(Extra::Faulted(_))) => "faulted",
            (Inner::Held { held }, Some(Extra::Faulted(_))) => match held.0.as_deref() {
                Some(Held::Parked(_)) => "held",
                Some(Held::Delivering(_)) | None => "answer held",
            },
            (Inner::Skipped, Some(Extra::Faulted(_))) => "answer",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

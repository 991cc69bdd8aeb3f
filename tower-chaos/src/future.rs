//! Response futures.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;
use tower_outcome::{LayerKind, Reason, Rejected};

use crate::answer::ChaosAnswer;
use crate::core::{Plan, Shared};
use crate::fault::Action;

pin_project! {
    /// The response future of [`Chaos`](crate::Chaos).
    ///
    /// A faulted call holds an active-fault slot (see `max_active_faults`) and, if it is
    /// delayed or hung, its timer or its place among the hung calls; dropping the future
    /// releases them all.
    pub struct ResponseFuture<F, Req, Res, A> {
        // The inner call, unless a terminal fault answers instead of it.
        #[pin]
        inner: Inner<F>,
        // Nothing for a passthrough call (disarmed, or armed without the guard and no fault).
        state: State<Req, Res>,
        _answer: PhantomData<fn() -> A>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<F> {
        Called { #[pin] future: F },
        // A terminal fault answers; the inner service was not called.
        Skipped,
    }
}

/// What a call carries besides the inner future. `None` is the passthrough: polling and
/// dropping it is a test of one tag, inlined into the caller.
struct State<Req, Res>(Option<Extra<Req, Res>>);

pub(crate) enum Extra<Req, Res> {
    // No fault fired: the shared state, so the guard sees a real failure (armed, guard on).
    Observe(Arc<Shared<Req, Res>>),
    // A fault fired: gates before the inner call, post-call faults after, or the answer.
    // In an `Arc` (never shared: polled through `Arc::get_mut`) rather than a `Box`: the
    // drop of an `Arc` is a decrement and an out-of-line call, which keeps this enum's drop
    // small enough to inline into the passthrough caller.
    Faulted(Arc<Faulted<Req, Res>>),
}

/// What a faulted call carries. Dropping it frees the active-fault slot.
pub(crate) struct Faulted<Req, Res> {
    shared: Arc<Shared<Req, Res>>,
    delay: Option<Pin<Box<Sleep>>>,
    hang: Option<Hang>,
    terminal: Option<u8>,
    post: u64,
    done: bool,
}

impl<Req, Res> Drop for Faulted<Req, Res> {
    fn drop(&mut self) {
        self.shared.active.fetch_sub(1, AcqRel);
    }
}

/// A hung call's wait for `release_hung`.
struct Hang {
    epoch: u64,
    notified: Option<Pin<Box<OwnedNotified>>>,
}

impl<Req, Res> Faulted<Req, Res> {
    fn new(shared: Arc<Shared<Req, Res>>, plan: &Plan) -> Arc<Self> {
        let delay = (!plan.delay.is_zero()).then(|| Box::pin(tokio::time::sleep(plan.delay)));
        let hang = plan.hang.then(|| Hang {
            epoch: shared.release_epoch.load(Acquire),
            notified: None,
        });
        Arc::new(Self {
            shared,
            delay,
            hang,
            terminal: plan.terminal,
            post: plan.post,
            done: false,
        })
    }

    /// Waits out the delay, then the hang.
    fn poll_gates(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(sleep) = self.delay.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            self.delay = None;
        }
        if let Some(hang) = self.hang.as_mut() {
            let released =
                |shared: &Shared<Req, Res>| shared.release_epoch.load(Acquire) != hang.epoch;
            if !released(&self.shared) {
                if hang.notified.is_none() {
                    let mut notified = Box::pin(Arc::clone(&self.shared.hung).notified_owned());
                    notified.as_mut().enable();
                    hang.notified = Some(notified);
                    if released(&self.shared) {
                        self.hang = None;
                        return Poll::Ready(());
                    }
                }
                if let Some(notified) = hang.notified.as_mut() {
                    ready!(notified.as_mut().poll(cx));
                }
            }
            self.hang = None;
        }
        Poll::Ready(())
    }

    fn mutate(&self, mut response: Res) -> Res {
        let mut post = self.post;
        while post != 0 {
            let index = post.trailing_zeros() as usize;
            post &= post - 1;
            if let Action::Mutate(mutate) = &self.shared.faults[index].action {
                response = mutate(response);
            }
        }
        response
    }
}

impl<F, Req, Res, A> ResponseFuture<F, Req, Res, A> {
    #[inline(always)]
    const fn new(inner: Inner<F>, state: Option<Extra<Req, Res>>) -> Self {
        Self {
            inner,
            state: State(state),
            _answer: PhantomData,
        }
    }

    /// The inner call, and what the armed layer decided to carry beside it.
    #[inline(always)]
    pub(crate) const fn called(future: F, extra: Option<Extra<Req, Res>>) -> Self {
        Self::new(Inner::Called { future }, extra)
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
    /// A terminal fault answers: the inner service is not called.
    Answer(Arc<Faulted<Req, Res>>),
}

impl<Req, Res> Decided<Req, Res> {
    /// No fault: the shared state rides along only when the guard must see the result.
    pub(crate) fn observed(shared: &Arc<Shared<Req, Res>>) -> Self {
        Self::Call(
            shared
                .guard
                .as_ref()
                .map(|_| Extra::Observe(Arc::clone(shared))),
        )
    }

    /// Faults that gate the call or change its result.
    pub(crate) fn faulted(shared: &Arc<Shared<Req, Res>>, plan: &Plan) -> Self {
        Self::Call(Some(Extra::Faulted(Faulted::new(Arc::clone(shared), plan))))
    }

    /// A terminal fault.
    pub(crate) fn answer(shared: &Arc<Shared<Req, Res>>, plan: &Plan) -> Self {
        Self::Answer(Faulted::new(Arc::clone(shared), plan))
    }
}

/// Maps the inner result, telling the guard about a real failure.
#[inline(never)]
fn real<Req, Res, E, A>(
    shared: Option<&Shared<Req, Res>>,
    result: Result<Res, E>,
) -> Result<Res, A::Error>
where
    A: ChaosAnswer<Res, E>,
{
    let result = result.map_err(A::inner_error);
    if let Some(shared) = shared
        && let Some(guard) = &shared.guard
    {
        let failed = match &result {
            Ok(res) => guard.ok_can_fail && (guard.classify)(Ok(res)),
            Err(err) => (guard.classify)(Err(A::error_ref(err))),
        };
        if failed {
            shared.real_failure();
        }
    }
    result
}

/// The faulted call's state: its `Arc` is never cloned, so this always succeeds.
fn unique<Req, Res>(faulted: &mut Arc<Faulted<Req, Res>>) -> &mut Faulted<Req, Res> {
    Arc::get_mut(faulted).expect("a faulted call's state is never shared")
}

/// A faulted call: the gates, the inner call, the post-call faults.
#[inline(never)]
fn poll_faulted<F, Req, Res, E, A>(
    future: Pin<&mut F>,
    faulted: &mut Arc<Faulted<Req, Res>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Res, A::Error>>
where
    F: Future<Output = Result<Res, E>>,
    A: ChaosAnswer<Res, E>,
{
    let faulted = unique(faulted);
    ready!(faulted.poll_gates(cx));
    let result = ready!(future.poll(cx));
    let result = real::<Req, Res, E, A>(Some(&faulted.shared), result);
    Poll::Ready(result.map(|res| faulted.mutate(res)))
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

impl<F, Req, Res, E, A> Future for ResponseFuture<F, Req, Res, A>
where
    F: Future<Output = Result<Res, E>>,
    A: ChaosAnswer<Res, E>,
{
    type Output = Result<Res, A::Error>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match (this.inner.project(), &mut this.state.0) {
            (InnerProj::Called { future }, None) => {
                Poll::Ready(ready!(future.poll(cx)).map_err(A::inner_error))
            }
            (InnerProj::Called { future }, Some(Extra::Observe(shared))) => {
                let result = ready!(future.poll(cx));
                // Only a result the guard could count as a failure goes to it.
                if result.is_err() || shared.guard.as_ref().is_some_and(|g| g.ok_can_fail) {
                    Poll::Ready(real::<Req, Res, E, A>(Some(shared), result))
                } else {
                    Poll::Ready(result.map_err(A::inner_error))
                }
            }
            (InnerProj::Called { future }, Some(Extra::Faulted(faulted))) => {
                poll_faulted::<F, Req, Res, E, A>(future, faulted, cx)
            }
            (InnerProj::Skipped, Some(Extra::Faulted(faulted))) => {
                poll_answer::<Req, Res, E, A>(faulted, cx)
            }
            // Invariant: `answer` is the only constructor of `Skipped`, and it always carries
            // the fault's state.
            (InnerProj::Skipped, _) => unreachable!("an answered call carries its fault"),
        }
    }
}

impl<F, Req, Res, A> fmt::Debug for ResponseFuture<F, Req, Res, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (&self.inner, &self.state.0) {
            (_, None) => "passthrough",
            (_, Some(Extra::Observe(_))) => "observed",
            (Inner::Called { .. }, Some(Extra::Faulted(_))) => "faulted",
            (Inner::Skipped, Some(Extra::Faulted(_))) => "answer",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

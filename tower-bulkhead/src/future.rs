//! The response future: the inner call holding its permit, a wait for room, or a rejection.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_outcome::{Answer, Reason, Rejected};
use tower_service::Service;

use crate::compartment::{Compartment, Denied, Grant};

use crate::{ActualCost, Hold, Permit};

const DONE: &str = "bulkhead ResponseFuture polled after completion";

pin_project! {
    /// The response future of [`Bulkhead`](crate::Bulkhead) and
    /// [`KeyedBulkhead`](crate::KeyedBulkhead).
    ///
    /// It holds what the call holds: its [`Permit`] while the inner call runs, or its place in
    /// the compartment's queue while it waits. Dropping it before it completes cancels the
    /// call: the permit (slot, in-flight tokens, rate reservation) or the queue place is given
    /// back, and nothing of the inner service was reserved for a call still waiting.
    pub struct ResponseFuture<S: Service<Req>, F, Req, R, H, A> {
        #[pin]
        kind: Kind<S, F, Req>,
        actual: R,
        _mode: PhantomData<fn() -> (H, A)>,
    }
}

pin_project! {
    #[project = KindProj]
    #[project_replace = KindReplace]
    enum Kind<S: Service<Req>, F, Req> {
        Called { #[pin] future: F, permit: Permit },
        Admitted { service: S, request: Option<Req>, permit: Option<Permit> },
        Waiting { service: Option<S>, request: Option<Req>, wait: Wait },
        // A rejection, or the inner service's readiness error (the call never made): the
        // answer, kept in one variant (one more variant makes the hot path of every call
        // longer).
        Rejected { answer: Option<Result<Rejected, S::Error>> },
        // Completed: nothing left to drop.
        Done,
    }
}

impl<S: Service<Req>, F, Req, R, H, A> ResponseFuture<S, F, Req, R, H, A> {
    /// The request was handed to the inner service: `permit`'s rate tokens must be spent
    /// ([`Permit::sent`]), as they are from now on.
    #[inline]
    pub(crate) const fn called(future: F, permit: Permit, actual: R) -> Self {
        Self::new(Kind::Called { future, permit }, actual)
    }

    /// An admitted call whose inner service was not polled ready. It is polled once here,
    /// with a no-op waker: a service ready at once (most are) is called at once; one that
    /// fails answers its error (the permit goes back, the request is never sent); otherwise
    /// the response future drives it to readiness with the caller's waker (only the last
    /// waker registered counts, so the extra poll is harmless).
    #[inline]
    pub(crate) fn admitted(mut service: S, request: Req, permit: Permit, actual: R) -> Self
    where
        S: Service<Req, Future = F>,
    {
        let mut cx = Context::from_waker(Waker::noop());
        match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {
                return Self::called(service.call(request), permit.sent(), actual);
            }
            Poll::Ready(Err(error)) => {
                drop(permit);
                return Self::new(
                    Kind::Rejected {
                        answer: Some(Err(error)),
                    },
                    actual,
                );
            }
            Poll::Pending => {}
        }
        Self::new(
            Kind::Admitted {
                service,
                request: Some(request),
                permit: Some(permit),
            },
            actual,
        )
    }

    /// A call not admitted at once: it waits if the compartment allows, else is rejected.
    #[inline(never)]
    pub(crate) fn denied(
        compartment: &Arc<Compartment>,
        mut denied: Denied,
        cost: u64,
        service: impl FnOnce() -> S,
        request: Req,
        actual: R,
    ) -> Self {
        let max_wait = compartment.max_wait();
        if !max_wait.is_zero() && compartment.worth_waiting(&denied, max_wait) {
            match compartment.enqueue(cost) {
                Some(id) => {
                    let wait = Wait::new(Arc::clone(compartment), id, max_wait);
                    return Self::new(
                        Kind::Waiting {
                            service: Some(service()),
                            request: Some(request),
                            wait,
                        },
                        actual,
                    );
                }
                // The queue is full.
                None => denied.reason = Reason::BulkheadFull,
            }
        }
        Self::rejected(compartment.reject(denied), actual)
    }

    pub(crate) const fn rejected(rejected: Rejected, actual: R) -> Self {
        Self::new(
            Kind::Rejected {
                answer: Some(Ok(rejected)),
            },
            actual,
        )
    }

    const fn new(kind: Kind<S, F, Req>, actual: R) -> Self {
        Self {
            kind,
            actual,
            _mode: PhantomData,
        }
    }
}

impl<S, Req, R, H, A> Future for ResponseFuture<S, S::Future, Req, R, H, A>
where
    S: Service<Req>,
    R: ActualCost<S::Response>,
    H: Hold<S::Response>,
    A: Answer<S::Response, S::Error>,
{
    type Output = Result<H::Response, A::Error>;

    // Always inlined: the fast path (a call in flight) is small, the rest is out of line.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut kind = this.kind;
        // The common case, kept small: a call in flight.
        if let KindProj::Called { future, .. } = kind.as_mut().project() {
            let result = ready!(future.poll(cx));
            return Poll::Ready(finish::<_, _, R, H, A>(
                result,
                take_permit(kind),
                this.actual,
            ));
        }
        poll_slow::<S, Req, R, H, A>(kind, this.actual, cx)
    }
}

/// Moves a finished call's permit out, leaving `Done` (whose drop does nothing).
#[inline(always)]
fn take_permit<S: Service<Req>, F, Req>(kind: Pin<&mut Kind<S, F, Req>>) -> Permit {
    match kind.project_replace(Kind::Done) {
        KindReplace::Called { permit, .. } => permit,
        _ => unreachable!("{DONE}"),
    }
}

/// Settles a finished call's permit and hands it on (or gives it back).
#[inline(always)]
fn finish<Res, E, R, H, A>(
    result: Result<Res, E>,
    mut permit: Permit,
    actual: &R,
) -> Result<H::Response, A::Error>
where
    R: ActualCost<Res>,
    H: Hold<Res>,
    A: Answer<Res, E>,
{
    match result {
        Ok(response) => {
            permit.settle(actual.actual_cost(&response));
            Ok(H::hold(response, permit))
        }
        Err(error) => {
            permit.settle(None);
            permit.release();
            Err(A::inner_error(error))
        }
    }
}

/// Every state but a call in flight: driving the inner service to readiness, waiting,
/// answering a rejection.
#[inline(never)]
fn poll_slow<S, Req, R, H, A>(
    mut kind: Pin<&mut Kind<S, S::Future, Req>>,
    actual: &R,
    cx: &mut Context<'_>,
) -> Poll<Result<H::Response, A::Error>>
where
    S: Service<Req>,
    R: ActualCost<S::Response>,
    H: Hold<S::Response>,
    A: Answer<S::Response, S::Error>,
{
    loop {
        match kind.as_mut().project() {
            KindProj::Called { future, .. } => {
                let result = ready!(future.poll(cx));
                return Poll::Ready(finish::<_, _, R, H, A>(result, take_permit(kind), actual));
            }
            KindProj::Admitted {
                service,
                request,
                permit,
            } => {
                if let Err(error) = ready!(service.poll_ready(cx)) {
                    // The call never happened: its permit and reservation go back.
                    drop(permit.take());
                    return Poll::Ready(Err(A::inner_error(error)));
                }
                let permit = permit.take().expect(DONE).sent();
                let future = service.call(request.take().expect(DONE));
                kind.set(Kind::Called { future, permit });
            }
            KindProj::Waiting {
                service,
                request,
                wait,
            } => match ready!(wait.poll(cx)) {
                Ok(permit) => {
                    let next = Kind::Admitted {
                        service: service.take().expect(DONE),
                        request: request.take(),
                        permit: Some(permit),
                    };
                    kind.set(next);
                }
                Err(rejected) => {
                    return Poll::Ready(A::rejected(rejected).map(H::unheld));
                }
            },
            KindProj::Rejected { answer } => {
                return Poll::Ready(match answer.take().expect(DONE) {
                    Ok(rejected) => A::rejected(rejected).map(H::unheld),
                    Err(error) => Err(A::inner_error(error)),
                });
            }
            KindProj::Done => panic!("{DONE}"),
        }
    }
}

impl<S: Service<Req>, F, Req, R, H, A> fmt::Debug for ResponseFuture<S, F, Req, R, H, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Admitted { .. } => "admitted",
            Kind::Waiting { .. } => "waiting",
            Kind::Rejected { .. } => "rejected",
            Kind::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// A call's place in a compartment's queue; dropping it leaves the queue (and gives back a
/// grant that arrived meanwhile).
pub(crate) struct Wait {
    compartment: Arc<Compartment>,
    id: Option<u64>,
    since: Instant,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Wait {
    fn new(compartment: Arc<Compartment>, id: u64, max_wait: std::time::Duration) -> Self {
        let since = Instant::now();
        let deadline = since + max_wait;
        Self {
            compartment,
            id: Some(id),
            since,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Permit, Rejected>> {
        let id = self.id.expect(DONE);
        // A refill this waiter slept for is due: look again.
        let mut dispatch = Instant::now() >= self.sleep.deadline();
        loop {
            match self.compartment.poll_grant(id, cx, dispatch) {
                Grant::Admitted(permit) => return Poll::Ready(Ok(self.done(permit))),
                Grant::Refused(denied) => {
                    self.id = None;
                    return Poll::Ready(Err(self.compartment.reject(denied)));
                }
                Grant::Waiting(look) => {
                    // Sleep until the deadline, or until a refill lets the head in.
                    let wake = look.map_or(self.deadline, |t| t.min(self.deadline));
                    if wake != self.sleep.deadline() {
                        self.sleep.as_mut().reset(wake);
                    }
                }
            }
            ready!(self.sleep.as_mut().poll(cx));
            let now = Instant::now();
            if now >= self.deadline {
                self.id = None;
                self.compartment.common.metrics.waited(now - self.since);
                return Poll::Ready(
                    self.compartment
                        .leave(id)
                        .map_err(|denied| self.compartment.reject(denied)),
                );
            }
            // A refill is due: look again.
            dispatch = true;
        }
    }

    fn done(&mut self, permit: Permit) -> Permit {
        self.id = None;
        self.compartment.common.metrics.waited(self.since.elapsed());
        permit
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            drop(self.compartment.leave(id));
        }
    }
}

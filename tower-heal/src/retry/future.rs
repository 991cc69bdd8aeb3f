//! The response future: the first attempt, and the retries when it fails.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::replay::Replay;
use crate::retry::state::Shared;
use crate::{Class, ClassifyRetry, Failure, Hint};

/// What a call needs once it retries; allocated on the first failure only, so a call that
/// succeeds at once carries one null pointer.
struct Retrying<Request> {
    retries: u32,
    slept: Duration,
    previous: Duration,
    rng: fastrand::Rng,
    next: Option<Request>,
    /// Armed on the first back-off that is not zero: a zero back-off retries at once.
    sleep: Option<Pin<Box<Sleep>>>,
}

pin_project! {
    /// The response future of [`Retry`](crate::Retry).
    ///
    /// Dropping it cancels the call: a back-off in progress ends and no further attempt is
    /// made (a retry already taken from the budget stays spent).
    pub struct ResponseFuture<S, Req, C, G, R>
    where
        S: Service<<R as Replay<Req>>::Request>,
        R: Replay<Req>,
    {
        #[pin]
        state: State<S::Future>,
        shared: Arc<Shared<C, G, R>>,
        // A clone of the inner service, for the retries; `None` when the request may not be
        // retried.
        service: Option<S>,
        kept: Option<R::Kept>,
        deadline: Option<Instant>,
        // The gate called the request idempotent: a failure that may have reached the
        // server may be retried.
        idempotent: bool,
        retrying: Lazy<R::Request>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Waiting,
        Readying,
    }
}

impl<S, Req, C, G, R> ResponseFuture<S, Req, C, G, R>
where
    S: Service<R::Request>,
    R: Replay<Req>,
{
    pub(crate) fn new(
        future: S::Future,
        shared: Arc<Shared<C, G, R>>,
        service: Option<S>,
        kept: Option<R::Kept>,
        (deadline, idempotent): (Option<Instant>, bool),
    ) -> Self {
        Self {
            state: State::Called { future },
            shared,
            service,
            kept,
            deadline,
            idempotent,
            retrying: Lazy(None),
        }
    }
}

impl<S, Req, C, G, R> Future for ResponseFuture<S, Req, C, G, R>
where
    S: Service<R::Request>,
    R: Replay<Req>,
    C: ClassifyRetry<S::Response, S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The first attempt, and a retry's attempt: most calls end here.
        let this = self.as_mut().project();
        if let StateProj::Called { future } = this.state.project() {
            let result = ready!(future.poll(cx));
            let shared = &**this.shared;
            match shared.classifier.classify(&result) {
                None => {
                    shared.budget.success();
                    // Attempts are counted from the first failure on: a call that succeeds
                    // at once is the hot path, and request metrics count it already.
                    if this.retrying.0.is_some() {
                        shared.metrics.success();
                    }
                    return Poll::Ready(result);
                }
                Some(failure) => {
                    let decided = decide(
                        shared,
                        failure,
                        this.kept.as_mut().filter(|_| this.service.is_some()),
                        (*this.deadline, *this.idempotent),
                        &mut this.retrying.0,
                    );
                    let Ok(next) = decided else {
                        return Poll::Ready(result);
                    };
                    // The failed response is dropped before sleeping.
                    drop(result);
                    self.as_mut().project().state.set(next);
                }
            }
        }
        self.poll_retry(cx)
    }
}

impl<S, Req, C, G, R> ResponseFuture<S, Req, C, G, R>
where
    S: Service<R::Request>,
    R: Replay<Req>,
    C: ClassifyRetry<S::Response, S::Error>,
{
    /// Back-off, readiness and the retries' attempts.
    #[inline(never)]
    fn poll_retry(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Response, S::Error>> {
        loop {
            let this = self.as_mut().project();
            match this.state.project() {
                StateProj::Called { future } => {
                    let result = ready!(future.poll(cx));
                    let shared = &**this.shared;
                    let Some(failure) = shared.classifier.classify(&result) else {
                        shared.budget.success();
                        shared.metrics.success();
                        return Poll::Ready(result);
                    };
                    let decided = decide(
                        shared,
                        failure,
                        this.kept.as_mut().filter(|_| this.service.is_some()),
                        (*this.deadline, *this.idempotent),
                        &mut this.retrying.0,
                    );
                    let Ok(next) = decided else {
                        return Poll::Ready(result);
                    };
                    drop(result);
                    self.as_mut().project().state.set(next);
                }
                StateProj::Waiting => {
                    let sleep = this
                        .retrying
                        .0
                        .as_mut()
                        .and_then(|r| r.sleep.as_mut())
                        .expect("a waiting retry has its timer");
                    ready!(sleep.as_mut().poll(cx));
                    self.as_mut().project().state.set(State::Readying);
                }
                StateProj::Readying => {
                    let service = this
                        .service
                        .as_mut()
                        .expect("only a kept request is retried");
                    ready!(service.poll_ready(cx))?;
                    let mut request = this
                        .retrying
                        .0
                        .as_mut()
                        .and_then(|r| r.next.take())
                        .expect("a retry has its request");
                    this.shared.replay.before_send(&mut request);
                    let future = service.call(request);
                    self.as_mut().project().state.set(State::Called { future });
                }
            }
        }
    }
}

/// The retry state, allocated on the first failure. Its `Drop` tests for `None` inline, so a
/// call that succeeds at once does not call out to the state's drop glue.
struct Lazy<Request>(Option<Box<Retrying<Request>>>);

impl<Request> Drop for Lazy<Request> {
    #[inline]
    fn drop(&mut self) {
        if let Some(retrying) = self.0.take() {
            drop_retrying(retrying);
        }
    }
}

#[inline(never)]
#[cold]
fn drop_retrying<Request>(retrying: Box<Retrying<Request>>) {
    drop(retrying);
}

/// Decides whether a failed attempt is retried; on yes, the retry's request is ready, the
/// budget is spent and the back-off is armed, and the state to go on in is returned
/// (`Readying` at once for a zero back-off, which arms no timer).
#[inline(never)]
fn decide<C, G, R: Replay<Req>, Req, F>(
    shared: &Shared<C, G, R>,
    failure: Failure,
    kept: Option<&mut R::Kept>,
    (deadline, idempotent): (Option<Instant>, bool),
    retrying: &mut Option<Box<Retrying<R::Request>>>,
) -> Result<State<F>, ()> {
    shared.metrics.failure();
    let retries = retrying.as_ref().map_or(0, |r| r.retries);
    let attempt = retries + 1;
    let stop = |reason| {
        shared.stopped(&failure, attempt, reason);
        Err(())
    };
    let policy = shared.policies.of(failure.class);
    if policy.max_retries > 0 {
        // gRPC's throttle counts failures of retryable classes only.
        shared.budget.failure();
    }
    if retries >= policy.max_retries {
        return stop(if policy.max_retries == 0 {
            "its class is not retried"
        } else {
            "max_retries reached"
        });
    }
    let Some(kept) = kept else {
        return stop("the request may not be retried (not idempotent)");
    };
    if failure.maybe_sent && !idempotent {
        return stop("the request may have reached the server and is not idempotent");
    }
    let (rng, previous) = match retrying {
        Some(r) => (&mut r.rng, r.previous),
        None => {
            let rng = shared.rng();
            *retrying = Some(Box::new(Retrying {
                retries: 0,
                slept: Duration::ZERO,
                previous: policy.backoff.initial,
                rng,
                next: None,
                sleep: None,
            }));
            let r = retrying.as_mut().expect("just set");
            (&mut r.rng, r.previous)
        }
    };
    let delay = match failure.hint {
        Hint::Stop => return stop("the server asked not to retry"),
        Hint::After(delay) if delay > shared.max_retry_after => {
            return stop("the server's delay is beyond max_retry_after");
        }
        // A family rejection is waited out only up to `max_rejection_wait` (10 s by default):
        // a full bulkhead's second is waited out. A breaker's rejection (`circuit_open`) gets
        // here only when its class is configured to retry: by default it is returned at once,
        // so a fallback above can answer.
        Hint::After(delay)
            if (failure.class == Class::REJECTED || failure.class == Class::CIRCUIT_OPEN)
                && delay > shared.max_rejection_wait =>
        {
            return stop("the rejection's retry_after is beyond max_rejection_wait");
        }
        Hint::After(delay) => delay,
        Hint::None => policy.backoff.delay(retries, previous, rng),
    };
    let r = retrying.as_mut().expect("set above");
    if shared
        .max_total_delay
        .is_some_and(|max| r.slept + delay > max)
    {
        return stop("the back-off would overrun max_total_delay");
    }
    // The clock is read only for a back-off or a deadline: a zero back-off without a
    // deadline retries without one.
    let wake = (!delay.is_zero() || deadline.is_some()).then(|| Instant::now() + delay);
    if let (Some(deadline), Some(wake)) = (deadline, wake)
        && wake >= deadline
    {
        return stop("the back-off would reach the deadline");
    }
    let request = match shared.replay.replay(kept) {
        Ok(request) => request,
        Err(reason) => return stop(reason),
    };
    if !shared.budget.withdraw() {
        shared.refused(&failure, attempt);
        return Err(());
    }
    r.retries += 1;
    r.slept += delay;
    r.previous = delay;
    r.next = Some(request);
    shared.retrying(&failure, attempt, 1 + policy.max_retries, delay);
    match wake.filter(|_| !delay.is_zero()) {
        None => Ok(State::Readying),
        Some(wake) => {
            match r.sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(wake),
                None => r.sleep = Some(Box::pin(tokio::time::sleep_until(wake))),
            }
            Ok(State::Waiting)
        }
    }
}

impl<S, Req, C, G, R> fmt::Debug for ResponseFuture<S, Req, C, G, R>
where
    S: Service<R::Request>,
    R: Replay<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Waiting => "waiting",
            State::Readying => "readying",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field(
                "retries",
                &self.retrying.0.as_ref().map_or(0, |r| r.retries),
            )
            .finish_non_exhaustive()
    }
}

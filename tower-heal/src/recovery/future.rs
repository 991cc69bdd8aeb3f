//! The response future: records the outcome, or waits for a rebuild first.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_outcome::{Answer, Classify, Outcome, Rejected};
use tower_service::Service;

use super::health::{Health, Waiter};
use crate::fallback::OutcomeRecorder;

pin_project! {
    /// The response future of [`Recovery`](crate::Recovery).
    ///
    /// Dropping it cancels the call; a dropped call counts for nothing.
    pub struct ResponseFuture<S, Req, C, A>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, S::Future, Req, C>,
        health: Option<Arc<Health<S>>>,
        // The generation of the instance called.
        generation: u64,
        _answer: PhantomData<fn() -> A>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, Req, C> {
        Called { #[pin] future: F, classifier: C },
        // Boxed: only a call that meets a rebuild pays for the room, and the called future's
        // drop stays small.
        Rebuild { rebuild: Pin<Box<Rebuild<S, Req, C>>> },
    }
}

pin_project! {
    #[project = RebuildProj]
    enum Rebuild<S, Req, C> {
        Waiting { #[pin] sleep: Sleep, waiter: Waiter<S>, request: Option<Req>, classifier: Option<C> },
        Ready { service: S, request: Option<Req>, classifier: Option<C> },
        Rejected { rejected: Option<Rejected> },
    }
}

const POLLED_AFTER_DONE: &str = "recovery ResponseFuture polled after completion";

impl<S, Req, C, A> ResponseFuture<S, Req, C, A>
where
    S: Service<Req>,
{
    pub(crate) fn called(
        future: S::Future,
        generation: u64,
        health: Arc<Health<S>>,
        classifier: C,
    ) -> Self {
        Self {
            state: State::Called { future, classifier },
            health: Some(health),
            generation,
            _answer: PhantomData,
        }
    }

    pub(crate) fn waiting(request: Req, health: Arc<Health<S>>, classifier: C) -> Self {
        Self {
            state: State::Rebuild {
                rebuild: Box::pin(Rebuild::Waiting {
                    sleep: tokio::time::sleep(health.settings.max_rebuild_wait),
                    waiter: Waiter {
                        health: Arc::clone(&health),
                        slot: None,
                    },
                    request: Some(request),
                    classifier: Some(classifier),
                }),
            },
            health: Some(health),
            generation: 0,
            _answer: PhantomData,
        }
    }

    pub(crate) fn rejected(rejected: Rejected) -> Self {
        Self {
            state: State::Rebuild {
                rebuild: Box::pin(Rebuild::Rejected {
                    rejected: Some(rejected),
                }),
            },
            health: None,
            generation: 0,
            _answer: PhantomData,
        }
    }
}

impl<S, Req, C, A> Future for ResponseFuture<S, Req, C, A>
where
    S: Service<Req> + Clone + Send + 'static,
    C: for<'a> Classify<S::Response, Response<OutcomeRecorder<'a>> = S::Response>,
    A: Answer<S::Response, S::Error>,
{
    type Output = Result<S::Response, A::Error>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let StateProj::Called { future, classifier } = this.state.as_mut().project() {
                let result = ready!(future.poll(cx));
                let (result, outcome) = match result {
                    Ok(response) => {
                        let verdict = std::cell::Cell::new(Outcome::Ignore);
                        let response =
                            classifier.classify_response(response, OutcomeRecorder::new(&verdict));
                        (Ok(response), verdict.get())
                    }
                    Err(error) => {
                        let error = A::inner_error(error);
                        let outcome = classifier.classify_error(A::error_ref(&error));
                        (Err(error), outcome)
                    }
                };
                if let Some(health) = this.health.take() {
                    match outcome {
                        Outcome::Success => health.success(*this.generation),
                        Outcome::Failure => health.failure(*this.generation),
                        Outcome::Ignore => {}
                    }
                }
                return Poll::Ready(result);
            }
            if let Some(answer) = ready!(poll_rebuild::<S, Req, C, A>(
                this.state.as_mut(),
                this.health,
                this.generation,
                cx
            )) {
                return Poll::Ready(answer);
            }
        }
    }
}

/// Waiting for a rebuild, or rejected: out of line, so the healthy path stays small. Ready
/// with `None` once the call has been made (the state is then `Called`), or with the answer.
#[inline(never)]
#[allow(clippy::type_complexity)]
fn poll_rebuild<S, Req, C, A>(
    mut state: Pin<&mut State<S, S::Future, Req, C>>,
    health: &Option<Arc<Health<S>>>,
    generation: &mut u64,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<S::Response, A::Error>>>
where
    S: Service<Req> + Clone + Send + 'static,
    A: Answer<S::Response, S::Error>,
{
    let StateProj::Rebuild { rebuild } = state.as_mut().project() else {
        // Invariant: `poll` handles this state itself.
        return Poll::Ready(None);
    };
    let (future, classifier) = loop {
        match rebuild.as_mut().project() {
            RebuildProj::Waiting {
                sleep,
                waiter,
                request,
                classifier,
            } => {
                let health = health.as_ref().expect(POLLED_AFTER_DONE);
                if waiter.poll(cx).is_pending() {
                    ready!(sleep.poll(cx));
                    let rejected = health.rejection();
                    // Done waiting: the waiter's entry and the timer go now, not when the
                    // future is dropped.
                    rebuild.set(Rebuild::Rejected { rejected: None });
                    return Poll::Ready(Some(A::rejected(rejected)));
                }
                // Invariant: a rebuild layer stores its first instance when it layers it.
                let (service, current) = health
                    .current()
                    .expect("a rebuilding layer always has a current instance");
                *generation = current;
                let request = request.take();
                let classifier = classifier.take();
                rebuild.set(Rebuild::Ready {
                    service,
                    request,
                    classifier,
                });
            }
            RebuildProj::Ready {
                service,
                request,
                classifier,
            } => {
                if let Err(error) = ready!(service.poll_ready(cx)) {
                    return Poll::Ready(Some(Err(A::inner_error(error))));
                }
                let future = service.call(request.take().expect(POLLED_AFTER_DONE));
                let classifier = classifier.take().expect(POLLED_AFTER_DONE);
                break (future, classifier);
            }
            RebuildProj::Rejected { rejected } => {
                let rejected = rejected.take().expect(POLLED_AFTER_DONE);
                return Poll::Ready(Some(A::rejected(rejected)));
            }
        }
    };
    state.set(State::Called { future, classifier });
    Poll::Ready(None)
}

impl<S, Req, C, A> fmt::Debug for ResponseFuture<S, Req, C, A>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Rebuild { rebuild } => match **rebuild {
                Rebuild::Waiting { .. } => "waiting_for_rebuild",
                Rebuild::Ready { .. } => "ready",
                Rebuild::Rejected { .. } => "rejected",
            },
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

//! The response future: the primary, then (on failure) the fallback.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_outcome::{Answer, Classify};
use tower_service::Service;

use super::shared::{OutcomeRecorder, Shared};
use super::{Degradable, DegradationLevel, Trigger};

/// What a failed primary call came to, held while the fallback runs so it can be returned if
/// the fallback fails too.
type Held<F, Kept, A, E> =
    Result<<F as Service<Kept>>::Response, <A as Answer<<F as Service<Kept>>::Response, E>>::Error>;

pin_project! {
    /// The response future of [`Fallback`](crate::Fallback).
    ///
    /// Dropping it cancels the primary call, or the fallback call if one runs.
    pub struct ResponseFuture<P, F, Kept, K, C, A, E>
    where
        F: Service<Kept>,
        A: Answer<F::Response, E>,
    {
        #[pin]
        state: State<P, F, F::Future, Kept, Held<F, Kept, A, E>>,
        shared: Arc<Shared<F, K, C>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<P, F, FF, Kept, H> {
        Primary { #[pin] future: P, kept: Option<Kept> },
        Ready { fallback: F, kept: Option<Kept>, trigger: Trigger, held: Option<H> },
        Calling { #[pin] future: FF, trigger: Trigger, held: Option<H> },
    }
}

impl<P, F, Kept, K, C, A, E> ResponseFuture<P, F, Kept, K, C, A, E>
where
    F: Service<Kept>,
    A: Answer<F::Response, E>,
{
    pub(crate) fn new(future: P, kept: Kept, shared: Arc<Shared<F, K, C>>) -> Self {
        Self {
            state: State::Primary {
                future,
                kept: Some(kept),
            },
            shared,
        }
    }
}

const POLLED_AFTER_DONE: &str = "fallback ResponseFuture polled after completion";

impl<P, F, Kept, K, C, A, E, Res> Future for ResponseFuture<P, F, Kept, K, C, A, E>
where
    P: Future<Output = Result<Res, E>>,
    Res: Degradable,
    F: Service<Kept, Response = Res> + Clone,
    F::Error: fmt::Display,
    C: for<'a> Classify<Res, Response<OutcomeRecorder<'a>> = Res>,
    A: Answer<Res, E>,
{
    type Output = Result<Res, A::Error>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let StateProj::Primary { future, kept } = this.state.as_mut().project() {
            let shared = &**this.shared;
            // The happy path returns from inside the match, moving the response once.
            let (held, trigger) = match ready!(future.poll(cx)) {
                Ok(response) => match shared.judge_response(response) {
                    (response, None) => {
                        let level = response
                            .degraded()
                            .map_or(DegradationLevel::Full, |d| d.level());
                        shared.report(level);
                        return Poll::Ready(Ok(response));
                    }
                    (response, Some(trigger)) => (Ok(response), trigger),
                },
                Err(error) => {
                    let error = A::inner_error(error);
                    match shared.judge_error::<Res>(A::error_ref(&error)) {
                        None => {
                            shared.report(DegradationLevel::Full);
                            return Poll::Ready(Err(error));
                        }
                        Some(trigger) => (Err(error), trigger),
                    }
                }
            };
            let kept = kept.take();
            let fallback = shared.fallback.clone();
            this.state.set(State::Ready {
                fallback,
                kept,
                trigger,
                held: Some(held),
            });
        }
        poll_fallback::<P, F, Kept, K, C, A, E, Res>(this.state, this.shared, cx)
    }
}

/// The fallback's part of the future, out of line so the happy path stays small.
#[inline(never)]
#[allow(clippy::type_complexity)]
fn poll_fallback<P, F, Kept, K, C, A, E, Res>(
    mut state: Pin<&mut State<P, F, F::Future, Kept, Held<F, Kept, A, E>>>,
    shared: &Shared<F, K, C>,
    cx: &mut Context<'_>,
) -> Poll<Result<Res, A::Error>>
where
    Res: Degradable,
    F: Service<Kept, Response = Res>,
    F::Error: fmt::Display,
    C: for<'a> Classify<Res, Response<OutcomeRecorder<'a>> = Res>,
    A: Answer<Res, E>,
{
    loop {
        match state.as_mut().project() {
            // Invariant: `poll` leaves the primary state before it calls this.
            StateProj::Primary { .. } => unreachable!("the primary call is polled by `poll`"),
            StateProj::Ready {
                fallback,
                kept,
                trigger,
                held,
            } => {
                let trigger = *trigger;
                if let Err(error) = ready!(fallback.poll_ready(cx)) {
                    shared.unanswered(trigger, &error);
                    return Poll::Ready(held.take().expect(POLLED_AFTER_DONE));
                }
                let future = fallback.call(kept.take().expect(POLLED_AFTER_DONE));
                let held = held.take();
                state.set(State::Calling {
                    future,
                    trigger,
                    held,
                });
            }
            StateProj::Calling {
                future,
                trigger,
                held,
            } => {
                let trigger = *trigger;
                let result = ready!(future.poll(cx));
                let held = held.take().expect(POLLED_AFTER_DONE);
                return Poll::Ready(match result {
                    Ok(response) => {
                        let (mut response, failed) = shared.judge_response(response);
                        if failed.is_some() {
                            shared.unanswered(trigger, &"the fallback's answer is a failure too");
                            held
                        } else {
                            shared.answered(&mut response, trigger);
                            Ok(response)
                        }
                    }
                    Err(error) => {
                        shared.unanswered(trigger, &error);
                        held
                    }
                });
            }
        }
    }
}

impl<P, F, Kept, K, C, A, E> fmt::Debug for ResponseFuture<P, F, Kept, K, C, A, E>
where
    F: Service<Kept>,
    A: Answer<F::Response, E>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Primary { .. } => "primary",
            State::Ready { .. } => "fallback_ready",
            State::Calling { .. } => "fallback",
        };
        f.debug_struct("ResponseFuture")
            .field("component", &self.shared.component)
            .field("state", &state)
            .finish()
    }
}

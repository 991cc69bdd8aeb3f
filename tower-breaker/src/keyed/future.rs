//! The per-key response future: drives the inner service ready, calls it, classifies.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_outcome::{Answer, Classify};
use tower_service::Service;

use crate::call_event::{CallListener, NoCallListener};
use crate::future::{answer, finish};
use crate::refusal::Refused;
use crate::ticket::Ticket;

pin_project! {
    /// The response future of [`KeyedCircuitBreaker`]: waits for the inner service to be
    /// ready, calls it, classifies the result; or answers a rejection at once.
    pub struct KeyedResponseFuture<S, F, Req, C, A, L = NoCallListener> {
        #[pin]
        pub(super) kind: KeyedKind<S, F, Req, C, L>,
        pub(super) _answer: PhantomData<fn() -> A>,
    }
}

pin_project! {
    #[project = KeyedProj]
    pub(super) enum KeyedKind<S, F, Req, C, L> {
        Waiting { service: S, request: Option<Req>, ticket: Option<Ticket<C, L>> },
        Called { #[pin] future: F, ticket: Option<Ticket<C, L>>, start_ns: u64 },
        Rejected { refused: Option<Refused> },
    }
}

impl<S, Req, C, A, L> Future for KeyedResponseFuture<S, S::Future, Req, C, A, L>
where
    S: Service<Req>,
    C: Classify<S::Response> + Clone,
    L: CallListener,
    A: Answer<S::Response, S::Error>,
{
    type Output = Result<C::Response<Ticket<C, L>>, A::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        const DONE: &str = "KeyedResponseFuture polled after completion";
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KeyedProj::Waiting {
                    service,
                    request,
                    ticket,
                } => {
                    if let Err(error) = ready!(service.poll_ready(cx)) {
                        let ticket = ticket.take().expect(DONE);
                        // Settled as granted: it counts if the breaker is still in that state.
                        return Poll::Ready(finish::<C, A, L, S::Response, S::Error>(
                            Err(error),
                            ticket,
                            0,
                        ));
                    }
                    // The admission holds only for the state it was granted in: the breaker
                    // may have moved on while the inner service was getting ready.
                    let ticket = match ticket.take().expect(DONE).revalidate() {
                        Ok(ticket) => ticket,
                        Err(refused) => {
                            return Poll::Ready(answer::<C, A, L, S::Response, S::Error>(refused));
                        }
                    };
                    let start_ns = ticket.start();
                    let future = service.call(request.take().expect(DONE));
                    kind.set(KeyedKind::Called {
                        future,
                        ticket: Some(ticket),
                        start_ns,
                    });
                }
                KeyedProj::Called {
                    future,
                    ticket,
                    start_ns,
                } => {
                    let result = ready!(future.poll(cx));
                    let ticket = ticket.take().expect(DONE);
                    return Poll::Ready(finish::<C, A, L, S::Response, S::Error>(
                        result, ticket, *start_ns,
                    ));
                }
                KeyedProj::Rejected { refused } => {
                    let refused = refused.take().expect(DONE);
                    return Poll::Ready(answer::<C, A, L, S::Response, S::Error>(refused));
                }
            }
        }
    }
}

impl<S, F, Req, C, A, L> fmt::Debug for KeyedResponseFuture<S, F, Req, C, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            KeyedKind::Waiting { .. } => "waiting",
            KeyedKind::Called { .. } => "called",
            KeyedKind::Rejected { .. } => "rejected",
        };
        f.debug_struct("KeyedResponseFuture")
            .field("state", &state)
            .finish()
    }
}

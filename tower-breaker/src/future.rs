//! Response futures.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_outcome::{Answer, Classify, Settle};

use crate::call_event::{CallListener, NoCallListener};
use crate::refusal::Refused;
pub use crate::ticket::Ticket;

pin_project! {
    /// The response future of [`CircuitBreaker`](crate::CircuitBreaker): the inner call with
    /// its [`Ticket`], or a rejection answered at once.
    ///
    /// Dropping it before it completes cancels the call: the ticket frees its probe slot and
    /// records nothing.
    pub struct ResponseFuture<F, C, A, L = NoCallListener> {
        #[pin]
        kind: Kind<F, C, L>,
        _answer: PhantomData<fn() -> A>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C, L> {
        Called { #[pin] future: F, ticket: Option<Ticket<C, L>>, start_ns: u64 },
        Rejected { refused: Option<Refused> },
    }
}

impl<F, C, A, L> ResponseFuture<F, C, A, L> {
    /// The inner call, with its ticket and its start ([`Ticket::start`]).
    pub(crate) const fn called(future: F, ticket: Ticket<C, L>, start_ns: u64) -> Self {
        Self {
            kind: Kind::Called {
                future,
                ticket: Some(ticket),
                start_ns,
            },
            _answer: PhantomData,
        }
    }

    pub(crate) const fn rejected(refused: Refused) -> Self {
        Self {
            kind: Kind::Rejected {
                refused: Some(refused),
            },
            _answer: PhantomData,
        }
    }
}

/// Classifies a finished call started at `start_ns` ([`Ticket::start`]), settling (or handing
/// on) its ticket.
pub(crate) fn finish<C, A, L, Res, E>(
    result: Result<Res, E>,
    mut ticket: Ticket<C, L>,
    start_ns: u64,
) -> Result<C::Response<Ticket<C, L>>, A::Error>
where
    C: Classify<Res> + Clone,
    L: CallListener,
    A: Answer<Res, E>,
{
    ticket.stop(start_ns);
    match result {
        Ok(response) => {
            let classifier = ticket.classifier().clone();
            Ok(classifier.classify_response(response, ticket))
        }
        Err(error) => {
            let error = A::inner_error(error);
            let outcome = ticket.classifier().classify_error(A::error_ref(&error));
            ticket.settle(outcome);
            Err(error)
        }
    }
}

/// Answers a rejection in mode `A`.
pub(crate) fn answer<C, A, L, Res, E>(
    refused: Refused,
) -> Result<C::Response<Ticket<C, L>>, A::Error>
where
    C: Classify<Res>,
    L: CallListener,
    A: Answer<Res, E>,
{
    A::rejected(refused.into_rejected()).map(C::unclassified)
}

impl<F, C, A, L, Res, E> Future for ResponseFuture<F, C, A, L>
where
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res> + Clone,
    L: CallListener,
    A: Answer<Res, E>,
{
    type Output = Result<C::Response<Ticket<C, L>>, A::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                ticket,
                start_ns,
            } => {
                let result = ready!(future.poll(cx));
                let ticket = ticket
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(finish::<C, A, L, Res, E>(result, ticket, *start_ns))
            }
            KindProj::Rejected { refused } => {
                let refused = refused
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(answer::<C, A, L, Res, E>(refused))
            }
        }
    }
}

impl<F, C, A, L> fmt::Debug for ResponseFuture<F, C, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

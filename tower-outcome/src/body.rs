//! The end-of-stream body wrapper.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::{Outcome, Settle};

/// The second phase of a two-phase classifier: decides from the trailers, if any.
pub trait ClassifyEos {
    /// The outcome of a stream that ended with `trailers` (`None`: ended without trailers).
    fn classify_eos(&self, trailers: Option<&HeaderMap>) -> Outcome;
}

pin_project! {
    /// A response body that settles a call's obligation when the stream ends.
    ///
    /// Trailers are classified by `C`; an error from the body is a [`Outcome::Failure`]; a body
    /// dropped before its end drops the obligation unsettled (a cancelled call). A body made with
    /// [`settled`](EosBody::settled) carries no obligation and only forwards frames.
    #[derive(Debug)]
    pub struct EosBody<B, C, G> {
        #[pin]
        inner: B,
        pending: Option<(C, G)>,
    }
}

impl<B, C, G> EosBody<B, C, G> {
    /// Wraps `inner`; `guard` is settled at the end of the stream as `classifier` says.
    pub const fn new(inner: B, classifier: C, guard: G) -> Self {
        Self {
            inner,
            pending: Some((classifier, guard)),
        }
    }

    /// Wraps `inner` with nothing left to settle.
    pub const fn settled(inner: B) -> Self {
        Self {
            inner,
            pending: None,
        }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B, C, G> Body for EosBody<B, C, G>
where
    B: Body,
    C: ClassifyEos,
    G: Settle,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let outcome = match &frame {
            Some(Ok(frame)) => frame.trailers_ref().and_then(|trailers| {
                this.pending
                    .as_ref()
                    .map(|(c, _)| c.classify_eos(Some(trailers)))
            }),
            Some(Err(_)) => Some(Outcome::Failure),
            None => this.pending.as_ref().map(|(c, _)| c.classify_eos(None)),
        };
        if let Some(outcome) = outcome
            && let Some((_, guard)) = this.pending.take()
        {
            guard.settle(outcome);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Default, C, G> Default for EosBody<B, C, G> {
    fn default() -> Self {
        Self::settled(B::default())
    }
}

//! The end-of-stream body wrapper.
//!
//! Invariant: the obligation is settled at most once, at the first moment the stream is known
//! to have ended, whoever drives the body. hyper (h1 dispatch, h2 `PipeToSendStream`) stops
//! polling as soon as [`Body::is_end_stream`] is true, and h1 stops once a body of known length
//! has sent its last byte; it then drops the body without polling for `None`. So the end is
//! recognised on a trailers frame, an error, `None`, a data frame after which the body reports
//! `is_end_stream()`, and a drop after a body of known length has sent all its bytes.

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
    /// The stream has ended, and the obligation is settled, on the first of:
    ///
    /// - a trailers frame (classified by `C`);
    /// - a data frame after which the body reports [`is_end_stream`](Body::is_end_stream)
    ///   (classified by `C` as a stream without trailers): hyper stops polling there, so no
    ///   `None` would ever come;
    /// - `None` (classified by `C` as a stream without trailers);
    /// - an error from the body ([`Outcome::Failure`]);
    /// - a drop after a body of known length (an exact [`size_hint`](Body::size_hint) when
    ///   first polled) has sent all its bytes, as hyper's HTTP/1 server does once the
    ///   `content-length` is written (classified as a stream without trailers). Until the drop,
    ///   trailers may still come and decide.
    ///
    /// A body dropped before its end drops the obligation unsettled (a cancelled call). A body
    /// made with [`settled`](EosBody::settled) carries no obligation and only forwards frames.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use bytes::Bytes;
    /// use http_body::Body;
    /// use http_body_util::{BodyExt, Full};
    /// use tower_outcome::{ClassifyEos, EosBody, Outcome, Settle};
    ///
    /// struct NoTrailersFails;
    /// impl ClassifyEos for NoTrailersFails {
    ///     fn classify_eos(&self, trailers: Option<&http::HeaderMap>) -> Outcome {
    ///         if trailers.is_some() { Outcome::Success } else { Outcome::Failure }
    ///     }
    /// }
    /// #[derive(Clone, Default)]
    /// struct Seen(Arc<Mutex<Option<Outcome>>>);
    /// impl Settle for Seen {
    ///     fn settle(self, outcome: Outcome) { *self.0.lock().unwrap() = Some(outcome); }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let seen = Seen::default();
    /// let mut body = EosBody::new(Full::new(Bytes::from("hi")), NoTrailersFails, seen.clone());
    /// // Read the one data frame, then stop as hyper does: the stream is at its end.
    /// body.frame().await.unwrap().unwrap();
    /// assert!(body.is_end_stream());
    /// drop(body);
    /// assert_eq!(*seen.0.lock().unwrap(), Some(Outcome::Failure));
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct EosBody<B, C, G> {
        #[pin]
        inner: B,
        classifier: Option<C>,
        guard: Armed<G>,
        // Data bytes left of a body of known length; `None` before the first poll.
        left: Option<Left>,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Left {
    Bytes(u64),
    Unknown,
}

/// The obligation, and what its drop means once a known length has been fully sent.
///
/// `settle` is `<G as Settle>::settle`, captured where the bound is known, so that neither the
/// body nor this guard needs a `Settle` bound on its definition (which `Drop` would require).
#[derive(Debug)]
struct Armed<G> {
    guard: Option<G>,
    on_drop: Option<(SettleFn<G>, Outcome)>,
}

type SettleFn<G> = fn(G, Outcome);

impl<G> Armed<G> {
    const fn new(guard: Option<G>) -> Self {
        Self {
            guard,
            on_drop: None,
        }
    }
}

impl<G> Drop for Armed<G> {
    fn drop(&mut self) {
        if let (Some(guard), Some((settle, outcome))) = (self.guard.take(), self.on_drop.take()) {
            settle(guard, outcome);
        }
    }
}

impl<B, C, G> EosBody<B, C, G> {
    /// Wraps `inner`; `guard` is settled at the end of the stream as `classifier` says.
    pub const fn new(inner: B, classifier: C, guard: G) -> Self {
        Self {
            inner,
            classifier: Some(classifier),
            guard: Armed::new(Some(guard)),
            left: None,
        }
    }

    /// Wraps `inner` with nothing left to settle.
    pub const fn settled(inner: B) -> Self {
        Self {
            inner,
            classifier: None,
            guard: Armed::new(None),
            left: None,
        }
    }

    /// The wrapped body. An obligation not yet settled is dropped (a cancelled call), unless
    /// a body of known length had sent all its bytes (then it is settled as at the end).
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
        let mut this = self.project();
        if this.guard.guard.is_none() {
            return this.inner.poll_frame(cx);
        }
        // hyper reads the length before the first poll; so do we.
        let left = *this.left.get_or_insert_with(|| {
            this.inner
                .size_hint()
                .exact()
                .map_or(Left::Unknown, Left::Bytes)
        });
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let Some(classifier) = this.classifier.as_ref() else {
            return Poll::Ready(frame);
        };
        let outcome = match &frame {
            Some(Ok(frame)) => match frame.data_ref() {
                Some(data) => {
                    let mut all_sent = false;
                    if let Left::Bytes(n) = left {
                        let sent = u64::try_from(bytes::Buf::remaining(data)).unwrap_or(u64::MAX);
                        let n = n.saturating_sub(sent);
                        *this.left = Some(Left::Bytes(n));
                        all_sent = n == 0;
                    }
                    if this.inner.is_end_stream() {
                        Some(classifier.classify_eos(None))
                    } else {
                        // Trailers may still come; a drop from here on is the end.
                        if all_sent && this.guard.on_drop.is_none() {
                            this.guard.on_drop = Some((G::settle, classifier.classify_eos(None)));
                        }
                        None
                    }
                }
                None => frame
                    .trailers_ref()
                    .map(|t| classifier.classify_eos(Some(t))),
            },
            Some(Err(_)) => Some(Outcome::Failure),
            None => Some(classifier.classify_eos(None)),
        };
        if let Some(outcome) = outcome
            && let Some(guard) = this.guard.guard.take()
        {
            this.guard.on_drop = None;
            *this.classifier = None;
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

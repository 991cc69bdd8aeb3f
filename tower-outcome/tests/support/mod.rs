//! Bodies and obligations shared by the behaviour tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tower_outcome::{Outcome, Settle};

/// What happened to an obligation: every settle, and whether it was dropped unsettled.
#[derive(Clone, Debug, Default)]
pub struct Seen(Arc<Mutex<(Vec<Outcome>, bool)>>);

impl Seen {
    pub fn guard(&self) -> Spy {
        Spy {
            seen: self.clone(),
            settled: false,
        }
    }
    /// The outcomes settled so far.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.0.lock().unwrap().0.clone()
    }
    /// The one outcome settled, `None` if none was; panics on a double settle.
    pub fn outcome(&self) -> Option<Outcome> {
        let outcomes = self.outcomes();
        assert!(outcomes.len() <= 1, "settled twice: {outcomes:?}");
        outcomes.first().copied()
    }
    /// Dropped without being settled (a cancelled call).
    pub fn cancelled(&self) -> bool {
        self.0.lock().unwrap().1
    }
}

/// An obligation that records into a [`Seen`].
#[derive(Debug)]
pub struct Spy {
    seen: Seen,
    settled: bool,
}

impl Settle for Spy {
    fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        self.seen.0.lock().unwrap().0.push(outcome);
    }
}

impl Drop for Spy {
    fn drop(&mut self) {
        if !self.settled {
            self.seen.0.lock().unwrap().1 = true;
        }
    }
}

/// A scripted body: its frames, whether it reports its end, its length if known, and an
/// optional `Pending` before every frame (to cancel at every await).
#[derive(Debug, Default)]
pub struct Script {
    pub frames: VecDeque<Result<Frame<Bytes>, &'static str>>,
    /// `is_end_stream()` is true once every frame is out (hyper then stops polling).
    pub reports_end: bool,
    /// An exact `size_hint` (the data bytes left), as a body of known length reports it.
    pub known_length: bool,
    pub pending_first: bool,
    pending_next: bool,
}

impl Script {
    pub fn data(chunks: &[&'static str]) -> Self {
        Self {
            frames: chunks
                .iter()
                .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
                .collect(),
            ..Self::default()
        }
    }
    pub fn trailers(mut self, pairs: &[(&'static str, &str)]) -> Self {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                *name,
                http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        self.frames.push_back(Ok(Frame::trailers(map)));
        self
    }
    pub fn error(mut self) -> Self {
        self.frames.push_back(Err("broken"));
        self
    }
    pub fn reporting_end(mut self) -> Self {
        self.reports_end = true;
        self
    }
    pub fn of_known_length(mut self) -> Self {
        self.known_length = true;
        self
    }
    pub fn pending_between(mut self) -> Self {
        self.pending_first = true;
        self.pending_next = true;
        self
    }
    fn data_left(&self) -> u64 {
        self.frames
            .iter()
            .filter_map(|f| f.as_ref().ok().and_then(Frame::data_ref))
            .map(|d| d.len() as u64)
            .sum()
    }
}

impl Body for Script {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
        if self.pending_first && self.pending_next {
            self.pending_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pending_next = true;
        Poll::Ready(self.frames.pop_front())
    }

    fn is_end_stream(&self) -> bool {
        self.reports_end && self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.known_length {
            SizeHint::with_exact(self.data_left())
        } else {
            SizeHint::default()
        }
    }
}

/// Drives a response body as hyper's servers do: not at all if it is already at its end;
/// otherwise frame by frame until trailers, an error, `None` or `is_end_stream()` after a
/// data frame, or (HTTP/1 with a known length) until all its bytes are written; then drops it.
pub async fn serve_like_hyper<B: Body + Unpin>(mut body: B, http1: bool) {
    if body.is_end_stream() {
        return;
    }
    let mut left = body.size_hint().exact().filter(|_| http1);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return };
        match frame.into_data() {
            Ok(data) => {
                if let Some(n) = left.as_mut() {
                    *n = n.saturating_sub(bytes::Buf::remaining(&data) as u64);
                    if *n == 0 {
                        return;
                    }
                }
                if body.is_end_stream() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Drives a response body as a client collecting it does: to `None`.
pub async fn collect<B: Body + Unpin>(body: B) {
    let _ = body.collect().await;
}

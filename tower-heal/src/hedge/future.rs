//! The response future: the first attempt, and its hedged copies once it is slow.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::ClassifyRetry;
use crate::hedge::state::HedgeShared;
use crate::replay::Replay;

pin_project! {
    /// The response future of [`Hedge`](crate::Hedge).
    ///
    /// The first good answer wins; the other attempts are dropped (cancelled) with it.
    /// Dropping this future cancels them all.
    pub struct HedgeFuture<S, Req, C, G, R>
    where
        S: Service<<R as Replay<Req>>::Request>,
        R: Replay<Req>,
    {
        #[pin]
        primary: Primary<S::Future>,
        shared: Arc<HedgeShared<C, G, R>>,
        service: Option<S>,
        kept: Option<R::Kept>,
        // Allocated only once the first attempt is slow.
        slow: Option<Box<Slow<S::Future, S::Response, S::Error>>>,
    }
}

pin_project! {
    #[project = PrimaryProj]
    enum Primary<F> {
        Running { #[pin] future: F },
        Done,
    }
}

struct Slow<F, Res, E> {
    started: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer fired; a copy is due as soon as the service is ready.
    due: bool,
    sent: u32,
    hedges: Vec<Pin<Box<F>>>,
    failed: Option<Result<Res, E>>,
}

impl<S, Req, C, G, R> HedgeFuture<S, Req, C, G, R>
where
    S: Service<R::Request>,
    R: Replay<Req>,
{
    pub(crate) fn new(
        future: S::Future,
        shared: Arc<HedgeShared<C, G, R>>,
        service: Option<S>,
        kept: Option<R::Kept>,
    ) -> Self {
        Self {
            primary: Primary::Running { future },
            shared,
            service,
            kept,
            slow: None,
        }
    }
}

impl<S, Req, C, G, R> Future for HedgeFuture<S, Req, C, G, R>
where
    S: Service<R::Request>,
    R: Replay<Req>,
    C: ClassifyRetry<S::Response, S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.as_mut().project();
        let first = this.slow.is_none();
        if first
            && let PrimaryProj::Running { future } = this.primary.project()
            && let Poll::Ready(result) = future.poll(cx)
        {
            // Answered on its first poll: nothing was hedged, nothing timed.
            return Poll::Ready(result);
        }
        self.poll_slow(cx, first)
    }
}

impl<S, Req, C, G, R> HedgeFuture<S, Req, C, G, R>
where
    S: Service<R::Request>,
    R: Replay<Req>,
    C: ClassifyRetry<S::Response, S::Error>,
{
    #[inline(never)]
    fn poll_slow(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut primary_polled: bool,
    ) -> Poll<Result<S::Response, S::Error>> {
        let mut this = self.project();
        let shared = &**this.shared;
        let slow = this.slow.get_or_insert_with(|| {
            Box::new(Slow {
                started: Instant::now(),
                timer: None,
                due: false,
                sent: 0,
                hedges: Vec::new(),
                failed: None,
            })
        });
        loop {
            if let PrimaryProj::Running { future } = this.primary.as_mut().project() {
                let polled = if std::mem::take(&mut primary_polled) {
                    Poll::Pending
                } else {
                    future.poll(cx)
                };
                if let Poll::Ready(result) = polled {
                    this.primary.set(Primary::Done);
                    if shared.classifier.classify(&result).is_none() {
                        shared.record(slow.started.elapsed());
                        return Poll::Ready(result);
                    }
                    slow.failed = Some(result);
                }
            }
            let mut i = 0;
            while i < slow.hedges.len() {
                if let Poll::Ready(result) = slow.hedges[i].as_mut().poll(cx) {
                    drop(slow.hedges.swap_remove(i));
                    if shared.classifier.classify(&result).is_none() {
                        shared.metrics.won();
                        shared.record(slow.started.elapsed());
                        tracing::debug!(hedge = %shared.name, "a hedged copy answered first");
                        // The primary and the other copies are dropped with this future.
                        return Poll::Ready(result);
                    }
                    slow.failed = Some(result);
                } else {
                    i += 1;
                }
            }
            let running = matches!(*this.primary, Primary::Running { .. });
            if !running && slow.hedges.is_empty() {
                // Every attempt answered, none well: the last bad answer.
                return Poll::Ready(slow.failed.take().expect("an attempt answered"));
            }
            if slow.sent >= shared.max_hedges || this.kept.is_none() {
                return Poll::Pending;
            }
            let Some(service) = this.service.as_mut() else {
                return Poll::Pending;
            };
            if !slow.due {
                let delay = shared.delay();
                let timer = slow.timer.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until(slow.started + delay))
                });
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                slow.due = true;
            }
            // The budget is charged only for a copy that is sent: after the service is
            // ready and the request could be replayed.
            match service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    slow.sent = shared.max_hedges;
                    *this.service = None;
                    continue;
                }
                Poll::Ready(Ok(())) => {}
            }
            let kept = this.kept.as_mut().expect("checked above");
            let mut request = match shared.replay.replay(kept) {
                Ok(request) => request,
                Err(reason) => {
                    tracing::debug!(hedge = %shared.name, "not hedged: {reason}");
                    slow.sent = shared.max_hedges;
                    // Releases what the readiness reserved.
                    *this.service = None;
                    continue;
                }
            };
            if !shared.budget.withdraw() {
                shared.metrics.refused();
                tracing::warn!(hedge = %shared.name, "not hedged: the retry budget is exhausted");
                slow.sent = shared.max_hedges;
                *this.service = None;
                continue;
            }
            slow.sent += 1;
            slow.due = false;
            let waited = slow.started.elapsed();
            // The next copy waits one more delay.
            if let Some(timer) = slow.timer.as_mut() {
                timer.as_mut().reset(Instant::now() + shared.delay());
            }
            shared.metrics.sent();
            tracing::info!(
                hedge = %shared.name,
                "no answer after {} ms; sending copy {}/{}",
                waited.as_millis(),
                slow.sent,
                shared.max_hedges
            );
            shared.replay.before_send(&mut request);
            let service = this.service.as_mut().expect("ready above");
            slow.hedges.push(Box::pin(service.call(request)));
        }
    }
}

impl<S, Req, C, G, R> fmt::Debug for HedgeFuture<S, Req, C, G, R>
where
    S: Service<R::Request>,
    R: Replay<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeFuture")
            .field("hedges_sent", &self.slow.as_ref().map_or(0, |s| s.sent))
            .finish_non_exhaustive()
    }
}

//! The ticket: the obligation an admitted call carries until it is settled or dropped.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_outcome::Outcome;

use crate::call_event::{CallEvent, CallListener};
use crate::machine::Core;
use crate::refusal::Refused;

/// The obligation of a call the breaker admitted: it records the call's outcome when
/// [settled](tower_outcome::Settle), or, dropped unsettled (the call was cancelled), frees its
/// half-open probe slot and records nothing.
///
/// It lives in the response future, or in the response body when the classifier waits for the
/// end of the stream.
pub struct Ticket<C, L> {
    core: Arc<Core<C, L>>,
    /// `generation (32 bits) | probe (1) | slow (1) | stopped (1)`.
    meta: u64,
    /// When the call started, in nanoseconds on the layer's clock (never 0: the clock starts a
    /// day before the layer); 0 while the call is not being timed. With a call listener, once
    /// the clock is stopped (`stopped` set): the call's duration.
    start_ns: u64,
}

const PROBE_BIT: u64 = 1 << 32;
const SLOW_BIT: u64 = 1 << 33;
/// Only with a call listener: the clock was stopped and `start_ns` holds the duration.
const STOPPED_BIT: u64 = 1 << 34;

impl<C, L> Drop for Ticket<C, L> {
    fn drop(&mut self) {
        if self.meta & PROBE_BIT != 0 {
            self.core.release_probe(self.generation());
        }
    }
}

impl<C, L> Ticket<C, L> {
    pub(crate) fn new(core: Arc<Core<C, L>>, generation: u32, probe: bool) -> Self {
        Self {
            core,
            meta: u64::from(generation) | if probe { PROBE_BIT } else { 0 },
            start_ns: 0,
        }
    }

    pub(crate) const fn generation(&self) -> u32 {
        self.meta as u32
    }

    /// This ticket if its admission still holds, that is if the breaker has not changed
    /// generation since it was granted (opened, forced open, re-opened from half-open, reset);
    /// otherwise the call is admitted again in the state the breaker is in now, or refused.
    #[inline]
    pub(crate) fn revalidate(self) -> Result<Self, Refused>
    where
        L: CallListener,
    {
        if self.core.load().generation() == self.generation() {
            Ok(self)
        } else {
            self.admit_again()
        }
    }

    #[cold]
    #[inline(never)]
    fn admit_again(self) -> Result<Self, Refused>
    where
        L: CallListener,
    {
        let core = Arc::clone(&self.core);
        // A stale probe's slot went with its generation: dropping the ticket frees nothing.
        drop(self);
        core.admit_again()
            .map_err(|refusal| core.rejection(refusal))
    }

    /// Starts the call's clock, when a slow-call rule or a call listener needs it.
    #[inline]
    pub(crate) fn start(&mut self)
    where
        L: CallListener,
    {
        if L::ENABLED || self.core.slow_ns != 0 {
            self.start_clock();
        }
    }

    // Out of line: the clock read stays off the code of breakers that time nothing.
    #[inline(never)]
    fn start_clock(&mut self) {
        self.start_ns = self.core.common.now_ns();
    }

    /// Stops the call's clock: the call's duration runs to its response (the head, when the
    /// body is streamed on), not to the end of a stream that may rightly last for hours.
    #[inline]
    pub(crate) fn stop(&mut self)
    where
        L: CallListener,
    {
        if self.start_ns != 0 && !self.stopped() {
            self.stop_clock();
        }
    }

    #[inline(never)]
    fn stop_clock(&mut self)
    where
        L: CallListener,
    {
        if self.took_long() {
            self.meta |= SLOW_BIT;
        }
        if L::ENABLED {
            // Keep the duration for the listener.
            self.start_ns = self.core.common.now_ns().saturating_sub(self.start_ns);
            self.meta |= STOPPED_BIT;
        } else {
            self.start_ns = 0;
        }
    }

    /// Whether the clock was stopped with the duration kept (never without a call listener).
    #[inline]
    fn stopped(&self) -> bool
    where
        L: CallListener,
    {
        L::ENABLED && self.meta & STOPPED_BIT != 0
    }

    fn took_long(&self) -> bool
    where
        L: CallListener,
    {
        // With a listener, calls are timed without a slow-call rule: none of them is slow then.
        (!L::ENABLED || self.core.slow_ns != 0)
            && self.core.common.now_ns().saturating_sub(self.start_ns) >= self.core.slow_ns
    }

    /// Whether the call was slow: when it stopped, or now if its clock still runs.
    #[inline(never)]
    fn slow(&self) -> bool
    where
        L: CallListener,
    {
        self.meta & SLOW_BIT != 0 || (self.start_ns != 0 && !self.stopped() && self.took_long())
    }

    /// The call's duration so far: to its stop (the response's head), or to now.
    fn duration(&self) -> Option<Duration>
    where
        L: CallListener,
    {
        if self.stopped() {
            Some(Duration::from_nanos(self.start_ns))
        } else if self.start_ns != 0 {
            let now = self.core.common.now_ns();
            Some(Duration::from_nanos(now.saturating_sub(self.start_ns)))
        } else {
            None
        }
    }

    pub(crate) fn classifier(&self) -> &C {
        &self.core.common.classifier
    }
}

impl<C, L: CallListener> tower_outcome::Settle for Ticket<C, L> {
    // Always inline, as it was before the listener branch (folded away without one) made it
    // look bigger to the inliner.
    #[inline(always)]
    fn settle(mut self, outcome: Outcome) {
        let probe = self.meta & PROBE_BIT != 0;
        if L::ENABLED {
            // Out of line: without a listener (the constant is false) this is the plain
            // recording below, unchanged.
            self.settle_and_report(probe, outcome);
        } else {
            self.core
                .record(self.generation(), probe, || self.slow(), outcome);
        }
        // Settled: the slot was released (or the breaker moved on) by `record`.
        self.meta &= !PROBE_BIT;
    }
}

impl<C, L: CallListener> Ticket<C, L> {
    /// Records the outcome, then tells the call listener.
    #[inline(never)]
    fn settle_and_report(&self, probe: bool, outcome: Outcome) {
        let duration = self.duration();
        self.core
            .record(self.generation(), probe, || self.slow(), outcome);
        let common = &self.core.common;
        common.call_listener.on_call(&CallEvent {
            name: &common.name,
            key: self.core.key.as_deref(),
            outcome: outcome.into(),
            duration,
        });
    }
}

impl<C, L> fmt::Debug for Ticket<C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("breaker", &self.core.common.name)
            .field("generation", &self.generation())
            .field("probe", &(self.meta & PROBE_BIT != 0))
            .finish_non_exhaustive()
    }
}

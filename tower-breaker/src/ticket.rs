//! The ticket: the obligation an admitted call carries until it is settled or dropped.

use std::fmt;
use std::sync::Arc;

use tower_outcome::Outcome;

use crate::machine::Core;
use crate::refusal::Refused;

/// The obligation of a call the breaker admitted: it records the call's outcome when
/// [settled](tower_outcome::Settle), or, dropped unsettled (the call was cancelled), frees its
/// half-open probe slot and records nothing.
///
/// It lives in the response future, or in the response body when the classifier waits for the
/// end of the stream.
pub struct Ticket<C> {
    core: Arc<Core<C>>,
    /// `generation (32 bits) | probe (1) | slow (1)`: one word, so the ticket moves as two
    /// machine words, in registers. (The start of a timed call is kept beside the ticket, in
    /// the response future: a third word made the ticket travel through the stack and be
    /// copied with wider loads than the stores that wrote it, a store-forwarding stall that
    /// doubled the cost of a call.)
    meta: u64,
}

const PROBE_BIT: u64 = 1 << 32;
const SLOW_BIT: u64 = 1 << 33;

impl<C> Drop for Ticket<C> {
    fn drop(&mut self) {
        if self.meta & PROBE_BIT != 0 {
            self.core.release_probe(self.generation());
        }
    }
}

impl<C> Ticket<C> {
    pub(crate) fn new(core: Arc<Core<C>>, generation: u32, probe: bool) -> Self {
        Self {
            core,
            meta: u64::from(generation) | if probe { PROBE_BIT } else { 0 },
        }
    }

    pub(crate) const fn generation(&self) -> u32 {
        self.meta as u32
    }

    /// This ticket if its admission still holds, that is if the breaker has not changed
    /// generation since it was granted (opened, forced open, re-opened from half-open, reset);
    /// otherwise the call is admitted again in the state the breaker is in now, or refused.
    #[inline]
    pub(crate) fn revalidate(self) -> Result<Self, Refused> {
        if self.core.load().generation() == self.generation() {
            Ok(self)
        } else {
            self.admit_again()
        }
    }

    #[cold]
    #[inline(never)]
    fn admit_again(self) -> Result<Self, Refused> {
        let core = Arc::clone(&self.core);
        // A stale probe's slot went with its generation: dropping the ticket frees nothing.
        drop(self);
        core.admit_again()
            .map_err(|refusal| core.rejection(refusal))
    }

    /// Starts the call's clock when a slow-call rule needs it: the start, in nanoseconds on
    /// the layer's clock (never 0: that clock starts a day before the layer), or 0 when the
    /// call is not timed. Kept by the caller and handed to [`stop`](Self::stop).
    #[inline]
    pub(crate) fn start(&self) -> u64 {
        if self.core.slow_ns != 0 {
            read_clock(&self.core)
        } else {
            0
        }
    }

    /// Stops the call's clock started at `start_ns` (0: not timed) and notes whether the call
    /// was slow. A call's duration runs to its response (the head, when the body is streamed
    /// on), not to the end of a stream that may rightly last for hours.
    #[inline]
    pub(crate) fn stop(&mut self, start_ns: u64) {
        if start_ns != 0 && took_long(&self.core, start_ns) {
            self.meta |= SLOW_BIT;
        }
    }

    pub(crate) fn classifier(&self) -> &C {
        &self.core.common.classifier
    }
}

// Out of line, and taking the core rather than the ticket: the clock read stays off the code
// of breakers that time nothing, and the ticket stays in registers.
#[inline(never)]
fn read_clock<C>(core: &Core<C>) -> u64 {
    core.common.now_ns()
}

#[inline(never)]
fn took_long<C>(core: &Core<C>, start_ns: u64) -> bool {
    core.common.now_ns().saturating_sub(start_ns) >= core.slow_ns
}

impl<C> tower_outcome::Settle for Ticket<C> {
    #[inline]
    fn settle(mut self, outcome: Outcome) {
        let probe = self.meta & PROBE_BIT != 0;
        self.core.record(
            self.generation(),
            probe,
            || self.meta & SLOW_BIT != 0,
            outcome,
        );
        // Settled: the slot was released (or the breaker moved on) by `record`.
        self.meta &= !PROBE_BIT;
    }
}

impl<C> fmt::Debug for Ticket<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("breaker", &self.core.common.name)
            .field("generation", &self.generation())
            .field("probe", &(self.meta & PROBE_BIT != 0))
            .finish_non_exhaustive()
    }
}

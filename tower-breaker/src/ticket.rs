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
    /// `generation (32 bits) | probe (1) | slow (1)`.
    meta: u64,
    /// When the call started, in nanoseconds on the layer's clock (never 0: the clock starts a
    /// day before the layer); 0 while the call is not being timed.
    start_ns: u64,
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

    /// Starts the call's clock, when a slow-call rule needs it.
    #[inline]
    pub(crate) fn start(&mut self) {
        if self.core.slow_ns != 0 {
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
    pub(crate) fn stop(&mut self) {
        if self.start_ns != 0 {
            self.stop_clock();
        }
    }

    #[inline(never)]
    fn stop_clock(&mut self) {
        if self.took_long() {
            self.meta |= SLOW_BIT;
        }
        self.start_ns = 0;
    }

    fn took_long(&self) -> bool {
        self.core.common.now_ns().saturating_sub(self.start_ns) >= self.core.slow_ns
    }

    /// Whether the call was slow: when it stopped, or now if its clock still runs.
    #[inline(never)]
    fn slow(&self) -> bool {
        self.meta & SLOW_BIT != 0 || (self.start_ns != 0 && self.took_long())
    }

    pub(crate) fn classifier(&self) -> &C {
        &self.core.common.classifier
    }
}

impl<C> tower_outcome::Settle for Ticket<C> {
    #[inline]
    fn settle(mut self, outcome: Outcome) {
        let probe = self.meta & PROBE_BIT != 0;
        self.core
            .record(self.generation(), probe, || self.slow(), outcome);
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

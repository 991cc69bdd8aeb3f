//! The ticket: the obligation an admitted call carries until it is settled or dropped.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_outcome::Outcome;

use crate::call_event::{CallEvent, CallListener};
use crate::machine::Core;

/// The obligation of a call the breaker admitted: it records the call's outcome when
/// [settled](tower_outcome::Settle), or, dropped unsettled (the call was cancelled), frees its
/// half-open probe slot and records nothing.
///
/// It lives in the response future, or in the response body when the classifier waits for the
/// end of the stream.
pub struct Ticket<C, L> {
    core: Arc<Core<C, L>>,
    /// `generation (32 bits) | probe (1) | timed (1) | start in ms (30, wrapping)`: one word,
    /// so the ticket moves as two machine words.
    meta: u64,
}

const PROBE_BIT: u64 = 1 << 32;
const TIMED_BIT: u64 = 1 << 33;
const START_SHIFT: u32 = 34;
const START_MASK: u64 = (1 << 30) - 1;

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
        }
    }

    const fn generation(&self) -> u32 {
        self.meta as u32
    }

    /// Starts the call's clock, when a slow-call rule or a call listener needs it.
    #[inline]
    pub(crate) fn start(&mut self)
    where
        L: CallListener,
    {
        if L::ENABLED || self.core.slow_ns != 0 {
            let ms = self.core.common.now_ns() / 1_000_000;
            self.meta |= TIMED_BIT | (ms & START_MASK) << START_SHIFT;
        }
    }

    /// Milliseconds since [`start`](Self::start), if the call was timed.
    fn elapsed_ms(&self) -> Option<u64> {
        (self.meta & TIMED_BIT != 0).then(|| {
            let now = self.core.common.now_ns() / 1_000_000;
            now.wrapping_sub(self.meta >> START_SHIFT) & START_MASK
        })
    }

    pub(crate) fn classifier(&self) -> &C {
        &self.core.common.classifier
    }
}

impl<C, L: CallListener> tower_outcome::Settle for Ticket<C, L> {
    #[inline]
    fn settle(mut self, outcome: Outcome) {
        let probe = self.meta & PROBE_BIT != 0;
        if L::ENABLED {
            // Out of line: without a listener (the constant is false) this is the plain
            // recording below, unchanged.
            self.settle_and_report(probe, outcome);
        } else {
            self.core
                .record(self.generation(), probe, || self.elapsed_ms(), outcome);
        }
        // Settled: the slot was released (or the breaker moved on) by `record`.
        self.meta &= !PROBE_BIT;
    }
}

impl<C, L: CallListener> Ticket<C, L> {
    /// Records the outcome, then tells the call listener, with the duration read once.
    #[inline(never)]
    fn settle_and_report(&self, probe: bool, outcome: Outcome) {
        let elapsed = self.elapsed_ms();
        self.core
            .record(self.generation(), probe, || elapsed, outcome);
        let common = &self.core.common;
        common.call_listener.on_call(&CallEvent {
            name: &common.name,
            key: self.core.key.as_deref(),
            outcome: outcome.into(),
            duration: elapsed.map(Duration::from_millis),
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

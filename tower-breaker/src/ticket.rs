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
    /// `generation (32 bits) | probe (1) | slow (1)`, and with a call listener
    /// `| timed (1) | duration (29, see [`encode_duration`])`: one word, so the ticket moves as two
    /// machine words, in registers. (The start of a timed call is kept beside the ticket, in
    /// the response future: a third word made the ticket travel through the stack and be
    /// copied with wider loads than the stores that wrote it, a store-forwarding stall that
    /// doubled the cost of a call.)
    meta: u64,
}

const PROBE_BIT: u64 = 1 << 32;
const SLOW_BIT: u64 = 1 << 33;
/// Only with a call listener: the call was timed and its duration is in the upper bits.
const TIMED_BIT: u64 = 1 << 34;
const DURATION_SHIFT: u32 = 35;
/// Duration codes: `exponent (6 bits) | mantissa (23)`, nanoseconds = mantissa << exponent.
const MANTISSA_BITS: u32 = 23;

/// A duration in 29 bits: exact below 2^23 ns (8.4 ms), within 1.2e-7 of it above.
const fn encode_duration(ns: u64) -> u64 {
    let bits = 64 - ns.leading_zeros();
    let exponent = bits.saturating_sub(MANTISSA_BITS);
    (exponent as u64) << MANTISSA_BITS | ns >> exponent
}

const fn decode_duration(code: u64) -> u64 {
    let mantissa = code & ((1 << MANTISSA_BITS) - 1);
    mantissa << (code >> MANTISSA_BITS)
}

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

    /// Starts the call's clock when a slow-call rule or a call listener needs it: the start, in nanoseconds on
    /// the layer's clock (never 0: that clock starts a day before the layer), or 0 when the
    /// call is not timed. Kept by the caller and handed to [`stop`](Self::stop).
    #[inline]
    pub(crate) fn start(&self) -> u64
    where
        L: CallListener,
    {
        if L::ENABLED || self.core.slow_ns != 0 {
            read_clock(&self.core)
        } else {
            0
        }
    }

    /// Stops the call's clock started at `start_ns` (0: not timed) and notes whether the call
    /// was slow. A call's duration runs to its response (the head, when the body is streamed
    /// on), not to the end of a stream that may rightly last for hours.
    #[inline]
    pub(crate) fn stop(&mut self, start_ns: u64)
    where
        L: CallListener,
    {
        if L::ENABLED {
            if start_ns != 0 {
                self.stop_and_keep(start_ns);
            }
        } else if start_ns != 0 && took_long(&self.core, start_ns) {
            self.meta |= SLOW_BIT;
        }
    }

    /// With a call listener: notes whether the call was slow, and keeps its duration.
    #[inline(never)]
    fn stop_and_keep(&mut self, start_ns: u64) {
        let elapsed = self.core.common.now_ns().saturating_sub(start_ns);
        // Calls are timed for the listener even without a slow-call rule: none is slow then.
        if self.core.slow_ns != 0 && elapsed >= self.core.slow_ns {
            self.meta |= SLOW_BIT;
        }
        self.meta |= TIMED_BIT | encode_duration(elapsed) << DURATION_SHIFT;
    }

    /// The call's duration, if its clock was stopped with a call listener set.
    fn duration(&self) -> Option<Duration> {
        (self.meta & TIMED_BIT != 0)
            .then(|| Duration::from_nanos(decode_duration(self.meta >> DURATION_SHIFT)))
    }

    pub(crate) fn classifier(&self) -> &C {
        &self.core.common.classifier
    }
}

// Out of line, and taking the core rather than the ticket: the clock read stays off the code
// of breakers that time nothing, and the ticket stays in registers.
#[inline(never)]
fn read_clock<C, L>(core: &Core<C, L>) -> u64 {
    core.common.now_ns()
}

#[inline(never)]
fn took_long<C, L>(core: &Core<C, L>, start_ns: u64) -> bool {
    core.common.now_ns().saturating_sub(start_ns) >= core.slow_ns
}

impl<C, L: CallListener> tower_outcome::Settle for Ticket<C, L> {
    // Always inline, as it was before the listener branch (folded away without one) made it
    // look bigger to the inliner.
    #[inline(always)]
    fn settle(mut self, outcome: Outcome) {
        let meta = self.meta;
        let probe = meta & PROBE_BIT != 0;
        // Cleared before anything runs: recording may run a transition listener, and the call
        // listener runs after it. Should either panic, this ticket is dropped while unwinding,
        // and must not free again the slot that recording already released (or that the
        // breaker's next generation took back): that would free a slot another probe holds.
        self.meta = meta & !PROBE_BIT;
        if L::ENABLED {
            // Out of line: without a listener (the constant is false) this is the plain
            // recording below, unchanged.
            self.settle_and_report(probe, outcome);
        } else {
            // From the copy taken above, so the cleared flag need not be written back first.
            self.core
                .record(meta as u32, probe, || meta & SLOW_BIT != 0, outcome);
        }
    }
}

impl<C, L: CallListener> Ticket<C, L> {
    /// Records the outcome, then tells the call listener.
    #[inline(never)]
    fn settle_and_report(&self, probe: bool, outcome: Outcome) {
        self.core.record(
            self.generation(),
            probe,
            || self.meta & SLOW_BIT != 0,
            outcome,
        );
        let common = &self.core.common;
        common.call_listener.on_call(&CallEvent {
            name: &common.name,
            key: self.core.key.as_deref(),
            outcome: outcome.into(),
            duration: self.duration(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_survive_their_code() {
        for ns in [
            0,
            1,
            999,
            (1 << 23) - 1,
            1 << 23,
            250_000_000,
            3_600_000_000_000,
        ] {
            let back = decode_duration(encode_duration(ns));
            assert!(
                back <= ns && ns - back <= ns >> MANTISSA_BITS,
                "{ns} -> {back}"
            );
            assert!(
                encode_duration(ns) < 1 << (64 - DURATION_SHIFT),
                "{ns} fits"
            );
        }
        assert_eq!(decode_duration(encode_duration(250_000_000)), 250_000_000);
        let max = decode_duration(encode_duration(u64::MAX));
        assert!(max >= u64::MAX - (u64::MAX >> MANTISSA_BITS));
        assert!(encode_duration(u64::MAX) < 1 << (64 - DURATION_SHIFT));
    }
}

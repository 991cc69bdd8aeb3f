//! The admission slot: what a service decided in `poll_ready`, kept until `call`.

use std::sync::Arc;

use crate::machine::Core;
use crate::refusal::Refusal;
use crate::state::State;
use crate::ticket::Ticket;
use crate::word::Word;

/// What admission decided for one call, on the rare path (any state but Closed).
pub(crate) enum Admission<C, L> {
    /// Admitted in a state that holds nothing per call; the ticket is made in `call`.
    Pass { generation: u32 },
    /// Admitted as a half-open probe: the ticket holds the probe slot from now on.
    Probe(Ticket<C, L>),
    /// Refused.
    Refused(Refusal),
}

/// Where a service keeps its admission between `poll_ready` and `call`.
///
/// One word, `0` (none), `generation << 2 | 1` (admitted), `2` (admitted as a probe: the ticket
/// is kept beside it) or `refusal << 2 | 3` (refused), written and read as a whole: moving an
/// enum with narrower fields here cost a store-forwarding stall per call.
pub(crate) struct Slot<C, L> {
    word: u64,
    probe: Option<Ticket<C, L>>,
}

const SLOT_PASS: u64 = 1;
const SLOT_PROBE: u64 = 2;
const SLOT_REFUSED: u64 = 3;

impl<C, L> Slot<C, L> {
    pub(crate) const fn new() -> Self {
        Self {
            word: 0,
            probe: None,
        }
    }

    #[inline]
    pub(crate) const fn is_empty(&self) -> bool {
        self.word == 0
    }

    #[inline]
    pub(crate) const fn is_refused(&self) -> bool {
        self.word & 3 == SLOT_REFUSED
    }

    /// Admits a call or decides its refusal. Never waits; takes the transition lock only when
    /// a transition is due.
    #[inline]
    pub(crate) fn fill(&mut self, core: &Arc<Core<C, L>>) {
        let word = core.load();
        if word.state() == State::Closed {
            self.word = u64::from(word.generation()) << 2 | SLOT_PASS;
        } else {
            self.fill_other(core, word);
        }
    }

    #[inline(never)]
    fn fill_other(&mut self, core: &Arc<Core<C, L>>, word: Word) {
        self.word = match core.admit_other(word) {
            Admission::Pass { generation } => u64::from(generation) << 2 | SLOT_PASS,
            Admission::Probe(ticket) => {
                self.probe = Some(ticket);
                SLOT_PROBE
            }
            Admission::Refused(refusal) => refusal.0 << 2 | SLOT_REFUSED,
        };
    }

    /// Decides again an admission granted in an earlier generation (kept while the inner
    /// service was not ready). A refusal stands: refusing is never wrong for long.
    #[cold]
    #[inline(never)]
    pub(crate) fn refresh(&mut self, core: &Arc<Core<C, L>>) {
        let generation = match self.word & 3 {
            SLOT_PASS => (self.word >> 2) as u32,
            SLOT_PROBE => match &self.probe {
                Some(ticket) => ticket.generation(),
                None => return,
            },
            _ => return,
        };
        if core.load().generation() != generation {
            self.word = 0;
            // A stale probe's slot went with its generation: dropping it frees nothing.
            self.probe = None;
            self.fill(core);
        }
    }

    /// The admitted call's ticket, or why it is refused; empties the slot.
    ///
    /// An admission holds only for the generation it was granted in: if the breaker has moved
    /// on since (opened, was forced open, re-opened from half-open, was reset), the call is
    /// admitted again in the state the breaker is in now, or refused.
    ///
    /// # Panics
    /// If the slot is empty: `poll_ready` was not called first.
    #[inline]
    pub(crate) fn take(&mut self, core: &Arc<Core<C, L>>) -> Result<Ticket<C, L>, Refusal> {
        let word = std::mem::replace(&mut self.word, 0);
        match word & 3 {
            SLOT_PASS if core.load().generation() == (word >> 2) as u32 => {
                Ok(Ticket::new(Arc::clone(core), (word >> 2) as u32, false))
            }
            SLOT_PASS | SLOT_PROBE => self.take_other(core, word),
            SLOT_REFUSED => Err(Refusal(word >> 2)),
            _ => panic!("CircuitBreaker::call without poll_ready: poll_ready must be called first"),
        }
    }

    /// The admission as it was granted, stale or not (for a readiness error, settled as
    /// granted: it counts only if the breaker is still in that state); empties the slot.
    pub(crate) fn take_granted(&mut self, core: &Arc<Core<C, L>>) -> Option<Ticket<C, L>> {
        let word = std::mem::replace(&mut self.word, 0);
        match word & 3 {
            SLOT_PASS => Some(Ticket::new(Arc::clone(core), (word >> 2) as u32, false)),
            SLOT_PROBE => self.probe.take(),
            _ => None,
        }
    }

    /// A probe's ticket, or a stale admission decided again.
    #[cold]
    #[inline(never)]
    fn take_other(&mut self, core: &Arc<Core<C, L>>, word: u64) -> Result<Ticket<C, L>, Refusal> {
        if word & 3 == SLOT_PROBE
            && let Some(ticket) = self.probe.take()
            && ticket.generation() == core.load().generation()
        {
            return Ok(ticket);
        }
        // Stale (a stale probe's slot went with its generation: dropping it frees nothing).
        self.probe = None;
        core.admit_again()
    }
}

#[cfg(test)]
mod tests {
    use tower_outcome::Reason;

    use super::*;
    use crate::refusal::MAX_NS;

    #[test]
    fn a_refusal_survives_the_slot() {
        for (reason, until_ns) in [
            (Reason::CircuitOpen, Some(1_500_000_000)),
            (Reason::HalfOpenFull, None),
            (Reason::ForcedOpen, None),
            (Reason::CircuitOpen, Some(u64::MAX)),
        ] {
            let refusal = Refusal::new(reason, until_ns);
            let mut slot = Slot::<(), ()> {
                word: refusal.0 << 2 | SLOT_REFUSED,
                probe: None,
            };
            assert!(slot.is_refused());
            let back = Refusal(std::mem::replace(&mut slot.word, 0) >> 2);
            assert_eq!(back.reason(), reason);
            assert_eq!(back.until_ns(), until_ns.map(|ns| ns.min(MAX_NS)));
        }
    }
}

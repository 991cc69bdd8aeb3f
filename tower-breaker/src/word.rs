//! The packed state word: a breaker's state, generation and half-open probe counts in one
//! atomic `u64`, so admitting a probe, releasing it and counting its success are single
//! compare-and-swaps that also check the generation: a call admitted before a transition can
//! never touch the new state's counts.

use crate::state::State;

const PROBES_SHIFT: u32 = 4;
const SUCCESSES_SHIFT: u32 = 20;
const GEN_SHIFT: u32 = 36;
const FIELD_MASK: u64 = 0xFFFF;
pub(crate) const GEN_MASK: u32 = (1 << (64 - GEN_SHIFT)) - 1;

/// `state (4 bits) | probes in flight (16) | probe successes (16) | generation (28)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    #[inline]
    pub(crate) const fn new(state: State, generation: u32) -> Self {
        Self(state as u64 | ((generation & GEN_MASK) as u64) << GEN_SHIFT)
    }
    #[inline]
    pub(crate) const fn state(self) -> State {
        State::from_bits(self.0 & 0xF)
    }
    #[inline]
    pub(crate) const fn probes(self) -> u32 {
        ((self.0 >> PROBES_SHIFT) & FIELD_MASK) as u32
    }
    #[inline]
    pub(crate) const fn successes(self) -> u32 {
        ((self.0 >> SUCCESSES_SHIFT) & FIELD_MASK) as u32
    }
    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }
    // A packed field must never carry into, or borrow from, its neighbour: the probe count
    // would turn into successes, or the generation go backwards. Callers check the count
    // first (admission against `half_open_max_calls`, at most `u16::MAX`; release against
    // zero); these check again, and saturate rather than corrupt the word should a caller
    // ever get it wrong.
    #[inline]
    pub(crate) const fn add_probe(self) -> Self {
        debug_assert!(self.probes() < FIELD_MASK as u32, "probe count overflow");
        self.saturating_add_probe()
    }
    #[inline]
    pub(crate) const fn remove_probe(self) -> Self {
        debug_assert!(self.probes() > 0, "no probe in flight to remove");
        self.saturating_remove_probe()
    }
    #[inline]
    const fn saturating_add_probe(self) -> Self {
        if self.probes() as u64 == FIELD_MASK {
            self
        } else {
            Self(self.0 + (1 << PROBES_SHIFT))
        }
    }
    #[inline]
    const fn saturating_remove_probe(self) -> Self {
        if self.probes() == 0 {
            self
        } else {
            Self(self.0 - (1 << PROBES_SHIFT))
        }
    }
    #[inline]
    pub(crate) const fn add_success(self) -> Self {
        if self.successes() as u64 == FIELD_MASK {
            self
        } else {
            Self(self.0 + (1 << SUCCESSES_SHIFT))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_word_packs_its_fields() {
        let word = Word::new(State::HalfOpen, GEN_MASK)
            .add_probe()
            .add_success();
        assert_eq!(word.state(), State::HalfOpen);
        assert_eq!(word.generation(), GEN_MASK);
        assert_eq!((word.probes(), word.successes()), (1, 1));
        assert_eq!(word.remove_probe().probes(), 0);
    }

    /// Removing a probe that is not there, or adding one past the field's capacity, leaves
    /// the word as it was: no borrow from the successes or the generation.
    #[test]
    fn the_probe_count_never_borrows_nor_carries() {
        let word = Word::new(State::HalfOpen, 7).add_success();
        assert!(word.saturating_remove_probe() == word);
        let mut full = Word::new(State::HalfOpen, 7);
        for _ in 0..FIELD_MASK {
            full = full.add_probe();
        }
        assert!(full.saturating_add_probe() == full);
        assert_eq!(
            (full.probes(), full.successes(), full.generation()),
            (0xFFFF, 0, 7)
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "no probe in flight to remove")]
    fn removing_a_missing_probe_is_a_bug_caught_in_debug_builds() {
        let _ = Word::new(State::HalfOpen, 7).remove_probe();
    }
}

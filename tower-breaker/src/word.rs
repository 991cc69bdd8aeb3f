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
    // Probe counts never exceed `half_open_max_calls` (at most u16::MAX), so these do not carry.
    #[inline]
    pub(crate) const fn add_probe(self) -> Self {
        Self(self.0 + (1 << PROBES_SHIFT))
    }
    #[inline]
    pub(crate) const fn remove_probe(self) -> Self {
        Self(self.0 - (1 << PROBES_SHIFT))
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
}

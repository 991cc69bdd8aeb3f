//! The refusal: why a call is refused, decided at admission and answered by its future.

use std::sync::Arc;
use std::time::Duration;

use tower_outcome::{LayerKind, Reason, Rejected};

/// Why a call is refused, decided at admission; the [`Rejected`] is built when answering.
///
/// One word, `reason (2 bits) | has a deadline (1) | deadline (59)`, so it moves cheaply
/// between `poll_ready` and `call` (two bits are left for [`Slot`](crate::slot::Slot)'s tag).
/// The deadline is when an open circuit lets a probe through, in nanoseconds on the layer's
/// clock, rather than the time left: the retry-after is worked out from it when the call is
/// refused, in `call`, however long after `poll_ready` that is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refusal(pub(crate) u64);

const REASON_MASK: u64 = 0b11;
const HAS_TIME: u64 = 1 << 2;
pub(crate) const REFUSAL_SHIFT: u32 = 3;
/// The largest time a refusal carries (in its 59 bits, with the slot's two): about 18 years.
pub(crate) const MAX_NS: u64 = u64::MAX >> (REFUSAL_SHIFT + 2);

const REASONS: [Reason; 3] = [
    Reason::CircuitOpen,
    Reason::HalfOpenFull,
    Reason::ForcedOpen,
];

/// `reason | has time | time`, the layout of [`Refusal`] and [`Refused`].
#[inline]
fn pack(reason: Reason, ns: Option<u64>) -> u64 {
    let code = match reason {
        Reason::HalfOpenFull => 1,
        Reason::ForcedOpen => 2,
        _ => 0,
    };
    match ns {
        Some(ns) => code | HAS_TIME | ns.min(MAX_NS) << REFUSAL_SHIFT,
        None => code,
    }
}

#[inline]
fn reason_of(word: u64) -> Reason {
    REASONS[(word & REASON_MASK) as usize % REASONS.len()]
}

#[inline]
fn ns_of(word: u64) -> Option<u64> {
    (word & HAS_TIME != 0).then_some(word >> REFUSAL_SHIFT)
}

impl Refusal {
    /// Refused for `reason`; `until_ns`: when a call may pass again, on the layer's clock.
    #[inline]
    pub(crate) fn new(reason: Reason, until_ns: Option<u64>) -> Self {
        Self(pack(reason, until_ns))
    }

    #[cfg(test)]
    pub(crate) fn reason(self) -> Reason {
        reason_of(self.0)
    }

    /// When a call may pass again, on the layer's clock, if the refusal says.
    #[inline]
    pub(crate) fn until_ns(self) -> Option<u64> {
        ns_of(self.0)
    }
}

/// A refused call, carried by its response future: three words until the answer is built.
pub(crate) struct Refused {
    pub(crate) name: Arc<str>,
    /// `reason | has a retry-after | retry-after in ns`, as [`Refusal`]'s layout: the time
    /// left when the call was refused.
    answer: u64,
}

impl Refused {
    /// A call made in breaker `name`, refused as `refusal` decided, where the refusal has no
    /// deadline.
    #[inline]
    pub(crate) fn new(name: Arc<str>, refusal: Refusal) -> Self {
        // The same layout: a refusal without a deadline is its own answer.
        Self {
            name,
            answer: refusal.0,
        }
    }

    /// A call made in breaker `name`, refused as `refusal` decided, `left_ns` before its
    /// deadline (or after it: then 0).
    pub(crate) fn with_time_left(name: Arc<str>, refusal: Refusal, left_ns: u64) -> Self {
        Self {
            name,
            answer: refusal.0 & (REASON_MASK | HAS_TIME) | left_ns.min(MAX_NS) << REFUSAL_SHIFT,
        }
    }

    /// The family's rejection for this call.
    #[inline]
    pub(crate) fn into_rejected(self) -> Rejected {
        let rejected =
            Rejected::new(LayerKind::Breaker, reason_of(self.answer)).with_name(self.name);
        match ns_of(self.answer) {
            Some(ns) => rejected.with_retry_after(Duration::from_nanos(ns)),
            None => rejected,
        }
    }
}

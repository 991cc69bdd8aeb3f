//! The refusal: why a call is refused, decided at admission and answered by its future.

use std::sync::Arc;
use std::time::Duration;

use tower_outcome::{LayerKind, Reason, Rejected};

use crate::clock::nanos;

/// Why a call is refused, decided at admission; the [`Rejected`] is built when answering.
///
/// One word, `reason (8 bits) | has retry-after (1) | retry-after in ns (53)`, so it moves
/// cheaply between `poll_ready` and `call` (two bits are left for [`Slot`]'s tag).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refusal(pub(crate) u64);

pub(crate) const REFUSAL_RETRY: u64 = 1 << 8;
pub(crate) const REFUSAL_SHIFT: u32 = 9;

impl Refusal {
    const REASONS: [Reason; 3] = [
        Reason::CircuitOpen,
        Reason::HalfOpenFull,
        Reason::ForcedOpen,
    ];

    #[inline]
    pub(crate) fn new(reason: Reason, retry_after: Option<Duration>) -> Self {
        let code = match reason {
            Reason::HalfOpenFull => 1,
            Reason::ForcedOpen => 2,
            _ => 0,
        };
        match retry_after {
            // 53 bits of nanoseconds is over 100 days: longer waits are clamped.
            Some(delay) => Self(
                code | REFUSAL_RETRY
                    | nanos(delay).min(u64::MAX >> (REFUSAL_SHIFT + 2)) << REFUSAL_SHIFT,
            ),
            None => Self(code),
        }
    }

    #[inline]
    pub(crate) fn reason(self) -> Reason {
        Self::REASONS[(self.0 & 0xFF) as usize % Self::REASONS.len()]
    }

    #[inline]
    pub(crate) fn retry_after(self) -> Option<Duration> {
        (self.0 & REFUSAL_RETRY != 0).then(|| Duration::from_nanos(self.0 >> REFUSAL_SHIFT))
    }
}

/// A refused call, carried by its response future: two words until the answer is built.
pub(crate) struct Refused {
    pub(crate) name: Arc<str>,
    pub(crate) refusal: Refusal,
}

impl Refused {
    /// The family's rejection for this call.
    #[inline]
    pub(crate) fn into_rejected(self) -> Rejected {
        let rejected =
            Rejected::new(LayerKind::Breaker, self.refusal.reason()).with_name(self.name);
        match self.refusal.retry_after() {
            Some(delay) => rejected.with_retry_after(delay),
            None => rejected,
        }
    }
}

//! The clock base: a layer's time readings, in nanoseconds on tokio's (pausable) clock.

use std::time::Duration;

use tokio::time::Instant;

/// The origin of a layer's clock readings: a day before it was built, so a reading taken on
/// a clock that started a little earlier (a paused test runtime created before the layer)
/// is still after it.
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Self {
            base: now.checked_sub(Duration::from_secs(86_400)).unwrap_or(now),
        }
    }

    /// Nanoseconds since the base.
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.base))
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (about 584 years).
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

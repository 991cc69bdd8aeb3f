//! The automatic guard: disarms when the inner service's real error rate passes a limit.

use std::error::Error;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// Decides whether a real (non-injected) result is a failure, for the guard.
pub(crate) type GuardClassifier<Res> =
    Arc<dyn Fn(Result<&Res, &(dyn Error + 'static)>) -> bool + Send + Sync>;

const SLOTS: usize = 10;

#[derive(Clone, Copy, Debug)]
struct Slot {
    index: u64,
    calls_at_start: u64,
    failures: u64,
}

const EMPTY: Slot = Slot {
    index: u64::MAX,
    calls_at_start: 0,
    failures: 0,
};

/// The guard's window: failures per time slice, and the running count of real calls when
/// each slice began. Successes cost nothing: calls are the layer's sequence number (less
/// the calls a terminal fault answered), read only when a failure arrives.
pub(crate) struct Guard<Res> {
    pub(crate) window: Duration,
    pub(crate) limit: f64,
    pub(crate) minimum_calls: u64,
    pub(crate) classify: GuardClassifier<Res>,
    /// False for the default classifier, which never fails an `Ok`: no call per success.
    pub(crate) ok_can_fail: bool,
    width: Duration,
    ring: Mutex<[Slot; SLOTS]>,
}

impl<Res> Guard<Res> {
    pub(crate) fn new(
        window: Duration,
        limit: f64,
        minimum_calls: u64,
        classify: GuardClassifier<Res>,
        ok_can_fail: bool,
    ) -> Self {
        Self {
            window,
            limit,
            minimum_calls,
            classify,
            ok_can_fail,
            width: window / SLOTS as u32,
            ring: Mutex::new([EMPTY; SLOTS]),
        }
    }

    fn index(&self, now: Duration) -> u64 {
        let width = self.width.as_nanos().max(1);
        u64::try_from(now.as_nanos() / width).unwrap_or(u64::MAX - 1)
    }

    /// Starts a fresh window at `now` (arming), with no calls yet.
    pub(crate) fn reset(&self, now: Duration) {
        let index = self.index(now);
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *ring = [EMPTY; SLOTS];
        ring[(index % SLOTS as u64) as usize] = Slot {
            index,
            calls_at_start: 0,
            failures: 0,
        };
    }

    /// Records one failure at `now`, with `calls` real calls seen since arming; true when the
    /// error rate over the window now exceeds the limit.
    pub(crate) fn failure(&self, now: Duration, calls: u64) -> bool {
        let index = self.index(now);
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = &mut ring[(index % SLOTS as u64) as usize];
        if slot.index != index {
            *slot = Slot {
                index,
                // This call is already counted in `calls`: the slice starts just before it.
                calls_at_start: calls.saturating_sub(1),
                failures: 0,
            };
        }
        slot.failures += 1;
        let oldest_allowed = index.saturating_sub(SLOTS as u64 - 1);
        let mut failures = 0;
        let mut start = calls;
        for slot in ring.iter() {
            if slot.index != u64::MAX && slot.index >= oldest_allowed && slot.index <= index {
                failures += slot.failures;
                start = start.min(slot.calls_at_start);
            }
        }
        let in_window = calls - start;
        in_window >= self.minimum_calls
            && in_window > 0
            && failures as f64 / in_window as f64 > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard<()> {
        Guard::new(
            Duration::from_secs(30),
            0.5,
            10,
            Arc::new(|r| r.is_err()),
            false,
        )
    }

    #[test]
    fn trips_past_the_limit_with_enough_calls() {
        let g = guard();
        g.reset(Duration::ZERO);
        // 10 calls, 5 failures: 50 % is not past the limit.
        for calls in [2, 4, 6, 8, 10] {
            assert!(!g.failure(Duration::from_secs(1), calls));
        }
        // The 11th call fails too: 6 / 11 > 50 %.
        assert!(g.failure(Duration::from_secs(2), 11));
    }

    #[test]
    fn too_few_calls_never_trip() {
        let g = guard();
        g.reset(Duration::ZERO);
        for calls in 1..=9 {
            assert!(!g.failure(Duration::from_secs(1), calls));
        }
    }

    #[test]
    fn old_failures_leave_the_window() {
        let g = guard();
        g.reset(Duration::ZERO);
        for calls in 1..=5 {
            assert!(!g.failure(Duration::from_secs(1), calls));
        }
        // 100 s later, 100 more calls, one failure: the old ones are gone.
        assert!(!g.failure(Duration::from_secs(100), 105));
    }
}

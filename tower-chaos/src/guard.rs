//! The automatic guard: disarms when the inner service's real error rate, or the p99 latency
//! callers see, passes a limit.
//!
//! Invariants: the window is a ring of time slices, each tagged with the slice it counts; a slice
//! is reset (under `rotate`, once per slice width) before it is counted into again, so counts never
//! mix two slices. Every real call is counted once, when it ends (or, for a call held past the
//! latency bound, when it passes the bound); failures and slow calls are counted with it, in the
//! slice of their own clock reading. A success without a latency bound reads the clock once in
//! `SAMPLE` calls: the others count in the slice the newest reading found (`current`). A sum over
//! the ring is a snapshot of atomics: a call counted while it is read may or may not be in it,
//! which moves the rate by one call at most.

use std::error::Error;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Decides whether a real (non-injected) result is a failure, for the guard.
pub(crate) type GuardClassifier<Res> =
    Arc<dyn Fn(Result<&Res, &(dyn Error + 'static)>) -> bool + Send + Sync>;

const SLOTS: usize = 10;
const EMPTY: u64 = u64::MAX;
/// One success in this many reads the clock (to notice a new slice).
const SAMPLE: u64 = 8;

/// One time slice of the window.
struct Slice {
    index: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl Slice {
    const fn new() -> Self {
        Self {
            index: AtomicU64::new(EMPTY),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }
}

/// Why the guard tripped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Trip {
    /// The real error rate over the window (above the limit).
    ErrorRate(f64),
    /// More than 1 % of the window's calls took longer than this bound: the p99 passed it.
    Latency(Duration),
}

/// The guard's settings and its window of counts.
pub(crate) struct Guard<Res> {
    pub(crate) window: Duration,
    pub(crate) limit: f64,
    pub(crate) minimum_calls: u64,
    /// The p99 latency bound, if the guard watches latency.
    pub(crate) latency: Option<Duration>,
    pub(crate) classify: GuardClassifier<Res>,
    /// False for the default classifier, which never fails an `Ok`: no call per success.
    pub(crate) ok_can_fail: bool,
    width: Duration,
    /// The newest slice a clock read found ([`EMPTY`] after a reset): unsampled successes
    /// are counted there.
    current: AtomicU64,
    ring: [Slice; SLOTS],
    rotate: Mutex<()>,
}

impl<Res> Guard<Res> {
    pub(crate) fn new(
        window: Duration,
        limit: f64,
        minimum_calls: u64,
        latency: Option<Duration>,
        classify: GuardClassifier<Res>,
        ok_can_fail: bool,
    ) -> Self {
        Self {
            window,
            limit,
            minimum_calls,
            latency,
            classify,
            ok_can_fail,
            width: window / SLOTS as u32,
            current: AtomicU64::new(EMPTY),
            ring: [const { Slice::new() }; SLOTS],
            rotate: Mutex::new(()),
        }
    }

    fn index(&self, now: Duration) -> u64 {
        let width = self.width.as_nanos().max(1);
        u64::try_from(now.as_nanos() / width).unwrap_or(EMPTY - 1)
    }

    /// Starts a fresh window (arming), with no calls yet.
    pub(crate) fn reset(&self) {
        let _rotate = self.rotate.lock().unwrap_or_else(PoisonError::into_inner);
        self.current.store(EMPTY, Relaxed);
        for slice in &self.ring {
            slice.index.store(EMPTY, Release);
            slice.calls.store(0, Relaxed);
            slice.failures.store(0, Relaxed);
            slice.slow.store(0, Relaxed);
        }
    }

    /// Counts one real call that succeeded (neither slow nor already counted). The clock
    /// (`now`) is read once in [`SAMPLE`] successes, and when no slice is current: the
    /// successes in between are counted in the slice the last clock read found current. So a
    /// success may be counted up to `SAMPLE - 1` calls early, in an older slice, and leave
    /// the window early: the rate the guard reads errs toward failures (toward disarming),
    /// never away from them. Failures and slow calls always read the clock.
    #[inline]
    pub(crate) fn count_success(&self, now: impl FnOnce() -> Duration) {
        let current = self.current.load(Relaxed);
        if current != EMPTY {
            let slice = &self.ring[(current % SLOTS as u64) as usize];
            if slice.index.load(Acquire) == current {
                let counted = slice.calls.fetch_add(1, AcqRel);
                if counted % SAMPLE == SAMPLE - 1 {
                    self.roll(now());
                }
                return;
            }
        }
        self.count_success_slow(now());
    }

    /// Makes the slice counting `now` current (a new slice noticed by a sampled success).
    #[cold]
    #[inline(never)]
    fn roll(&self, now: Duration) {
        self.slice(self.index(now));
    }

    #[cold]
    #[inline(never)]
    fn count_success_slow(&self, now: Duration) {
        // A success never trips the guard.
        let _ = self.record(now, true, false, false);
    }

    /// Whether a call that took `latency` passed the latency bound.
    pub(crate) fn is_slow(&self, latency: Option<Duration>) -> bool {
        matches!((self.latency, latency), (Some(bound), Some(took)) if took > bound)
    }

    /// The slice counting `index`, reset first if it still holds an older one.
    fn slice(&self, index: u64) -> &Slice {
        let slice = &self.ring[(index % SLOTS as u64) as usize];
        let held = slice.index.load(Acquire);
        if held == index || (held != EMPTY && held > index) {
            return slice;
        }
        let _rotate = self.rotate.lock().unwrap_or_else(PoisonError::into_inner);
        let held = slice.index.load(Acquire);
        if held == EMPTY || held < index {
            slice.calls.store(0, Relaxed);
            slice.failures.store(0, Relaxed);
            slice.slow.store(0, Relaxed);
            slice.index.store(index, Release);
            if self.current.load(Relaxed) == EMPTY || self.current.load(Relaxed) < index {
                self.current.store(index, Relaxed);
            }
        }
        slice
    }

    /// Counts one outcome at `now` (a new call when `call`, a failure, a slow call); when a
    /// failure or a slow call takes the window past a limit, says why.
    pub(crate) fn record(
        &self,
        now: Duration,
        call: bool,
        failed: bool,
        slow: bool,
    ) -> Option<Trip> {
        let index = self.index(now);
        let slice = self.slice(index);
        if call {
            slice.calls.fetch_add(1, AcqRel);
        }
        if failed {
            slice.failures.fetch_add(1, AcqRel);
        }
        if slow {
            slice.slow.fetch_add(1, AcqRel);
        }
        if failed || slow {
            self.evaluate(index)
        } else {
            None
        }
    }

    /// The window ending in slice `index`: trips past the error-rate limit, or when more
    /// than 1 % of its calls passed the latency bound, once it holds `minimum_calls`.
    fn evaluate(&self, index: u64) -> Option<Trip> {
        let oldest = index.saturating_sub(SLOTS as u64 - 1);
        let (mut calls, mut failures, mut slow) = (0_u64, 0_u64, 0_u64);
        for slice in &self.ring {
            let held = slice.index.load(Acquire);
            if held != EMPTY && (oldest..=index).contains(&held) {
                calls += slice.calls.load(Acquire);
                failures += slice.failures.load(Acquire);
                slow += slice.slow.load(Acquire);
            }
        }
        if calls == 0 || calls < self.minimum_calls {
            return None;
        }
        let rate = failures as f64 / calls as f64;
        if rate > self.limit {
            return Some(Trip::ErrorRate(rate));
        }
        // p99 (nearest rank) is above the bound exactly when more than 1 % of calls are.
        match self.latency {
            Some(bound) if slow.saturating_mul(100) > calls => Some(Trip::Latency(bound)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(latency: Option<Duration>) -> Guard<()> {
        Guard::new(
            Duration::from_secs(30),
            0.5,
            10,
            latency,
            Arc::new(|r| r.is_err()),
            false,
        )
    }

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn trips_past_the_limit_with_enough_calls() {
        let g = guard(None);
        // 5 successes, 5 failures: 50 % is not past the limit.
        for _ in 0..5 {
            assert_eq!(g.record(secs(1), true, false, false), None);
            assert_eq!(g.record(secs(1), true, true, false), None);
        }
        // The 11th call fails too: 6 / 11 > 50 %.
        assert!(matches!(
            g.record(secs(2), true, true, false),
            Some(Trip::ErrorRate(_))
        ));
    }

    #[test]
    fn too_few_calls_never_trip() {
        let g = guard(None);
        for _ in 0..9 {
            assert_eq!(g.record(secs(1), true, true, false), None);
        }
    }

    #[test]
    fn successes_before_the_first_failure_count() {
        let g = guard(None);
        // 1 000 successes spread over 25 s (several slices), then 11 failures: 1.1 %.
        for n in 0..1_000 {
            assert_eq!(
                g.record(Duration::from_millis(n * 25), true, false, false),
                None
            );
        }
        for _ in 0..11 {
            assert_eq!(g.record(secs(26), true, true, false), None);
        }
    }

    #[test]
    fn old_calls_leave_the_window() {
        let g = guard(None);
        for _ in 0..100 {
            g.record(secs(1), true, false, false);
        }
        // 100 s later the old successes are gone: 10 failures alone trip.
        for _ in 0..9 {
            assert_eq!(g.record(secs(101), true, true, false), None);
        }
        assert!(g.record(secs(101), true, true, false).is_some());
    }

    #[test]
    fn more_than_one_percent_slow_is_a_p99_past_the_bound() {
        let g = guard(Some(Duration::from_millis(500)));
        for _ in 0..198 {
            g.record(secs(1), true, false, false);
        }
        // 2 slow in 200: p99 is the 198th value, fast.
        assert_eq!(g.record(secs(1), true, false, true), None);
        assert_eq!(g.record(secs(1), true, false, true), None);
        // 3 slow in 201: the 199th value is slow.
        assert_eq!(
            g.record(secs(1), true, false, true),
            Some(Trip::Latency(Duration::from_millis(500)))
        );
    }

    #[test]
    fn reset_forgets_everything() {
        let g = guard(None);
        for _ in 0..9 {
            g.record(secs(1), true, true, false);
        }
        g.reset();
        assert_eq!(g.record(secs(1), true, true, false), None);
    }

    #[test]
    fn a_success_reads_the_clock_once_in_sample_calls() {
        let g = guard(None);
        let reads = std::cell::Cell::new(0_u64);
        let now = || {
            reads.set(reads.get() + 1);
            secs(1)
        };
        // No slice is current after a reset: the first success reads the clock.
        g.count_success(now);
        assert_eq!(reads.get(), 1);
        for _ in 1..(8 * SAMPLE) {
            g.count_success(now);
        }
        assert_eq!(reads.get(), 1 + 8, "one read in {SAMPLE} successes");
        // The successes count in the window: 64 successes and 11 failures are 15 %.
        for _ in 0..11 {
            assert_eq!(g.record(secs(1), true, true, false), None);
        }
    }

    #[test]
    fn a_sampled_success_moves_the_counting_to_a_new_slice() {
        let g = guard(None);
        g.count_success(|| secs(1));
        // 40 s later: within `SAMPLE` successes one reads the clock and the new slice becomes
        // current; the successes after it count in the new window.
        for _ in 0..(SAMPLE + 100) {
            g.count_success(|| secs(40));
        }
        for _ in 0..11 {
            assert_eq!(
                g.record(secs(40), true, true, false),
                None,
                "11 failures against about 100 successes in the window"
            );
        }
        assert_eq!(g.current.load(Relaxed), g.index(secs(40)));
    }

    #[test]
    fn successes_counted_without_the_clock_leave_with_their_slice() {
        let g = guard(None);
        for _ in 0..1_000 {
            g.count_success(|| secs(1));
        }
        // 100 s later the successes (all counted in the slice of 1 s) are gone.
        for _ in 0..9 {
            assert_eq!(g.record(secs(101), true, true, false), None);
        }
        assert!(g.record(secs(101), true, true, false).is_some());
    }

    #[test]
    fn reset_makes_the_next_success_read_the_clock() {
        let g = guard(None);
        g.count_success(|| secs(1));
        g.reset();
        let read = std::cell::Cell::new(false);
        g.count_success(|| {
            read.set(true);
            secs(2)
        });
        assert!(read.get());
    }
}

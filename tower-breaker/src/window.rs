//! Rolling windows for the rate rules: the last N calls, or buckets over the last T seconds.
//!
//! Both are lock-free on the recording path. Every entry is tagged with the breaker's
//! generation, so a transition empties a window by moving to a new generation (nothing is
//! cleared), and an outcome recorded late by a call of an older generation can never count
//! toward the new state.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*, fence};
use std::time::Duration;

use crate::config::WindowSpec;
use crate::padded::Padded;

/// What a window holds for the current generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

// One per breaker, inline in it: boxing the larger (padded) variant would cost an indirection per
// call to save memory nobody misses.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(spec: WindowSpec) -> Self {
        match spec {
            WindowSpec::Count(size) => Self::Count(CountWindow::new(size)),
            WindowSpec::Time { width, buckets } => Self::Time(TimeWindow::new(width, buckets)),
        }
    }

    /// The largest number of calls the window can hold, if it has one.
    pub(crate) fn capacity(&self) -> Option<u32> {
        match self {
            Self::Count(w) => u32::try_from(w.slots.len()).ok(),
            Self::Time(_) => None,
        }
    }

    pub(crate) const fn needs_clock(&self) -> bool {
        matches!(self, Self::Time(_))
    }

    /// Records one call; returns the totals when a rate may have reached its threshold: after
    /// a failure or a slow call, or when the window may just have filled to `minimum` calls (a
    /// success lowers both rates otherwise).
    pub(crate) fn record(
        &self,
        generation: u32,
        now_ns: u64,
        failure: bool,
        slow: bool,
        minimum: u32,
    ) -> Option<Totals> {
        match self {
            Self::Count(w) => w.record(generation, failure, slow, minimum),
            Self::Time(w) => w.record(generation, now_ns, failure, slow, minimum),
        }
    }

    /// Marks the start of a new generation (called on every transition).
    pub(crate) fn begin_generation(&self) {
        if let Self::Count(w) = self {
            w.generation_start.store(w.head.load(Acquire), Release);
        }
    }

    pub(crate) fn totals(&self, generation: u32, now_ns: u64) -> Totals {
        match self {
            Self::Count(w) => w.totals(generation),
            Self::Time(w) => w.totals(generation, now_ns),
        }
    }
}

const RECORDED: u32 = 1;
const FAILURE: u32 = 2;
const SLOW: u32 = 4;
const GEN_TAG_MASK: u32 = 0x00FF_FFFF;

const fn tag(generation: u32) -> u32 {
    (generation & GEN_TAG_MASK) << 8
}

/// The last `size` calls: a ring of slots, each holding one call's bits and its generation.
pub(crate) struct CountWindow {
    /// Written by every call: alone on its cache line, so it does not slow readers of its
    /// neighbours.
    head: Padded<AtomicU64>,
    /// `head` when the current generation began: tells when the window fills to the minimum.
    generation_start: AtomicU64,
    slots: Box<[AtomicU32]>,
}

impl CountWindow {
    fn new(size: u32) -> Self {
        Self {
            head: Padded(AtomicU64::new(0)),
            generation_start: AtomicU64::new(0),
            slots: (0..size).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn record(&self, generation: u32, failure: bool, slow: bool, minimum: u32) -> Option<Totals> {
        self.fill(self.claim(), generation, failure, slow, minimum)
    }

    /// The position of the next call in the ring.
    #[inline]
    fn claim(&self) -> u64 {
        self.head.fetch_add(1, Relaxed)
    }

    /// Records the call at `position` (from [`claim`](Self::claim)).
    #[inline]
    fn fill(
        &self,
        position: u64,
        generation: u32,
        failure: bool,
        slow: bool,
        minimum: u32,
    ) -> Option<Totals> {
        let bits = RECORDED | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        let index = position % self.slots.len() as u64;
        // `index` is below `slots.len()`, a `u32`, so it fits a `usize`.
        self.slots[index as usize].store(tag(generation) | bits, Release);
        if failure || slow {
            return Some(self.totals(generation));
        }
        let filled = position + 1 - self.generation_start.load(Acquire).min(position);
        if filled > u64::from(minimum) {
            // Past the minimum, a success only lowers the rates.
            return None;
        }
        // Filling up to the minimum. Racing calls write their slots in any order, so the call
        // that reaches the minimum may not see the others yet; each of these first calls reads
        // the totals after its own write (behind a fence, so of two racing calls at least one
        // sees both), and the rule is judged once the minimum is in.
        fence(SeqCst);
        let totals = self.totals(generation);
        (totals.calls >= u64::from(minimum)).then_some(totals)
    }

    fn totals(&self, generation: u32) -> Totals {
        let want = tag(generation);
        let mut totals = Totals::default();
        for slot in &*self.slots {
            let value = slot.load(Acquire);
            if value & !0xFF == want && value & RECORDED != 0 {
                totals.calls += 1;
                totals.failures += u64::from(value & FAILURE != 0);
                totals.slow += u64::from(value & SLOW != 0);
            }
        }
        totals
    }
}

struct Bucket {
    /// `(generation << 40) | epoch`: which slice of time, in which generation, the counts are for.
    tag: AtomicU64,
    /// 64 bits: a bucket can be a day wide, and no call rate wraps these in it.
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

const EPOCH_MASK: u64 = (1 << 40) - 1;

const fn bucket_tag(generation: u32, epoch: u64) -> u64 {
    ((generation & GEN_TAG_MASK) as u64) << 40 | (epoch & EPOCH_MASK)
}

/// The last `buckets × width` of time. A bucket is reused once its slice is a whole window old;
/// reuse (once per bucket width) takes a lock, recording does not.
pub(crate) struct TimeWindow {
    width_ns: u64,
    /// The last slice seen, `epoch << 12 | bucket index`: saves two divisions per call while
    /// the clock stays in the same slice.
    current: AtomicU64,
    buckets: Box<[Bucket]>,
    rotate: Mutex<()>,
}

impl TimeWindow {
    fn new(width: Duration, buckets: u32) -> Self {
        Self {
            width_ns: u64::try_from(width.as_nanos()).unwrap_or(u64::MAX).max(1),
            current: AtomicU64::new(u64::MAX),
            buckets: (0..buckets)
                .map(|_| Bucket {
                    tag: AtomicU64::new(u64::MAX),
                    calls: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    slow: AtomicU64::new(0),
                })
                .collect(),
            rotate: Mutex::new(()),
        }
    }

    /// The slice `now_ns` falls in, and its bucket index.
    #[inline]
    fn slice(&self, now_ns: u64) -> (u64, usize) {
        let current = self.current.load(Relaxed);
        let (epoch, index) = (current >> 12, (current & 0xFFF) as usize);
        let start = epoch.wrapping_mul(self.width_ns);
        if current != u64::MAX && now_ns.wrapping_sub(start) < self.width_ns {
            return (epoch, index);
        }
        let epoch = now_ns / self.width_ns;
        // Below `buckets.len()`, at most `MAX_TIME_BUCKETS` (< 4096).
        let index = (epoch % self.buckets.len() as u64) as usize;
        self.current.store(epoch << 12 | index as u64, Relaxed);
        (epoch, index)
    }

    fn record(
        &self,
        generation: u32,
        now_ns: u64,
        failure: bool,
        slow: bool,
        minimum: u32,
    ) -> Option<Totals> {
        let (epoch, index) = self.slice(now_ns);
        let want = bucket_tag(generation, epoch);
        let bucket = &self.buckets[index];
        if bucket.tag.load(Acquire) != want {
            let _guard = self
                .rotate
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if bucket.tag.load(Acquire) != want {
                bucket.calls.store(0, Relaxed);
                bucket.failures.store(0, Relaxed);
                bucket.slow.store(0, Relaxed);
                bucket.tag.store(want, Release);
            }
        }
        let in_bucket = bucket.calls.fetch_add(1, Relaxed) + 1;
        if failure {
            bucket.failures.fetch_add(1, Relaxed);
        }
        if slow {
            bucket.slow.fetch_add(1, Relaxed);
        }
        if failure || slow {
            return Some(self.totals(generation, now_ns));
        }
        // Buckets expire when a new bucket begins: the rates may rise (forgotten successes)
        // and the window may fall under the minimum and fill up again. So the first calls of
        // each bucket, up to the minimum, read the totals (one pass over the buckets), and the
        // rule is judged whenever the minimum is in; once this bucket alone holds more than
        // the minimum, nothing expires before the next bucket and a success only lowers the
        // rates. The fence: of two racing calls, at least one sees both.
        if in_bucket > u64::from(minimum.max(1)) {
            return None;
        }
        fence(SeqCst);
        let totals = self.totals(generation, now_ns);
        (totals.calls >= u64::from(minimum)).then_some(totals)
    }

    fn totals(&self, generation: u32, now_ns: u64) -> Totals {
        let current = now_ns / self.width_ns;
        let oldest = current.saturating_sub(self.buckets.len() as u64 - 1);
        let mut totals = Totals::default();
        for bucket in &*self.buckets {
            let tag = bucket.tag.load(Acquire);
            let epoch = tag & EPOCH_MASK;
            if tag != u64::MAX
                && tag >> 40 == u64::from(generation & GEN_TAG_MASK)
                && (oldest..=current).contains(&epoch)
            {
                totals.calls += bucket.calls.load(Relaxed);
                totals.failures += bucket.failures.load(Relaxed);
                totals.slow += bucket.slow.load(Relaxed);
            }
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_keeps_the_last_n() {
        let w = CountWindow::new(10);
        for _ in 0..100 {
            w.record(0, false, false, 10);
        }
        assert_eq!(
            w.totals(0),
            Totals {
                calls: 10,
                failures: 0,
                slow: 0
            }
        );
        let mut last = None;
        for _ in 0..5 {
            last = w.record(0, true, false, 10);
        }
        assert_eq!(
            last,
            Some(Totals {
                calls: 10,
                failures: 5,
                slow: 0
            })
        );
        for _ in 0..10 {
            w.record(0, false, true, 10);
        }
        assert_eq!(
            w.totals(0),
            Totals {
                calls: 10,
                failures: 0,
                slow: 10
            }
        );
    }

    #[test]
    fn totals_come_back_when_the_window_fills_to_the_minimum() {
        let w = CountWindow::new(10);
        assert_eq!(w.record(0, false, false, 3), None);
        assert_eq!(w.record(0, false, false, 3), None);
        assert_eq!(
            w.record(0, false, false, 3),
            Some(Totals {
                calls: 3,
                failures: 0,
                slow: 0
            })
        );
        assert_eq!(w.record(0, false, false, 3), None);
        let t = TimeWindow::new(Duration::from_secs(1), 2);
        assert_eq!(t.record(0, 0, false, false, 2), None);
        assert_eq!(t.record(0, 0, false, false, 2).map(|t| t.calls), Some(2));
    }

    #[test]
    fn a_new_generation_starts_empty() {
        let w = CountWindow::new(4);
        w.record(7, true, false, 4);
        assert_eq!(w.totals(7).calls, 1);
        assert_eq!(w.totals(8), Totals::default());
        // A late outcome of generation 7 does not count in generation 8.
        w.record(7, true, false, 4);
        assert_eq!(w.totals(8), Totals::default());
    }

    #[test]
    fn time_window_forgets_old_buckets() {
        let w = TimeWindow::new(Duration::from_secs(1), 10);
        let s = 1_000_000_000;
        w.record(0, 0, true, false, 20);
        w.record(0, 5 * s, false, false, 20);
        assert_eq!(
            w.totals(0, 9 * s),
            Totals {
                calls: 2,
                failures: 1,
                slow: 0
            }
        );
        // At 10 s the bucket of second 0 has left the window.
        assert_eq!(
            w.totals(0, 10 * s),
            Totals {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        // Reusing the slot of second 0 at second 20 starts from zero.
        assert_eq!(
            w.record(0, 20 * s, true, false, 20),
            Some(Totals {
                calls: 1,
                failures: 1,
                slow: 0
            })
        );
    }

    /// Two successes race past `minimum_calls`: the one that reaches the minimum reads the
    /// totals before the other has written its slot. The rule is still evaluated once both
    /// are in.
    #[test]
    fn the_rate_rule_is_evaluated_when_two_successes_race_past_the_minimum() {
        let w = CountWindow::new(10);
        // One failure of the minimum 3: too few calls to judge.
        assert_eq!(w.record(0, true, false, 3).map(|t| t.calls), Some(1));
        let early = w.claim();
        let late = w.claim();
        // The later call fills first: it sees 2 calls, under the minimum.
        assert!(w.fill(late, 0, false, false, 3).is_none_or(|t| t.calls < 3));
        // The earlier one completes the minimum: the window has 3 calls, one failed.
        assert_eq!(
            w.fill(early, 0, false, false, 3),
            Some(Totals {
                calls: 3,
                failures: 1,
                slow: 0
            })
        );
    }

    /// Old buckets expire: the window falls back under the rates' reach of the successes it
    /// forgot, and the next success sees the totals.
    #[test]
    fn the_rate_rule_is_evaluated_when_old_buckets_expire() {
        let s = 1_000_000_000;
        let w = TimeWindow::new(Duration::from_secs(1), 2);
        for _ in 0..10 {
            w.record(0, 0, false, false, 2);
        }
        assert!(w.record(0, s, true, false, 2).is_some());
        assert!(w.record(0, s, true, false, 2).is_some());
        // At 2 s the ten successes of second 0 have left; 2 failures and this success remain.
        assert_eq!(
            w.record(0, 2 * s, false, false, 2),
            Some(Totals {
                calls: 3,
                failures: 2,
                slow: 0
            })
        );
    }

    /// Time-window counts cannot wrap: a bucket past `u32::MAX` calls, and a sum of buckets.
    #[test]
    fn time_window_counts_do_not_wrap() {
        let w = TimeWindow::new(Duration::from_secs(1), 2);
        let s = 1_000_000_000;
        w.record(0, 0, true, false, 1);
        w.record(0, s, true, false, 1);
        for bucket in &*w.buckets {
            bucket.calls.store(u32::MAX.into(), Relaxed);
            bucket.failures.store(u32::MAX.into(), Relaxed);
        }
        w.record(0, s, true, false, 1);
        let totals = w.totals(0, s);
        assert_eq!(totals.calls, 2 * u64::from(u32::MAX) + 1);
        assert_eq!(totals.failures, 2 * u64::from(u32::MAX) + 1);
    }
}

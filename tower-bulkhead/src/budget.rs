//! Token budgets: the in-flight budget (a weighted semaphore) and the rate budget (a token
//! bucket refilled from elapsed time, with no background task).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::*};
use std::time::Duration;

use tower_outcome::Reason;

use crate::config::{MAX_TOKENS, RateSpec};

/// Tokens held by the calls in flight; a call gives its tokens back when it ends.
///
/// `in_use` may exceed the capacity when calls settle to a higher actual cost than their
/// estimate: that debt blocks new admissions until it drains.
#[derive(Debug)]
pub(crate) struct InFlightBudget {
    pub(crate) in_use: AtomicU64,
    pub(crate) capacity: AtomicU64,
}

impl InFlightBudget {
    pub(crate) const fn new(capacity: u64) -> Self {
        Self {
            in_use: AtomicU64::new(0),
            capacity: AtomicU64::new(capacity),
        }
    }

    /// Whether a call costing `cost` can ever be admitted.
    pub(crate) fn check(&self, cost: u64) -> Result<(), Reason> {
        if cost > self.capacity.load(Relaxed) {
            Err(Reason::CostExceedsCapacity)
        } else {
            Ok(())
        }
    }

    /// Takes `cost` tokens, or says why not: more than the capacity, or not now.
    #[inline]
    pub(crate) fn take(&self, cost: u64) -> Result<(), Reason> {
        if cost == 0 {
            return Ok(());
        }
        let capacity = self.capacity.load(Relaxed);
        if cost > capacity {
            return Err(Reason::CostExceedsCapacity);
        }
        self.in_use
            .fetch_update(AcqRel, Acquire, |used| {
                used.checked_add(cost).filter(|&total| total <= capacity)
            })
            .map(drop)
            .map_err(|_| Reason::BudgetExhausted)
    }

    /// Takes `cost` tokens if they fit under the capacity. A zero cost always fits.
    pub(crate) fn try_take(&self, cost: u64) -> bool {
        if cost == 0 {
            return true;
        }
        let capacity = self.capacity.load(Relaxed);
        self.in_use
            .fetch_update(AcqRel, Acquire, |used| {
                used.checked_add(cost).filter(|&total| total <= capacity)
            })
            .is_ok()
    }

    /// Gives back `tokens` (or adds debt, with [`add`](Self::add)).
    pub(crate) fn give_back(&self, tokens: u64) {
        if tokens > 0 {
            self.in_use.fetch_sub(tokens, AcqRel);
        }
    }

    pub(crate) fn add(&self, tokens: u64) {
        self.in_use.fetch_add(tokens, AcqRel);
    }
}

/// A token bucket: `refill` tokens at every `period` boundary (counted from the layer's
/// creation), up to `burst`; it starts full. Spent tokens are not given back when calls end;
/// a cancelled call's reservation is, and an actual cost above the estimate is charged as debt
/// (the level goes below zero and refills pay it first).
#[derive(Debug)]
pub(crate) struct RateBudget {
    level: AtomicI64,
    /// The period index the level was last refilled for.
    refilled: AtomicU64,
    refill: AtomicU64,
    burst: AtomicU64,
    period_ns: u64,
}

impl RateBudget {
    pub(crate) fn new(spec: RateSpec) -> Self {
        Self {
            level: AtomicI64::new(spec.burst as i64),
            refilled: AtomicU64::new(0),
            refill: AtomicU64::new(spec.refill),
            burst: AtomicU64::new(spec.burst),
            period_ns: u64::try_from(spec.period.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    pub(crate) const fn period_index(&self, now_ns: u64) -> u64 {
        now_ns / self.period_ns
    }

    /// Adds the refills of the periods begun since the last one. Exactly one caller wins each
    /// period's refill.
    fn refill(&self, now_ns: u64) {
        let index = self.period_index(now_ns);
        let last = self.refilled.load(Acquire);
        if index <= last
            || self
                .refilled
                .compare_exchange(last, index, AcqRel, Relaxed)
                .is_err()
        {
            return;
        }
        let burst = self.burst.load(Relaxed) as i64;
        let add = (index - last)
            .saturating_mul(self.refill.load(Relaxed))
            .min(2 * MAX_TOKENS) as i64;
        let _ = self.level.fetch_update(AcqRel, Acquire, |level| {
            (level < burst).then(|| level.saturating_add(add).min(burst))
        });
    }

    /// The tokens available now (negative: debt).
    pub(crate) fn available(&self, now_ns: u64) -> i64 {
        self.refill(now_ns);
        self.level.load(Acquire)
    }

    pub(crate) fn check(&self, cost: u64) -> Result<(), Reason> {
        if cost > self.burst.load(Relaxed) {
            Err(Reason::CostExceedsCapacity)
        } else {
            Ok(())
        }
    }

    /// Spends `cost` tokens, or says why not: more than the burst, or not now.
    #[inline]
    pub(crate) fn take(&self, cost: u64, now_ns: u64) -> Result<(), Reason> {
        if cost > self.burst.load(Relaxed) {
            return Err(Reason::CostExceedsCapacity);
        }
        if self.try_take(cost, now_ns) {
            Ok(())
        } else {
            Err(Reason::BudgetExhausted)
        }
    }

    /// Spends `cost` tokens if that many are available. A zero cost always fits.
    pub(crate) fn try_take(&self, cost: u64, now_ns: u64) -> bool {
        if cost == 0 {
            return true;
        }
        self.refill(now_ns);
        let cost = cost as i64;
        self.level
            .fetch_update(AcqRel, Acquire, |level| {
                (level >= cost).then_some(level - cost)
            })
            .is_ok()
    }

    /// Returns `tokens` (a cancelled reservation, or an estimate above the actual cost), up to
    /// the burst.
    pub(crate) fn give_back(&self, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let burst = self.burst.load(Relaxed) as i64;
        let tokens = tokens.min(MAX_TOKENS) as i64;
        let _ = self.level.fetch_update(AcqRel, Acquire, |level| {
            (level < burst).then(|| (level + tokens).min(burst))
        });
    }

    /// Charges `tokens` beyond what was reserved: the level may go below zero (debt).
    pub(crate) fn charge(&self, tokens: u64) {
        let tokens = tokens.min(MAX_TOKENS) as i64;
        let _ = self.level.fetch_update(AcqRel, Acquire, |level| {
            Some(level.saturating_sub(tokens).max(-2 * MAX_TOKENS as i64))
        });
    }

    /// How long until `cost` tokens are available, counting whole refills.
    pub(crate) fn time_until(&self, cost: u64, now_ns: u64) -> Duration {
        let level = self.available(now_ns);
        let missing = (cost as i64).saturating_sub(level);
        if missing <= 0 {
            return Duration::ZERO;
        }
        let refill = self.refill.load(Relaxed).max(1);
        let periods = (missing as u64).div_ceil(refill);
        let next = self.period_index(now_ns).saturating_add(periods);
        Duration::from_nanos(next.saturating_mul(self.period_ns).saturating_sub(now_ns))
    }

    /// When the next refill happens.
    pub(crate) fn next_refill_ns(&self, now_ns: u64) -> u64 {
        (self.period_index(now_ns) + 1).saturating_mul(self.period_ns)
    }

    pub(crate) fn set_refill(&self, refill: u64, burst: u64) {
        self.refill.store(refill, Relaxed);
        self.burst.store(burst, Relaxed);
        let burst = burst as i64;
        let _ = self
            .level
            .fetch_update(AcqRel, Acquire, |level| (level > burst).then_some(burst));
    }

    pub(crate) fn burst(&self) -> u64 {
        self.burst.load(Relaxed)
    }

    pub(crate) fn refill_tokens(&self) -> u64 {
        self.refill.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn bucket(refill: u64, burst: u64) -> RateBudget {
        RateBudget::new(RateSpec {
            refill,
            period: Duration::from_secs(1),
            burst,
        })
    }

    #[test]
    fn refills_per_whole_period_up_to_burst() {
        let b = bucket(100, 250);
        assert!(b.try_take(250, 0));
        assert_eq!(b.available(SECOND - 1), 0);
        assert_eq!(b.available(SECOND), 100);
        assert_eq!(b.available(2 * SECOND + 5), 200);
        assert_eq!(b.available(10 * SECOND), 250);
    }

    #[test]
    fn debt_is_paid_by_refills_first() {
        let b = bucket(100, 100);
        assert!(b.try_take(100, 0));
        b.charge(150);
        assert_eq!(b.available(0), -150);
        assert_eq!(b.time_until(50, 0), Duration::from_secs(2));
        assert_eq!(b.available(2 * SECOND), 50);
    }

    #[test]
    fn give_back_is_capped_at_burst() {
        let b = bucket(10, 100);
        assert!(b.try_take(30, 0));
        b.give_back(1000);
        assert_eq!(b.available(0), 100);
    }

    #[test]
    fn in_flight_budget_admits_zero_cost_even_in_debt() {
        let b = InFlightBudget::new(10);
        assert!(b.try_take(10));
        b.add(5);
        assert!(!b.try_take(1));
        assert!(b.try_take(0));
        assert_eq!(b.check(11), Err(Reason::CostExceedsCapacity));
    }
}

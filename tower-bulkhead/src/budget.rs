//! Token budgets: the in-flight budget (a weighted semaphore) and the rate budget (GCRA: a
//! token bucket refilled continuously from elapsed time, with no background task).

use std::sync::atomic::{AtomicU64, Ordering::*};
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

/// `T = period / refill` in fixed point, in one word: the mantissa in the high bits, the
/// number of its fractional bits in the low 6. The mantissa has 32 significant bits (rounded
/// up: never more generous) whenever `T` is below 2^32 ns, so any rate from one token per
/// week to `2^31` per millisecond keeps 31 bits of precision, and [`span`] multiplies in 64
/// bits.
pub(crate) fn interval(refill: u64, period: Duration) -> u64 {
    let ns = period.as_nanos().max(1);
    let refill = u128::from(refill.max(1));
    let bits = |v: u128| 128 - v.leading_zeros();
    let shift = (32 + bits(refill)).saturating_sub(bits(ns)).min(63);
    let mantissa = (ns << shift).div_ceil(refill);
    (u64::try_from(mantissa)
        .unwrap_or(u64::MAX >> 6)
        .min(u64::MAX >> 6)
        << 6)
        | u64::from(shift)
}

/// `tokens × T` in ns, rounded up, saturating.
#[inline]
pub(crate) const fn span(tokens: u64, interval: u64) -> u64 {
    let shift = (interval & 63) as u32;
    let product = tokens.saturating_mul(interval >> 6);
    product.saturating_add((1 << shift) - 1) >> shift
}

/// How many tokens `ns` of refill are worth at interval `T`, rounded up, saturating.
pub(crate) fn tokens_in(ns: u64, interval: u64) -> u128 {
    let shift = (interval & 63) as u32;
    let mantissa = u128::from((interval >> 6).max(1));
    (u128::from(ns) << shift).div_ceil(mantissa)
}

/// The rate budget: GCRA (the generic cell rate algorithm), a token bucket refilled
/// continuously, kept in one word: the theoretical arrival time (`tat`).
///
/// A token is worth the emission interval `T = period / refill`; the bucket holds up to
/// `burst` tokens, the tolerance `τ = burst × T`. It is full when `tat ≤ now`, and holds
/// `burst - (tat - now) / T` tokens otherwise (below zero: debt). Taking `cost` tokens moves
/// `tat` to `max(tat, now) + cost × T`, allowed when that is at most `now + τ`. Times are
/// nanoseconds since the layer was built, so a new bucket (`tat = 0`) starts full. A fleet
/// store keeping `tat` per key runs the same arithmetic.
///
/// Spent tokens are not given back when calls end; a cancelled call's reservation is, and an
/// actual cost above the estimate is charged as debt (refills pay it first). `T` is kept in
/// fixed point ([`interval`]); the configuration bounds `τ` (`config::check_rate`).
#[derive(Debug)]
pub(crate) struct RateBudget {
    tat: AtomicU64,
    /// `T`, as [`interval`] packs it.
    interval: AtomicU64,
    /// `τ`, in ns.
    tolerance: AtomicU64,
    refill: AtomicU64,
    burst: AtomicU64,
    period: Duration,
}

impl RateBudget {
    pub(crate) fn new(spec: RateSpec) -> Self {
        let interval = interval(spec.refill, spec.period);
        Self {
            tat: AtomicU64::new(0),
            interval: AtomicU64::new(interval),
            tolerance: AtomicU64::new(span(spec.burst, interval)),
            refill: AtomicU64::new(spec.refill),
            burst: AtomicU64::new(spec.burst),
            period: spec.period,
        }
    }

    /// The tokens available now (negative: debt).
    pub(crate) fn available(&self, now_ns: u64) -> i64 {
        let owed = self.tat.load(Acquire).saturating_sub(now_ns);
        self.burst.load(Relaxed) as i64 - self.tokens_in(owed)
    }

    /// How many tokens `ns` of refill are worth, rounded up.
    fn tokens_in(&self, ns: u64) -> i64 {
        let tokens = tokens_in(ns, self.interval.load(Relaxed));
        i64::try_from(tokens)
            .unwrap_or(i64::MAX)
            .min(4 * MAX_TOKENS as i64)
    }

    /// Whether the bucket is full: forgetting it would give nothing away.
    pub(crate) fn is_full(&self, now_ns: u64) -> bool {
        self.tat.load(Acquire) <= now_ns
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
    #[inline]
    pub(crate) fn try_take(&self, cost: u64, now_ns: u64) -> bool {
        if cost == 0 {
            return true;
        }
        let step = span(cost, self.interval.load(Relaxed));
        let limit = now_ns.saturating_add(self.tolerance.load(Relaxed));
        self.tat
            .fetch_update(AcqRel, Acquire, |tat| {
                let next = tat.max(now_ns).saturating_add(step);
                (next <= limit).then_some(next)
            })
            .is_ok()
    }

    /// Returns `tokens` (a cancelled reservation, or an estimate above the actual cost), up to
    /// the burst.
    pub(crate) fn give_back(&self, tokens: u64, now_ns: u64) {
        if tokens == 0 {
            return;
        }
        let step = span(tokens, self.interval.load(Relaxed));
        let _ = self.tat.fetch_update(AcqRel, Acquire, |tat| {
            (tat > now_ns).then(|| tat.saturating_sub(step).max(now_ns))
        });
    }

    /// Charges `tokens` beyond what was reserved: the level may go below zero (debt).
    pub(crate) fn charge(&self, tokens: u64, now_ns: u64) {
        let step = span(tokens.min(MAX_TOKENS), self.interval.load(Relaxed));
        let _ = self.tat.fetch_update(AcqRel, Acquire, |tat| {
            Some(tat.max(now_ns).saturating_add(step))
        });
    }

    /// How long until `cost` tokens are available (zero: now).
    pub(crate) fn time_until(&self, cost: u64, now_ns: u64) -> Duration {
        let step = span(cost, self.interval.load(Relaxed));
        let tat = self.tat.load(Acquire).max(now_ns);
        let ready = tat
            .saturating_add(step)
            .saturating_sub(self.tolerance.load(Relaxed));
        Duration::from_nanos(ready.saturating_sub(now_ns))
    }

    /// Changes the refill and the burst; the tokens held stay, up to the new burst.
    pub(crate) fn set_refill(&self, refill: u64, burst: u64, now_ns: u64) {
        let level = self.available(now_ns).min(burst as i64);
        let interval = interval(refill, self.period);
        self.interval.store(interval, Relaxed);
        self.tolerance.store(span(burst, interval), Relaxed);
        self.refill.store(refill, Relaxed);
        self.burst.store(burst, Relaxed);
        let owed = (burst as i64 - level).max(0) as u64;
        self.tat
            .store(now_ns.saturating_add(span(owed, interval)), Release);
    }

    pub(crate) fn burst(&self) -> u64 {
        self.burst.load(Relaxed)
    }

    pub(crate) fn refill_tokens(&self) -> u64 {
        self.refill.load(Relaxed)
    }

    pub(crate) const fn period(&self) -> Duration {
        self.period
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
    fn refills_continuously_up_to_burst() {
        let b = bucket(100, 250);
        assert!(b.try_take(250, 0));
        assert_eq!(b.available(SECOND / 100), 1);
        assert_eq!(
            b.available(SECOND / 100 - 1),
            0,
            "a token is whole or not there"
        );
        assert_eq!(b.available(SECOND), 100);
        assert_eq!(b.available(2 * SECOND + SECOND / 2), 250);
        assert!(b.is_full(10 * SECOND));
        assert!(!b.is_full(SECOND));
    }

    #[test]
    fn debt_is_paid_by_refills_first() {
        let b = bucket(100, 100);
        assert!(b.try_take(100, 0));
        b.charge(150, 0);
        assert_eq!(b.available(0), -150);
        assert_eq!(b.time_until(50, 0), Duration::from_secs(2));
        assert_eq!(b.available(2 * SECOND), 50);
    }

    #[test]
    fn give_back_is_capped_at_burst() {
        let b = bucket(10, 100);
        assert!(b.try_take(30, 0));
        b.give_back(1000, 0);
        assert_eq!(b.available(0), 100);
    }

    #[test]
    fn a_rate_above_one_token_per_nanosecond_keeps_its_precision() {
        let b = RateBudget::new(RateSpec {
            refill: MAX_TOKENS,
            period: Duration::from_millis(1),
            burst: MAX_TOKENS,
        });
        assert!(b.try_take(MAX_TOKENS, 0));
        // 2^31 - 1 tokens per ms: half of them in half a millisecond, within one
        // nanosecond's refill (the clock's unit), 2148 tokens.
        let half = b.available(500_000);
        assert!((half - MAX_TOKENS as i64 / 2).abs() <= 2148, "{half}");
    }

    #[test]
    fn lowering_the_burst_drops_the_tokens_above_it_and_keeps_the_debt() {
        let b = bucket(100, 100);
        assert!(b.try_take(20, 0));
        b.set_refill(100, 50, 0);
        assert_eq!(b.available(0), 50);
        b.set_refill(100, 200, 0);
        assert_eq!(b.available(0), 50, "raising the burst adds nothing now");
        assert_eq!(b.available(SECOND), 150);
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

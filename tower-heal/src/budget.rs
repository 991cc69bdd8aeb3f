//! Retry budgets: a cap on retries shared by every clone of a layer, so a failing dependency
//! sees a bounded extra load instead of a retry storm.

use std::sync::PoisonError;
#[cfg(not(loom))]
use std::sync::{
    Mutex,
    atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};
use std::time::Duration;

#[cfg(loom)]
use loom::sync::{
    Mutex,
    atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

use tokio::time::Instant;

use crate::retry::ConfigError;
use crate::retry::error::check_duration;

/// Fixed-point scale: one retry costs this many units, so fractional ratios are exact to
/// three decimals (tower's budget truncates `1 / ratio` to an integer instead).
const UNIT: i64 = 1000;
/// Time slots over the ttl: a deposit expires between `ttl` and `ttl` + `ttl / SLOTS` after
/// it was made.
const SLOTS: usize = 16;

/// A retry budget: every first attempt deposits `ratio` of a retry, every retry withdraws
/// one; `min_per_second` retries per second are always allowed; deposits and withdrawals
/// expire after `ttl` (10 s), and live that long however idle the layer was. An exhausted
/// budget returns the failed result at once, it never waits.
///
/// A deposit costs an atomic add and two loads, and now and then a look at the clock (at
/// every deposit at a low rate, a few dozen times per 1/16 of the ttl at a high one); a
/// withdrawal takes a lock.
///
/// With the defaults (0.2, 10 per second), 1 000 failing requests per second for 10 s are
/// allowed at most 0.2 × 10 000 + 10 × 10 = 2 100 retries in that time.
///
/// ```
/// use tower_heal::RetryBudget;
///
/// let budget = RetryBudget::new().ratio(0.06).min_per_second(5);
/// # let _ = budget;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[must_use]
pub struct RetryBudget {
    /// Retries earned per first attempt.
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic.
    pub min_per_second: u32,
    /// How long deposits and withdrawals count.
    pub ttl: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

impl RetryBudget {
    /// The defaults: ratio 0.2, 10 per second, 10 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// `ratio`.
    pub const fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// `min_per_second`.
    pub const fn min_per_second(mut self, min_per_second: u32) -> Self {
        self.min_per_second = min_per_second;
        self
    }

    /// `ttl`.
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !self.ratio.is_finite() || self.ratio < 0.0 || self.ratio > 1000.0 {
            return Err(ConfigError::Number {
                field: "budget.ratio",
                value: self.ratio,
                range: "a number between 0 and 1000",
            });
        }
        check_duration("budget.ttl_ms", self.ttl, false)?;
        if self.ttl < Duration::from_millis(SLOTS as u64) {
            return Err(ConfigError::Duration {
                field: "budget.ttl_ms",
                millis: self.ttl.as_millis(),
            });
        }
        Ok(())
    }
}

/// gRPC's retry throttle (gRPC A6): a token count starting at `max_tokens`; every failed
/// attempt takes one token, every success gives back `token_ratio`; retries stop while the
/// count is at or below half of `max_tokens`.
///
/// ```
/// use tower_heal::Throttle;
///
/// let throttle = Throttle::new(10, 0.1);
/// # let _ = throttle;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[must_use]
pub struct Throttle {
    /// The most tokens (and the start).
    pub max_tokens: u32,
    /// Tokens given back per success.
    pub token_ratio: f64,
}

impl Throttle {
    /// `max_tokens` tokens, `token_ratio` back per success (gRPC's example: 10 and 0.1).
    pub const fn new(max_tokens: u32, token_ratio: f64) -> Self {
        Self {
            max_tokens,
            token_ratio,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_tokens == 0 || self.max_tokens > 1000 {
            return Err(ConfigError::Count {
                field: "throttle.max_tokens",
                value: self.max_tokens.into(),
                max: 1000,
            });
        }
        if !self.token_ratio.is_finite() || self.token_ratio <= 0.0 || self.token_ratio > 1000.0 {
            return Err(ConfigError::Number {
                field: "throttle.token_ratio",
                value: self.token_ratio,
                range: "a number above 0, at most 1000",
            });
        }
        Ok(())
    }
}

/// Which budget a layer keeps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BudgetKind {
    None,
    Ratio(RetryBudget),
    Throttle(Throttle),
}

/// The live budget state, shared by every clone of a layer.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per layer, behind an Arc: a box would add an indirection to every deposit"
)]
pub(crate) enum Budget {
    None,
    Ratio(Ratio),
    Throttle(Tokens),
}

impl Budget {
    pub(crate) fn new(kind: BudgetKind) -> Self {
        match kind {
            BudgetKind::None => Self::None,
            BudgetKind::Ratio(config) => Self::Ratio(Ratio::new(config)),
            BudgetKind::Throttle(config) => Self::Throttle(Tokens::new(config)),
        }
    }

    /// A first attempt is made.
    #[inline]
    pub(crate) fn deposit(&self) {
        if let Self::Ratio(ratio) = self {
            ratio.deposit();
        }
    }

    /// An attempt succeeded (or was final).
    #[inline]
    pub(crate) fn success(&self) {
        if let Self::Throttle(tokens) = self {
            tokens.success();
        }
    }

    /// An attempt failed in a retryable class.
    pub(crate) fn failure(&self) {
        if let Self::Throttle(tokens) = self {
            tokens.failure();
        }
    }

    /// Takes one retry (or hedge) from the budget; `false` when it is exhausted.
    pub(crate) fn withdraw(&self) -> bool {
        match self {
            Self::None => true,
            Self::Ratio(ratio) => ratio.withdraw(),
            Self::Throttle(tokens) => tokens.allows(),
        }
    }

    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Ratio(_) => "budget",
            Self::Throttle(_) => "throttle",
        }
    }
}

/// Deposits and withdrawals in `SLOTS` time slots over the ttl.
///
/// Dating every deposit would cost a clock read per call; instead a deposit looks at the
/// clock when the current slot's sum crosses a multiple of `2^shift`: at a low rate that is
/// every deposit, and as the rate grows `shift` grows so that the clock is read a few dozen
/// times per slot, at most one deposit in `MAX_UNDATED`.
///
/// Invariants: the slots and `current` change only under `clock` (a rotation); a deposit
/// made since the last look at the clock (above `Clock::baseline` in the current slot) is
/// carried into the new current slot by a rotation, never thrown away with the expired
/// slots: a deposit lives at least its ttl, and at most `MAX_UNDATED` deposits made just
/// before an idle time can live longer. A deposit racing a rotation may land in the slot just
/// left, which only makes it expire a slot early.
#[derive(Debug)]
pub(crate) struct Ratio {
    deposit: i64,
    reserve: i64,
    slot_length: Duration,
    slots: [AtomicI64; SLOTS],
    current: AtomicUsize,
    /// A deposit looks at the clock when the slot's sum crosses a multiple of `2^shift`.
    shift: AtomicU32,
    /// Every deposit crosses a multiple of `2^min_shift`.
    min_shift: u32,
    /// About `MAX_UNDATED` deposits cross one multiple of `2^max_shift`.
    max_shift: u32,
    clock: Mutex<Clock>,
}

#[derive(Debug)]
struct Clock {
    /// When the current slot began.
    start: Instant,
    /// The last look at the clock by a deposit.
    looked: Instant,
    /// The current slot's sum at the last look: what is above it is not dated yet.
    baseline: i64,
}

/// The most deposits between two looks at the clock.
const MAX_UNDATED: i64 = 128;

impl Ratio {
    fn new(config: RetryBudget) -> Self {
        let ttl_seconds = config.ttl.as_secs_f64();
        // Invariant: validated to lie in 0..=1000, so this fits.
        let deposit = (config.ratio * UNIT as f64).round() as i64;
        let min_shift = deposit.max(1).ilog2();
        let now = Instant::now();
        Self {
            deposit,
            reserve: (f64::from(config.min_per_second) * ttl_seconds * UNIT as f64).round() as i64,
            slot_length: config.ttl / SLOTS as u32,
            slots: Default::default(),
            current: AtomicUsize::new(0),
            shift: AtomicU32::new(min_shift),
            min_shift,
            max_shift: (deposit.max(1) * MAX_UNDATED).ilog2(),
            clock: Mutex::new(Clock {
                start: now,
                looked: now,
                baseline: 0,
            }),
        }
    }

    /// Two atomic loads and one add; the clock and the lock only on a look.
    #[inline]
    fn deposit(&self) {
        let slot = &self.slots[self.current.load(Ordering::Relaxed) % SLOTS];
        let before = slot.fetch_add(self.deposit, Ordering::Relaxed);
        let shift = self.shift.load(Ordering::Relaxed);
        if (before >> shift) != (before.wrapping_add(self.deposit) >> shift) {
            self.look();
        }
    }

    #[cold]
    #[inline(never)]
    fn look(&self) {
        // Contended: another thread is looking or withdrawing at about the same instant.
        let Ok(mut clock) = self.clock.try_lock() else {
            return;
        };
        let now = Instant::now();
        // Look a few dozen times per slot: less often at a high rate, at every deposit at a
        // low one.
        let gap = now.saturating_duration_since(clock.looked);
        let shift = self.shift.load(Ordering::Relaxed);
        if gap < self.slot_length / 64 {
            self.shift
                .store((shift + 1).min(self.max_shift), Ordering::Relaxed);
        } else if gap > self.slot_length / 16 {
            self.shift.store(self.min_shift, Ordering::Relaxed);
        }
        clock.looked = now;
        self.rotate(&mut clock, now);
        clock.baseline =
            self.slots[self.current.load(Ordering::Relaxed) % SLOTS].load(Ordering::Relaxed);
    }

    fn rotate(&self, clock: &mut Clock, now: Instant) {
        let elapsed = now.saturating_duration_since(clock.start);
        let passed = (elapsed.as_nanos() / self.slot_length.as_nanos().max(1)) as usize;
        if passed == 0 {
            return;
        }
        let current = self.current.load(Ordering::Relaxed) % SLOTS;
        // Deposits since the last look were made after it: they are carried into the new
        // slot, not expired with the old ones.
        let undated = (self.slots[current].load(Ordering::Relaxed) - clock.baseline)
            .clamp(0, 2 * MAX_UNDATED * self.deposit);
        for step in 1..=passed.min(SLOTS) {
            self.slots[(current + step) % SLOTS].store(0, Ordering::Relaxed);
        }
        let next = (current + passed) % SLOTS;
        if passed < SLOTS {
            self.slots[current].fetch_sub(undated, Ordering::Relaxed);
        }
        self.slots[next].fetch_add(undated, Ordering::Relaxed);
        self.current.store(next, Ordering::Relaxed);
        if passed >= SLOTS {
            clock.start = now;
        } else {
            // Invariant: passed < SLOTS, so the product stays within the elapsed time.
            clock.start += self.slot_length * passed as u32;
        }
    }

    fn withdraw(&self) -> bool {
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        self.rotate(&mut clock, Instant::now());
        let current = &self.slots[self.current.load(Ordering::Relaxed) % SLOTS];
        let balance: i64 = self
            .slots
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .sum();
        let allowed = balance + self.reserve >= UNIT;
        if allowed {
            current.fetch_sub(UNIT, Ordering::Relaxed);
        }
        // Everything in the current slot is dated now.
        clock.baseline = current.load(Ordering::Relaxed);
        allowed
    }
}

/// gRPC throttle tokens, in thousandths.
#[derive(Debug)]
pub(crate) struct Tokens {
    tokens: AtomicU64,
    max: u64,
    ratio: u64,
}

impl Tokens {
    fn new(config: Throttle) -> Self {
        let max = u64::from(config.max_tokens) * UNIT as u64;
        Self {
            tokens: AtomicU64::new(max),
            max,
            // Invariant: validated to lie in (0, 1000].
            ratio: (config.token_ratio * UNIT as f64).round() as u64,
        }
    }

    fn success(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t < self.max).then(|| (t + self.ratio).min(self.max))
            });
    }

    fn failure(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(UNIT as u64))
            });
    }

    fn allows(&self) -> bool {
        self.tokens.load(Ordering::Relaxed) > self.max / 2
    }
}

#[cfg(all(test, loom))]
#[path = "budget_loom.rs"]
mod loom_model;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_the_ttl() {
        let ratio = Ratio::new(RetryBudget::new().ratio(1.0).min_per_second(0));
        for _ in 0..5 {
            ratio.deposit();
        }
        assert!(ratio.withdraw());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!ratio.withdraw(), "the deposits expired");
    }

    /// Seen failing before the fix: the rotation overdue since the idle time began threw
    /// the call's own deposit away with the expired ones.
    #[tokio::test(start_paused = true)]
    async fn after_idle_beyond_the_ttl_a_fresh_deposit_pays_for_a_retry() {
        let ratio = Ratio::new(
            RetryBudget::new()
                .ratio(1.0)
                .min_per_second(0)
                .ttl(Duration::from_secs(1)),
        );
        tokio::time::advance(Duration::from_millis(1200)).await;
        ratio.deposit();
        assert!(ratio.withdraw(), "the deposit made just now pays");
        assert!(!ratio.withdraw(), "and only once");
    }

    /// At a high rate deposits look at the clock rarely; after an idle time beyond the ttl,
    /// a fresh deposit still pays, and the deposits older than the ttl that were never dated
    /// pay for at most `MAX_UNDATED` more.
    #[tokio::test(start_paused = true)]
    async fn after_a_burst_and_idle_time_a_fresh_deposit_pays_and_old_ones_barely() {
        let ratio = Ratio::new(
            RetryBudget::new()
                .ratio(1.0)
                .min_per_second(0)
                .ttl(Duration::from_secs(1)),
        );
        for _ in 0..10_000 {
            ratio.deposit();
        }
        assert_eq!(ratio.shift.load(Ordering::Relaxed), ratio.max_shift);
        tokio::time::advance(Duration::from_millis(1200)).await;
        ratio.deposit();
        let mut paid = 0;
        while ratio.withdraw() {
            paid += 1;
            assert!(paid <= 2 * MAX_UNDATED + 1, "old deposits kept paying");
        }
        assert!(paid >= 1, "the fresh deposit paid");
    }

    /// tower's `tps_empty`, `tps_leaky`, `tps_slots` and `tps_reserve` (tower/src/retry/budget/
    /// tps_budget.rs), on this budget. tower's `TpsBudget::new(ttl, min_per_s, ratio)`.
    fn tps(ttl: Duration, min_per_second: u32, ratio: f64) -> Ratio {
        Ratio::new(
            RetryBudget::new()
                .ratio(ratio)
                .min_per_second(min_per_second)
                .ttl(ttl),
        )
    }

    #[test]
    fn tower_tps_empty() {
        let bgt = tps(Duration::from_secs(1), 0, 1.0);
        assert!(!bgt.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn tower_tps_leaky() {
        let bgt = tps(Duration::from_secs(1), 0, 1.0);
        bgt.deposit();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!bgt.withdraw());
    }

    /// Seen failing before the fix: the second deposit was thrown away with the first.
    #[tokio::test(start_paused = true)]
    async fn tower_tps_slots() {
        let bgt = tps(Duration::from_secs(1), 0, 0.5);
        bgt.deposit();
        bgt.deposit();
        tokio::time::advance(Duration::from_millis(901)).await;
        // 900ms later, the deposit should still be valid
        assert!(bgt.withdraw());

        // blank slate
        tokio::time::advance(Duration::from_millis(2001)).await;

        bgt.deposit();
        tokio::time::advance(Duration::from_millis(301)).await;
        bgt.deposit();
        tokio::time::advance(Duration::from_millis(801)).await;
        bgt.deposit();

        // the first deposit is expired, but the 2nd should still be valid,
        // combining with the 3rd
        assert!(bgt.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn tower_tps_reserve() {
        let bgt = tps(Duration::from_secs(1), 5, 1.0);
        for _ in 0..5 {
            assert!(bgt.withdraw());
        }
        assert!(!bgt.withdraw());
    }

    /// Two threads depositing and withdrawing at once never withdraw more than was earned.
    #[test]
    fn racing_threads_never_overdraw() {
        let ratio = std::sync::Arc::new(Ratio::new(
            RetryBudget::new()
                .ratio(0.5)
                .min_per_second(0)
                .ttl(Duration::from_secs(60)),
        ));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let ratio = std::sync::Arc::clone(&ratio);
                std::thread::spawn(move || {
                    let mut taken = 0;
                    for _ in 0..20_000 {
                        ratio.deposit();
                        taken += usize::from(ratio.withdraw());
                    }
                    taken
                })
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(
            taken <= 20_000,
            "{taken} withdrawals for 40 000 deposits of 0.5"
        );
        assert!(taken >= 19_000, "{taken}: deposits were lost");
    }

    #[test]
    fn throttle_arithmetic() {
        let tokens = Tokens::new(Throttle::new(10, 0.5));
        tokens.failure();
        assert!(tokens.allows());
        for _ in 0..4 {
            tokens.failure();
        }
        assert!(!tokens.allows(), "5 of 10 left: at the threshold");
        tokens.success();
        assert!(tokens.allows(), "5.5 > 5");
    }
}

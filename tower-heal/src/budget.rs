//! Retry budgets: a cap on retries shared by every clone of a layer, so a failing dependency
//! sees a bounded extra load instead of a retry storm.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

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
/// A deposit costs one clock read and two atomic operations (time is kept in 16 slots over
/// the ttl, as tower's budget does); a withdrawal takes a lock.
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
/// Invariants: a deposit lands in the slot current at its own instant (it rotates first when
/// the current slot has ended), so it lives its ttl, never less; rotation (clearing the slots
/// that expired, moving `current`) happens under `rotation`, and only there. A deposit racing
/// a rotation may land in the slot just left, which only makes it expire a slot early.
#[derive(Debug)]
pub(crate) struct Ratio {
    deposit: i64,
    reserve: i64,
    slot_length: Duration,
    slots: [AtomicI64; SLOTS],
    current: AtomicUsize,
    /// The origin of `slot_end`.
    base: Instant,
    /// When the current slot ends, in nanoseconds from `base`: a deposit at or after it
    /// rotates first.
    slot_end: AtomicU64,
    /// When the current slot began.
    rotation: Mutex<Instant>,
}

impl Ratio {
    fn new(config: RetryBudget) -> Self {
        let ttl_seconds = config.ttl.as_secs_f64();
        let slot_length = config.ttl / SLOTS as u32;
        let base = Instant::now();
        Self {
            // Invariant: validated to lie in 0..=1000, so this fits.
            deposit: (config.ratio * UNIT as f64).round() as i64,
            reserve: (f64::from(config.min_per_second) * ttl_seconds * UNIT as f64).round() as i64,
            slot_length,
            slots: Default::default(),
            current: AtomicUsize::new(0),
            base,
            slot_end: AtomicU64::new(nanos(slot_length)),
            rotation: Mutex::new(base),
        }
    }

    /// One clock read and two atomic operations; the lock only when a slot has ended.
    #[inline]
    fn deposit(&self) {
        let now = Instant::now();
        if nanos(now.saturating_duration_since(self.base)) >= self.slot_end.load(Ordering::Relaxed)
        {
            self.rotate_now(now);
        }
        self.slots[self.current.load(Ordering::Relaxed) % SLOTS]
            .fetch_add(self.deposit, Ordering::Relaxed);
    }

    #[cold]
    #[inline(never)]
    fn rotate_now(&self, now: Instant) {
        // Contended: the other thread is rotating to about the same instant.
        if let Ok(mut start) = self.rotation.try_lock() {
            self.rotate(&mut start, now);
        }
    }

    fn rotate(&self, start: &mut Instant, now: Instant) {
        let elapsed = now.saturating_duration_since(*start);
        let passed = (elapsed.as_nanos() / self.slot_length.as_nanos().max(1)) as usize;
        if passed == 0 {
            return;
        }
        let current = self.current.load(Ordering::Relaxed);
        for step in 1..=passed.min(SLOTS) {
            self.slots[(current + step) % SLOTS].store(0, Ordering::Relaxed);
        }
        self.current
            .store((current + passed) % SLOTS, Ordering::Relaxed);
        if passed >= SLOTS {
            *start = now;
        } else {
            // Invariant: passed < SLOTS, so the product stays within the elapsed time.
            *start += self.slot_length * passed as u32;
        }
        let end = start.saturating_duration_since(self.base) + self.slot_length;
        self.slot_end.store(nanos(end), Ordering::Relaxed);
    }

    fn withdraw(&self) -> bool {
        let mut start = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
        self.rotate(&mut start, Instant::now());
        let balance: i64 = self
            .slots
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .sum();
        if balance + self.reserve >= UNIT {
            self.slots[self.current.load(Ordering::Relaxed) % SLOTS]
                .fetch_sub(UNIT, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
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

#[cfg(test)]
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

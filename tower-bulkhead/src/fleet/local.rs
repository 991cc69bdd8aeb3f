//! The in-process [`BudgetStore`]: what a fleet budget falls back to, and the reference its
//! shared stores are tested against.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{BudgetStore, Grant};

/// A rate budget (GCRA: `refill` tokens per `period`, up to `burst`) and an in-flight budget
/// (`capacity` tokens) in this process.
///
/// ```
/// use std::time::Duration;
/// use tower_bulkhead::fleet::{BudgetStore, LocalBudget};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let budget = LocalBudget::new(100, Duration::from_secs(60), 100, 10);
/// assert!(budget.take(60).await.allowed);
/// let refused = budget.take(60).await;
/// assert!(!refused.allowed);
/// assert!(refused.retry_after > Duration::ZERO);
/// # }
/// ```
#[derive(Debug)]
pub struct LocalBudget {
    /// Nanoseconds per token.
    interval: f64,
    /// `burst × interval`.
    tolerance: f64,
    /// The theoretical arrival time, in ns after `origin`.
    tat: Mutex<f64>,
    origin: Instant,
    capacity: u64,
    in_use: AtomicU64,
}

impl LocalBudget {
    /// `refill` tokens every `period`, at most `burst` at once (starting full), and
    /// `capacity` tokens in flight. Zero values are raised to 1 (1 ns for the period).
    #[must_use]
    pub fn new(refill: u64, period: Duration, burst: u64, capacity: u64) -> Self {
        let interval = period.max(Duration::from_nanos(1)).as_nanos() as f64 / refill.max(1) as f64;
        Self {
            interval,
            tolerance: interval * burst.max(1) as f64,
            tat: Mutex::new(0.0),
            origin: Instant::now(),
            capacity: capacity.max(1),
            in_use: AtomicU64::new(0),
        }
    }

    fn now(&self) -> f64 {
        self.origin.elapsed().as_nanos() as f64
    }

    fn remaining(&self, tat: f64, now: f64) -> u64 {
        ((self.tolerance - (tat - now)) / self.interval)
            .floor()
            .max(0.0) as u64
    }
}

impl BudgetStore for LocalBudget {
    async fn take(&self, cost: u64) -> Grant {
        let now = self.now();
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        let base = tat.max(now);
        let new = base + cost as f64 * self.interval;
        if new - now > self.tolerance {
            let wait = new - self.tolerance - now;
            return Grant::refused(Duration::from_nanos(wait.ceil() as u64));
        }
        *tat = new;
        Grant::allowed(self.remaining(new, now))
    }

    async fn settle(&self, estimate: u64, actual: u64) {
        let now = self.now();
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        let delta = (actual as f64 - estimate as f64) * self.interval;
        *tat = (tat.max(now) + delta).max(now);
    }

    async fn lease(&self, _id: u64, cost: u64) -> Grant {
        let capacity = self.capacity;
        match self
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(cost).filter(|&total| total <= capacity)
            }) {
            Ok(used) => Grant::allowed(capacity - used - cost),
            // No expiry to wait for in-process: a lease ends with its call.
            Err(_) => Grant::refused(Duration::ZERO),
        }
    }

    async fn release(&self, _id: u64, cost: u64) {
        let _ = self
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(cost))
            });
    }
}

//! Handles: read a compartment's use and change its limits while it runs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ConfigError;
use crate::compartment::Compartment;
use crate::config::{MAX_CONCURRENT, MAX_TOKENS, count, seconds};

/// A handle on one compartment: what it holds now, and live changes of its limits.
///
/// Lowering a limit never blocks and never cancels anything: calls in flight above the new
/// limit finish normally, and no call is admitted until the compartment is under it again.
/// Raising one admits waiters at once.
///
/// ```
/// use tower_bulkhead::BulkheadLayer;
///
/// let layer = BulkheadLayer::builder().max_concurrent(25).token_budget(1000).build().unwrap();
/// let handle = layer.handle();
/// handle.set_max_concurrent(5).unwrap();
/// assert_eq!(handle.max_concurrent(), 5);
/// assert_eq!(handle.tokens_in_use(), Some(0));
/// assert!(handle.set_max_concurrent(0).is_err());
/// ```
#[derive(Clone)]
#[must_use]
pub struct BulkheadHandle {
    compartment: Arc<Compartment>,
}

impl BulkheadHandle {
    pub(crate) const fn new(compartment: Arc<Compartment>) -> Self {
        Self { compartment }
    }

    /// The layer's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.compartment.common.name
    }

    /// The key of a per-key compartment, as shown in events (`Debug` of the key).
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.compartment.key.as_deref()
    }

    /// Calls holding a permit (in flight, or streaming their body).
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        self.compartment.in_flight()
    }

    /// Calls waiting for room.
    #[must_use]
    pub fn waiters(&self) -> u32 {
        self.compartment.waiters()
    }

    /// The concurrency limit.
    #[must_use]
    pub fn max_concurrent(&self) -> u32 {
        self.compartment.max_concurrent()
    }

    /// Changes the concurrency limit.
    ///
    /// # Errors
    /// Zero, or more than [`MAX_CONCURRENT`].
    pub fn set_max_concurrent(&self, value: u32) -> Result<(), ConfigError> {
        count("max_concurrent", value.into(), MAX_CONCURRENT.into())?;
        self.compartment.set_max_concurrent(value);
        Ok(())
    }

    /// Changes how long calls may wait (calls already waiting keep their deadline).
    ///
    /// # Errors
    /// A negative or too long duration.
    pub fn set_max_wait(&self, value: Duration) -> Result<(), ConfigError> {
        seconds("max_wait_seconds", value.as_secs_f64(), true)?;
        self.compartment.set_max_wait(value);
        Ok(())
    }

    /// Tokens held in the in-flight budget (`None` without one). It may exceed the budget
    /// when calls settled to a higher actual cost than estimated.
    #[must_use]
    pub fn tokens_in_use(&self) -> Option<u64> {
        self.compartment.tokens_in_use()
    }

    /// The in-flight budget (`None` without one).
    #[must_use]
    pub fn token_budget(&self) -> Option<u64> {
        self.compartment.token_budget()
    }

    /// Changes the in-flight budget. Waiters costing more than the new budget are refused at
    /// once ([`Reason::CostExceedsCapacity`](crate::Reason::CostExceedsCapacity)).
    ///
    /// # Errors
    /// Zero or more than [`MAX_TOKENS`]; [`ConfigError::Missing`] if the compartment was
    /// built without an in-flight budget.
    pub fn set_token_budget(&self, value: u64) -> Result<(), ConfigError> {
        count("token_budget", value, MAX_TOKENS)?;
        if self.compartment.set_token_budget(value) {
            Ok(())
        } else {
            Err(ConfigError::Missing {
                field: "token_budget",
                needs: "a compartment built with a token_budget",
            })
        }
    }

    /// Tokens the rate budget holds now, refills included (negative: debt; `None` without a
    /// rate budget).
    #[must_use]
    pub fn rate_tokens_available(&self) -> Option<i64> {
        self.compartment.rate_available()
    }

    /// The rate budget's `(refill_tokens, burst_tokens)` (`None` without one).
    #[must_use]
    pub fn rate_limits(&self) -> Option<(u64, u64)> {
        self.compartment.rate_limits()
    }

    /// Changes the rate budget's refill and burst (the period stays). The tokens held stay,
    /// up to the new burst; waiters costing more than the new burst are refused at once
    /// ([`Reason::CostExceedsCapacity`](crate::Reason::CostExceedsCapacity)).
    ///
    /// # Errors
    /// Zero or more than [`MAX_TOKENS`], a burst that would take more than about 146 years
    /// to refill; [`ConfigError::Missing`] if the compartment was built without a rate budget.
    pub fn set_refill(&self, refill_tokens: u64, burst_tokens: u64) -> Result<(), ConfigError> {
        count("refill_tokens", refill_tokens, MAX_TOKENS)?;
        count("burst_tokens", burst_tokens, MAX_TOKENS)?;
        if let Some(period) = self.compartment.rate_period() {
            crate::config::check_rate(refill_tokens, period, burst_tokens)?;
        }
        if self.compartment.set_rate(refill_tokens, burst_tokens) {
            Ok(())
        } else {
            Err(ConfigError::Missing {
                field: "refill_tokens",
                needs: "a compartment built with refill_tokens",
            })
        }
    }
}

impl fmt::Debug for BulkheadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BulkheadHandle")
            .field(&self.compartment)
            .finish()
    }
}

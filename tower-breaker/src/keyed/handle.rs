//! The handle on a per-key layer's breakers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{CircuitBreakerHandle, ConfigError, State};

use super::Keys;

/// A handle on the breakers of a [`KeyedCircuitBreakerLayer`](crate::KeyedCircuitBreakerLayer).
///
/// Threshold changes apply to every key, present and future.
#[derive(Clone)]
#[must_use]
pub struct KeyedCircuitBreakerHandle<K> {
    pub(super) keys: Arc<dyn Keys<K>>,
}

impl<K> KeyedCircuitBreakerHandle<K> {
    /// The layer's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.keys.name()
    }

    /// Live keys.
    #[must_use]
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// The state of `key`'s breaker, if the key is live.
    #[must_use]
    pub fn state(&self, key: &K) -> Option<State> {
        self.keys.get(key).map(|b| b.state())
    }

    /// A handle on `key`'s breaker, if the key is live. While it exists the key is not evicted.
    #[must_use]
    pub fn get(&self, key: &K) -> Option<CircuitBreakerHandle> {
        self.keys.get(key).map(CircuitBreakerHandle::new)
    }

    /// Closes every key's circuit with clean windows, and the overflow breaker's.
    pub fn reset_all(&self) {
        for breaker in self.keys.all() {
            breaker.force(State::Closed);
        }
    }

    /// Changes `failure_threshold` for every key.
    ///
    /// # Errors
    /// As [`CircuitBreakerHandle::set_failure_threshold`].
    pub fn set_failure_threshold(&self, value: Option<u32>) -> Result<(), ConfigError> {
        self.keys.thresholds().set_failure_threshold(value)
    }

    /// Changes `failure_rate_threshold` for every key.
    ///
    /// # Errors
    /// As [`CircuitBreakerHandle::set_failure_rate_threshold`].
    pub fn set_failure_rate_threshold(&self, value: Option<f64>) -> Result<(), ConfigError> {
        self.keys.thresholds().set_failure_rate_threshold(value)
    }

    /// Changes the reset timeout for every key.
    ///
    /// # Errors
    /// Zero.
    pub fn set_reset_timeout(&self, value: Duration) -> Result<(), ConfigError> {
        self.keys.thresholds().set_reset_timeout(value)
    }

    /// Changes `half_open_max_calls` for every key.
    ///
    /// # Errors
    /// Zero, or more than 65535.
    pub fn set_half_open_max_calls(&self, value: u32) -> Result<(), ConfigError> {
        self.keys.thresholds().set_half_open_max_calls(value)
    }

    /// Changes `success_threshold` for every key.
    ///
    /// # Errors
    /// Zero, or more than 65535.
    pub fn set_success_threshold(&self, value: u32) -> Result<(), ConfigError> {
        self.keys.thresholds().set_success_threshold(value)
    }
}

impl<K> fmt::Debug for KeyedCircuitBreakerHandle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerHandle")
            .field("name", &self.name())
            .field("keys", &self.keys())
            .finish()
    }
}

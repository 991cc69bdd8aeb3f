//! The handle on a per-key layer's compartments.

use std::fmt;
use std::sync::Arc;

use crate::config::{MAX_CONCURRENT, count};
use crate::{BulkheadHandle, ConfigError};

use super::Keys;

/// A handle on the compartments of a [`KeyedBulkheadLayer`](crate::KeyedBulkheadLayer).
#[derive(Clone)]
#[must_use]
pub struct KeyedBulkheadHandle<K> {
    pub(super) keys: Arc<dyn Keys<K>>,
}

impl<K> KeyedBulkheadHandle<K> {
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

    /// A handle on `key`'s compartment, if the key is live. While it exists the key is not
    /// evicted.
    pub fn get(&self, key: &K) -> Option<BulkheadHandle> {
        self.keys.get(key).map(BulkheadHandle::new)
    }

    /// A handle on the shared overflow compartment.
    pub fn overflow(&self) -> BulkheadHandle {
        BulkheadHandle::new(self.keys.overflow())
    }

    /// Calls holding a permit, over every live key and the overflow compartment.
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        let keys: u64 = self
            .keys
            .all()
            .iter()
            .map(|(c, _)| u64::from(c.in_flight()))
            .sum();
        keys + u64::from(self.keys.overflow().in_flight())
    }

    /// Tokens held in in-flight budgets, over every live key and the overflow compartment.
    #[must_use]
    pub fn tokens_in_use(&self) -> u64 {
        let keys: u64 = self
            .keys
            .all()
            .iter()
            .filter_map(|(c, _)| c.tokens_in_use())
            .sum();
        keys + self.keys.overflow().tokens_in_use().unwrap_or(0)
    }

    /// Calls waiting, over every live key and the overflow compartment.
    #[must_use]
    pub fn waiters(&self) -> u64 {
        let keys: u64 = self
            .keys
            .all()
            .iter()
            .map(|(c, _)| u64::from(c.waiters()))
            .sum();
        keys + u64::from(self.keys.overflow().waiters())
    }

    /// Changes the default concurrency limit: for keys created from now on, every live key
    /// without a configuration of its own, and the overflow compartment. Never blocks or
    /// cancels (see [`BulkheadHandle`]).
    ///
    /// # Errors
    /// Zero, or more than [`MAX_CONCURRENT`].
    pub fn set_max_concurrent(&self, value: u32) -> Result<(), ConfigError> {
        count("max_concurrent", value.into(), MAX_CONCURRENT.into())?;
        self.keys.set_default_max_concurrent(value);
        for (compartment, named) in self.keys.all() {
            if !named {
                compartment.set_max_concurrent(value);
            }
        }
        self.keys.overflow().set_max_concurrent(value);
        Ok(())
    }
}

impl<K> fmt::Debug for KeyedBulkheadHandle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkheadHandle")
            .field("name", &self.name())
            .field("keys", &self.keys())
            .finish()
    }
}

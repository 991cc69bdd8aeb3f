//! The first call's hold on its key, handed to the codec to store the answer through.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::flight::Leader;
use crate::store::{Record, ResultStore};

/// Where the answer to the first call with a key goes: [`store`](Self::store) it, or drop the
/// slot to store nothing.
///
/// While the slot lives, duplicates with the same key wait (up to the layer's `max_wait`);
/// storing or dropping it releases them: they then replay what was stored, or run themselves
/// if nothing was. A codec that streams a body keeps the slot in the body, so the key is held
/// until the body ends or is dropped.
pub struct StoreSlot {
    store: Arc<dyn ResultStore>,
    ttl: Option<Duration>,
    fingerprint: u64,
    leader: Leader,
}

impl StoreSlot {
    pub(crate) fn new(
        store: Arc<dyn ResultStore>,
        ttl: Option<Duration>,
        fingerprint: u64,
        leader: Leader,
    ) -> Self {
        Self {
            store,
            ttl,
            fingerprint,
            leader,
        }
    }

    /// The idempotency key (as the codec made it, caller scope included).
    #[must_use]
    pub fn key(&self) -> &str {
        self.leader.key()
    }

    /// Stores `bytes` as the answer to replay for this key, then releases the key. A store
    /// that refuses them (too large, unwritable) is logged; duplicates then run themselves.
    pub fn store(self, bytes: Vec<u8>) {
        let mut store_key = String::with_capacity(5 + self.key().len());
        store_key.push_str("idem:");
        store_key.push_str(self.key());
        let record = Record::new(self.fingerprint, bytes);
        // Committed before the key is released, so a duplicate woken next finds it.
        if let Err(error) = self.store.put(&store_key, record, self.ttl) {
            tracing::warn!(target: "tower_heal", key = self.key(), %error, "response not stored; a duplicate will run again");
        }
    }
}

impl fmt::Debug for StoreSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSlot")
            .field("key", &self.key())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

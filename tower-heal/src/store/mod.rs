//! Result stores: where idempotent responses and workflow checkpoints are kept.
//!
//! One trait, [`ResultStore`], with three implementations: [`MemoryStore`] (the default,
//! bounded in entries and bytes); with the `sqlite` feature, `SqliteStore`, a durable
//! embedded store that survives a process crash; with the `redis` feature, `RedisStore`, one
//! store for every replica of a service, which also claims idempotency keys fleet-wide
//! ([`ResultStore::claim`]) so a duplicate sent to another replica does not run the handler
//! again.

mod error;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

pub use error::StoreError;
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisFailure, RedisStore, RedisStoreBuilder, STORE_FAILURES_TOTAL};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// What [`ResultStore::claim`] gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreClaim {
    /// The store is not shared with other processes (or failed open): nothing to claim.
    Unshared,
    /// This process holds the key; release it with this token.
    Held(u64),
    /// Another process holds the key: its call is in progress.
    Busy,
}

/// A stored result: the bytes, and the fingerprint of the request that produced them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// A hash of what produced the value (for idempotency keys: method, path, body), so a key
    /// reused for something else is told apart.
    pub fingerprint: u64,
    /// The stored bytes.
    pub value: Arc<[u8]>,
}

impl Record {
    /// A record of `value` produced by a request with `fingerprint`.
    #[must_use]
    pub fn new(fingerprint: u64, value: impl Into<Arc<[u8]>>) -> Self {
        Self {
            fingerprint,
            value: value.into(),
        }
    }
}

/// Where completed results are kept, by key.
///
/// Calls are synchronous and short: a map operation in memory, one small transaction on disk
/// (the SQLite store waits for its commit, a few milliseconds with a disk flush, after handing
/// the tokio worker's other tasks to another thread). A store of your own that blocks should
/// do the same (`tokio::task::block_in_place` on a multi-thread runtime). A durable store has committed a record when [`put`](Self::put) returns, so a
/// result the caller has seen is never lost, and never returns a half-written or damaged
/// record: it is ignored (absent) instead.
pub trait ResultStore: Send + Sync + 'static {
    /// The record under `key`, if there is one that has not expired.
    ///
    /// # Errors
    /// The store could not be read.
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError>;

    /// Stores `record` under `key`, replacing any earlier one; it expires after `ttl`
    /// (`None`: kept until removed or evicted).
    ///
    /// # Errors
    /// The record is larger than the store takes, or the store could not be written.
    fn put(&self, key: &str, record: Record, ttl: Option<Duration>) -> Result<(), StoreError>;

    /// Removes the record under `key`, if any.
    ///
    /// # Errors
    /// The store could not be written.
    fn remove(&self, key: &str) -> Result<(), StoreError>;

    /// Claims `key` for one call in progress across every process sharing the store (a store
    /// shared by replicas, like `RedisStore`); the claim expires on its own if the process
    /// dies. The default, for a store of one process: [`StoreClaim::Unshared`].
    ///
    /// # Errors
    /// The store could not be reached.
    fn claim(&self, key: &str) -> Result<StoreClaim, StoreError> {
        let _ = key;
        Ok(StoreClaim::Unshared)
    }

    /// Releases a claim [`claim`](Self::claim) gave as `Held(token)`; a claim held by another
    /// token is left alone. Failures are logged by the store; the claim then expires.
    fn release(&self, key: &str, token: u64) {
        let _ = (key, token);
    }
}

impl<T: ResultStore + ?Sized> ResultStore for Arc<T> {
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        (**self).get(key)
    }

    fn put(&self, key: &str, record: Record, ttl: Option<Duration>) -> Result<(), StoreError> {
        (**self).put(key, record, ttl)
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        (**self).remove(key)
    }

    fn claim(&self, key: &str) -> Result<StoreClaim, StoreError> {
        (**self).claim(key)
    }

    fn release(&self, key: &str, token: u64) {
        (**self).release(key, token);
    }
}

/// A 64-bit FNV-1a hash, stable across Rust versions and platforms (it is written to disk).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Writes a length first, so `("ab", "c")` and `("a", "bc")` differ.
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.write(&(bytes.len() as u64).to_le_bytes()).write(bytes)
    }

    pub(crate) const fn finish(&self) -> u64 {
        self.0
    }
}

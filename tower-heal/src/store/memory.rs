//! The in-memory result store: bounded, with expiry on tokio's clock.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{Record, ResultStore, StoreError};

struct Entry {
    record: Record,
    expires: Option<Instant>,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Box<str>, Entry>,
    /// Write order, oldest first: what goes when the store is full.
    order: BTreeMap<u64, Box<str>>,
    /// Entries with a ttl by expiry, soonest first: the expired go before any live one.
    expiries: BTreeMap<(Instant, u64), Box<str>>,
    bytes: usize,
    next: u64,
    /// Live (unexpired) entries evicted so far.
    evicted_live: u64,
}

impl Inner {
    fn take(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.order.remove(&old.seq);
            if let Some(at) = old.expires {
                self.expiries.remove(&(at, old.seq));
            }
            self.bytes -= cost(key, &old.record);
        }
    }
}

fn cost(key: &str, record: &Record) -> usize {
    key.len() + record.value.len()
}

/// The default [`ResultStore`]: a map in memory, bounded in entries and bytes, entries
/// expiring on tokio's clock (so paused-time tests control it). Lost when the process ends.
///
/// When a new entry does not fit, expired entries go first, then the oldest written. Evicting
/// an entry that has not expired yet breaks a promise (an idempotency key answered within its
/// `ttl` can then run again), so it is never silent: it counts in
/// `heal_store_evictions_total` and logs a warning (the 1st, 2nd, 4th, 8th... time). Size the
/// store for the keys written within one `ttl` (the default 10,000 entries hold a day's keys
/// at 7 requests a minute), use a durable store, or shorten the `ttl`: the bound keeps memory
/// safe, the ttl is kept only while the bound allows.
///
/// ```
/// use std::time::Duration;
/// use tower_heal::store::{MemoryStore, Record, ResultStore};
///
/// let store = MemoryStore::new(1000, 1 << 20);
/// store.put("order-12345", Record::new(7, b"charged".to_vec()), Some(Duration::from_secs(86_400))).unwrap();
/// assert_eq!(&*store.get("order-12345").unwrap().unwrap().value, b"charged");
/// ```
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
    evictions: metrics::Counter,
}

impl MemoryStore {
    /// A store of at most `max_entries` entries (at least 1) and `max_bytes` bytes of keys and
    /// values.
    #[must_use]
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_entries: max_entries.max(1),
            max_bytes,
            evictions: crate::metrics::store_eviction_counter(),
        }
    }

    /// Entries kept now (expired ones included until they are next touched).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the store is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values kept now.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation below leaves the maps consistent before it can panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    /// 10,000 entries, 64 MiB.
    fn default() -> Self {
        Self::new(10_000, 64 << 20)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.len())
            .finish()
    }
}

impl ResultStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let mut inner = self.lock();
        let Some(entry) = inner.map.get(key) else {
            return Ok(None);
        };
        if entry.expires.is_some_and(|at| at <= Instant::now()) {
            inner.take(key);
            return Ok(None);
        }
        Ok(Some(entry.record.clone()))
    }

    fn put(&self, key: &str, record: Record, ttl: Option<Duration>) -> Result<(), StoreError> {
        let size = cost(key, &record);
        if size > self.max_bytes {
            return Err(StoreError::TooLarge {
                bytes: size,
                max: self.max_bytes,
            });
        }
        let now = Instant::now();
        let expires = ttl.map(|ttl| {
            now.checked_add(ttl)
                .unwrap_or(now + Duration::from_secs(86_400 * 365 * 30))
        });
        let mut inner = self.lock();
        inner.take(key);
        // Expired entries go first, then the oldest, until the new one fits.
        while inner.map.len() >= self.max_entries || inner.bytes + size > self.max_bytes {
            let expired = inner
                .expiries
                .first_key_value()
                .filter(|((at, _), _)| *at <= now)
                .map(|(_, k)| k.clone());
            let victim = match expired {
                Some(k) => k,
                None => match inner.order.first_key_value() {
                    Some((_, k)) => {
                        let k = k.clone();
                        inner.evicted_live += 1;
                        self.evictions.increment(1);
                        if inner.evicted_live.is_power_of_two() {
                            tracing::warn!(
                                target: "tower_heal",
                                evicted = inner.evicted_live,
                                max_entries = self.max_entries,
                                max_bytes = self.max_bytes,
                                "result store full: an entry was evicted before its ttl; size the store for the ttl"
                            );
                        }
                        k
                    }
                    None => break,
                },
            };
            inner.take(&victim);
        }
        let seq = inner.next;
        inner.next += 1;
        let key: Box<str> = key.into();
        inner.order.insert(seq, key.clone());
        if let Some(at) = expires {
            inner.expiries.insert((at, seq), key.clone());
        }
        inner.bytes += size;
        inner.map.insert(
            key,
            Entry {
                record,
                expires,
                seq,
            },
        );
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.lock().take(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> Record {
        Record::new(0, vec![0u8; n])
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_ttl() {
        let store = MemoryStore::new(10, 1000);
        store
            .put("k", rec(1), Some(Duration::from_secs(10)))
            .unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(store.get("k").unwrap().is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(store.get("k").unwrap().is_none());
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn bounded_in_entries_oldest_first() {
        let store = MemoryStore::new(2, 1000);
        for key in ["a", "b", "c"] {
            store.put(key, rec(1), None).unwrap();
        }
        assert_eq!(store.len(), 2);
        assert!(store.get("a").unwrap().is_none());
        assert!(store.get("c").unwrap().is_some());
    }

    #[test]
    fn bounded_in_bytes() {
        let store = MemoryStore::new(100, 25);
        store.put("a", rec(10), None).unwrap();
        store.put("b", rec(10), None).unwrap();
        store.put("c", rec(10), None).unwrap();
        assert!(store.bytes() <= 25);
        assert!(store.get("a").unwrap().is_none());
        assert!(matches!(
            store.put("d", rec(100), None),
            Err(StoreError::TooLarge { max: 25, .. })
        ));
    }

    #[test]
    fn replacing_a_key_keeps_the_byte_count() {
        let store = MemoryStore::new(10, 1000);
        store.put("a", rec(10), None).unwrap();
        store.put("a", rec(20), None).unwrap();
        assert_eq!((store.len(), store.bytes()), (1, 21));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_go_first_and_a_live_eviction_is_counted() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let store = metrics::with_local_recorder(&recorder, || MemoryStore::new(2, 1000));
        let evicted = || {
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .find(|(k, ..)| k.key().name() == "heal_store_evictions_total")
                .map_or(0, |(.., v)| match v {
                    DebugValue::Counter(n) => n,
                    _ => 0,
                })
        };
        let ttl = Some(Duration::from_secs(10));
        store.put("old", rec(1), None).unwrap();
        store
            .put("short", rec(1), Some(Duration::from_secs(1)))
            .unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        // Full: the expired entry goes, not the older live one; nothing counted.
        store.put("a", rec(1), ttl).unwrap();
        assert!(store.get("old").unwrap().is_some());
        assert_eq!(evicted(), 0);
        // Full of live entries: the oldest goes, and it is counted.
        store.put("b", rec(1), ttl).unwrap();
        assert!(store.get("old").unwrap().is_none());
        assert_eq!(evicted(), 1);
        assert_eq!(store.len(), 2);
    }
}

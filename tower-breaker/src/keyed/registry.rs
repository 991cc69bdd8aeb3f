//! The key map of a per-key layer: one breaker per key, a cap on keys, idle eviction.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::State;
use crate::clock::nanos;
use crate::common::Common;
use crate::handle::{Breaker, Thresholds};
use crate::machine::Core;

/// The breakers of a per-key layer.
pub(super) struct Registry<K, F, C, L> {
    pub(super) common: Arc<Common<C, L>>,
    pub(super) key: F,
    pub(super) map: RwLock<HashMap<K, Arc<Core<C, L>>>>,
    /// Shared by every key that arrives while the map is full of keys with calls in flight.
    pub(super) overflow: Arc<Core<C, L>>,
    pub(super) next_sweep_ns: AtomicU64,
    pub(super) created: AtomicU64,
}

impl<K: Hash + Eq + fmt::Debug, F, C, L> Registry<K, F, C, L> {
    pub(super) fn breaker<Req>(&self, request: &Req) -> Arc<Core<C, L>>
    where
        F: Fn(&Req) -> K,
    {
        let key = (self.key)(request);
        let now = self.common.now_ns();
        self.sweep_if_due(now);
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(core) = map.get(&key) {
            core.last_used_ns.store(now, Relaxed);
            return Arc::clone(core);
        }
        drop(map);
        self.insert(key, now)
    }

    pub(super) fn insert(&self, key: K, now: u64) -> Arc<Core<C, L>> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(core) = map.get(&key) {
            return Arc::clone(core);
        }
        let max = self.common.max_keys as usize;
        if map.len() >= max {
            self.evict(&mut map, now, true);
        }
        if map.len() >= max {
            return Arc::clone(&self.overflow);
        }
        let salt = self.created.fetch_add(1, Relaxed) + 1;
        let label: Arc<str> = format!("{key:?}").into();
        let core = Arc::new(Core::new(Arc::clone(&self.common), Some(label), salt));
        map.insert(key, Arc::clone(&core));
        self.common.metrics.keys(map.len());
        core
    }

    pub(super) fn sweep_if_due(&self, now: u64) {
        let due = self.next_sweep_ns.load(Relaxed);
        if now < due {
            return;
        }
        let every = nanos(self.common.key_idle_timeout / 2).max(nanos(Duration::from_millis(100)));
        if self
            .next_sweep_ns
            .compare_exchange(due, now.saturating_add(every), Relaxed, Relaxed)
            .is_ok()
        {
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            self.evict(&mut map, now, false);
        }
    }

    /// Forgets idle keys that hold nothing back; when `make_room`, also the least recently
    /// used closed key if none was idle long enough.
    ///
    /// Never forgotten, however long idle:
    /// - a key with a call in flight or a live handle (its breaker is referenced from outside
    ///   the map);
    /// - a state an operator set (forced open, disabled, metrics only): it holds until reset;
    /// - an open circuit within its open period: keys come from requests, so forgetting it
    ///   would let callers close circuits by sending new keys.
    ///
    /// A circuit past its open period, or half-open with no probe in flight, holds nothing
    /// back (its next call would be a probe): it is forgotten once idle for
    /// `key_idle_timeout`, like a closed key, but never to make room. So circuits that opened
    /// and were then abandoned fill the map for at most their open period plus
    /// `key_idle_timeout`, not for ever.
    pub(super) fn evict(&self, map: &mut HashMap<K, Arc<Core<C, L>>>, now: u64, make_room: bool) {
        let idle = nanos(self.common.key_idle_timeout);
        // Only the map refers to it: no call in flight, no handle.
        let unreferenced = |core: &Arc<Core<C, L>>| Arc::strong_count(core) == 1;
        map.retain(|_, core| {
            let forgettable = unreferenced(core)
                && now.saturating_sub(core.last_used_ns.load(Relaxed)) >= idle
                && matches!(core.state_at(now), State::Closed | State::HalfOpen);
            !forgettable
        });
        if make_room && map.len() >= self.common.max_keys as usize {
            let closed =
                |core: &Arc<Core<C, L>>| unreferenced(core) && core.stored_state() == State::Closed;
            let oldest = map
                .values()
                .filter(|core| closed(core))
                .map(|core| core.last_used_ns.load(Relaxed))
                .min();
            if let Some(oldest) = oldest {
                let mut removed = false;
                map.retain(|_, core| {
                    let remove =
                        !removed && closed(core) && core.last_used_ns.load(Relaxed) == oldest;
                    removed |= remove;
                    !remove
                });
            }
        }
        self.common.metrics.keys(map.len());
    }
}

/// What a keyed handle needs, without the key function's and classifier's types.
pub(super) trait Keys<K>: Send + Sync {
    fn get(&self, key: &K) -> Option<Arc<dyn Breaker>>;
    /// Every key's breaker, and the overflow breaker.
    fn all(&self) -> Vec<Arc<dyn Breaker>>;
    fn len(&self) -> usize;
    fn thresholds(&self) -> Thresholds<'_>;
    fn name(&self) -> &str;
}

impl<K, F, C, L> Keys<K> for Registry<K, F, C, L>
where
    K: Hash + Eq + fmt::Debug + Send + Sync,
    F: Send + Sync,
    C: Send + Sync + 'static,
    L: Send + Sync + 'static,
{
    fn get(&self, key: &K) -> Option<Arc<dyn Breaker>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .map(|core| Arc::clone(core) as Arc<dyn Breaker>)
    }
    fn all(&self) -> Vec<Arc<dyn Breaker>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.values()
            .chain([&self.overflow])
            .map(|core| Arc::clone(core) as Arc<dyn Breaker>)
            .collect()
    }
    fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
    fn thresholds(&self) -> Thresholds<'_> {
        Thresholds::of(&self.common)
    }
    fn name(&self) -> &str {
        &self.common.name
    }
}

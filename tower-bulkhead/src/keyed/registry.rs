//! The key map of a per-key layer: live keys, the eviction hand, the overflow compartment.

use std::collections::HashMap;

/// The key map's hasher: foldhash with a random seed per map (SipHash, std's default, costs
/// several times more per lookup). foldhash is only "minimally" HashDoS-resistant; the map
/// is also bounded (`max_keys`, eviction), so a flood of colliding keys slows lookups in a
/// table of bounded size at worst, and never grows memory.
pub(super) type KeyMap<K> = HashMap<Arc<K>, Slot, foldhash::fast::RandomState>;
use std::collections::VecDeque;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, PoisonError, RwLock};

use crate::Overflow;
use crate::compartment::{Common, Compartment};
use crate::config::Limits;

/// A live key of the map.
pub(super) struct Slot {
    pub(super) compartment: Arc<Compartment>,
    /// A key with a configuration of its own: kept for the layer's life (their number is
    /// bounded by the configuration), so it is never evicted and never shares the overflow
    /// compartment; not counted against `max_keys`, not on the eviction hand's ring.
    pub(super) named: bool,
}

/// A live key as the eviction hand sees it: the key (to remove it from the map) and its
/// compartment (so that a busy key is told without a lookup).
pub(super) struct Hand<K> {
    pub(super) key: Arc<K>,
    pub(super) compartment: Arc<Compartment>,
}

impl<K> Hand<K> {
    /// Referenced by the map and the hand only: no call in flight or waiting, no handle.
    pub(super) fn unused(&self) -> bool {
        Arc::strong_count(&self.compartment) == 2
    }

    /// Moves a use seen since the last look to `now`; whether there was one.
    pub(super) fn refresh(&self, now: u64) -> bool {
        let touched = self.compartment.touched.swap(false, Relaxed);
        if touched {
            self.compartment.last_used_ns.store(now, Relaxed);
        }
        touched
    }
}

/// The live keys, and the order the eviction hand visits them in: a clock (second chance),
/// so that making room costs O(1) amortized however many keys are busy.
///
/// Invariant: `ring` holds exactly the keys of `map` that are not named, once each, with
/// the same compartment; `named` counts the others.
pub(super) struct Live<K> {
    pub(super) map: KeyMap<K>,
    pub(super) ring: VecDeque<Hand<K>>,
    pub(super) named: usize,
}

impl<K> Live<K> {
    /// Whether the keys subject to `max_keys` fill it.
    pub(super) fn full(&self, max_keys: usize) -> bool {
        self.map.len() - self.named >= max_keys
    }
}

impl<K> Default for Live<K> {
    fn default() -> Self {
        Self {
            map: KeyMap::default(),
            ring: VecDeque::new(),
            named: 0,
        }
    }
}

/// Keys the hand visits per new key, forgetting the idle ones on its way.
pub(super) const SWEEP: usize = 4;
/// Keys the hand visits at most per new key to make room in a full map; when all of them are
/// busy the new key overflows (the hand has moved on: the next new key looks at others).
pub(super) const MAKE_ROOM: usize = 32;

/// The compartments of a per-key layer.
pub(super) struct Registry<K, F> {
    pub(super) common: Arc<Common>,
    pub(super) key: F,
    pub(super) defaults: RwLock<Limits>,
    pub(super) named: HashMap<K, Limits, foldhash::fast::RandomState>,
    pub(super) live: RwLock<Live<K>>,
    pub(super) overflow: Arc<Compartment>,
    pub(super) policy: Overflow,
    pub(super) max_keys: usize,
    pub(super) max_key_length: usize,
    pub(super) idle_ns: u64,
}

/// Writes a key's `Debug` form, refusing past `max` bytes (so a huge key costs no more).
pub(super) struct Bounded {
    pub(super) text: String,
    pub(super) max: usize,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, part: &str) -> fmt::Result {
        if self.text.len() + part.len() > self.max {
            return Err(fmt::Error);
        }
        self.text.push_str(part);
        Ok(())
    }
}

impl<K: Hash + Eq + fmt::Debug, F> Registry<K, F> {
    /// The compartment of `request`'s key; `None` when the key cannot have one and the
    /// overflow policy rejects.
    #[inline]
    pub(super) fn compartment<Req>(&self, request: &Req) -> Option<Arc<Compartment>>
    where
        F: Fn(&Req) -> K,
    {
        let key = (self.key)(request);
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = live.map.get(&key) {
            // A load before the store: a busy key's cache line is not written by every call.
            if !slot.compartment.touched.load(Relaxed) {
                slot.compartment.touched.store(true, Relaxed);
            }
            return Some(Arc::clone(&slot.compartment));
        }
        drop(live);
        self.insert(key)
    }

    /// No slot for a new key: the overflow compartment, or `None` (rejected) by policy.
    pub(super) fn overflow(&self) -> Option<Arc<Compartment>> {
        match self.policy {
            Overflow::Shared => Some(Arc::clone(&self.overflow)),
            Overflow::Reject => None,
        }
    }

    /// A key not in the map: the only place the clock is read and keys are evicted.
    #[cold]
    pub(super) fn insert(&self, key: K) -> Option<Arc<Compartment>> {
        if let Some(limits) = self.named.get(&key) {
            return Some(self.insert_named(key, limits));
        }
        let mut label = Bounded {
            text: String::new(),
            max: self.max_key_length,
        };
        if fmt::write(&mut label, format_args!("{key:?}")).is_err() {
            return self.overflow();
        }
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = live.map.get(&key) {
            return Some(Arc::clone(&slot.compartment));
        }
        let now = self.common.now_ns();
        self.sweep(&mut live, now);
        if live.full(self.max_keys) {
            return self.overflow();
        }
        let limits = self
            .defaults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let compartment = Arc::new(Compartment::new(
            &limits,
            Arc::clone(&self.common),
            Some(label.text.into()),
        ));
        let key = Arc::new(key);
        live.ring.push_back(Hand {
            key: Arc::clone(&key),
            compartment: Arc::clone(&compartment),
        });
        live.map.insert(
            key,
            Slot {
                compartment: Arc::clone(&compartment),
                named: false,
            },
        );
        self.keys_gauge(live.map.len());
        Some(compartment)
    }

    /// A named key's first call: its compartment, with its own limits, kept for good.
    pub(super) fn insert_named(&self, key: K, limits: &Limits) -> Arc<Compartment> {
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = live.map.get(&key) {
            return Arc::clone(&slot.compartment);
        }
        let label = format!("{key:?}").into();
        let compartment = Arc::new(Compartment::new(
            limits,
            Arc::clone(&self.common),
            Some(label),
        ));
        live.map.insert(
            Arc::new(key),
            Slot {
                compartment: Arc::clone(&compartment),
                named: true,
            },
        );
        live.named += 1;
        self.keys_gauge(live.map.len());
        compartment
    }

    /// Moves the hand over a few keys, forgetting those at rest and idle for the idle
    /// timeout; when the map is full, goes on (at most [`MAKE_ROOM`] keys) until one at rest
    /// is forgotten: the least recently used of those visited, since a key used since the
    /// hand's last visit gets a second chance. A busy key (a call in flight or waiting, a
    /// handle, a budget not at rest) is never forgotten.
    pub(super) fn sweep(&self, live: &mut Live<K>, now: u64) {
        let (mut idle_evicted, mut full_evicted) = (0, 0);
        // Twice round at most: a key given a second chance is looked at again.
        for visit in 0..(2 * live.ring.len()).min(MAKE_ROOM) {
            let full = live.full(self.max_keys);
            if visit >= SWEEP && !full {
                break;
            }
            let Some(hand) = live.ring.pop_front() else {
                break;
            };
            // A busy key is passed over at the cost of one read of its reference count.
            if !hand.unused() {
                live.ring.push_back(hand);
                continue;
            }
            let used = hand.refresh(now);
            let last_used = hand.compartment.last_used_ns.load(Relaxed);
            let idle = now.saturating_sub(last_used) >= self.idle_ns;
            if !used && (idle || full) && hand.compartment.at_rest(now) {
                live.map.remove(&*hand.key);
                if idle {
                    idle_evicted += 1;
                } else {
                    full_evicted += 1;
                }
            } else {
                live.ring.push_back(hand);
            }
        }
        self.evicted(idle_evicted, live.map.len(), "idle");
        self.evicted(full_evicted, live.map.len(), "full");
    }

    pub(super) fn keys_gauge(&self, live: usize) {
        self.common.metrics.keys(live);
    }

    pub(super) fn evicted(&self, evicted: usize, live: usize, cause: &'static str) {
        if evicted > 0 {
            self.keys_gauge(live);
            tracing::debug!(
                target: "tower_bulkhead",
                bulkhead = &*self.common.name,
                evicted,
                live,
                cause,
                "bulkhead evicted keys"
            );
        }
    }
}

/// What a keyed handle needs, without the key function's type.
pub(super) trait Keys<K>: Send + Sync {
    fn get(&self, key: &K) -> Option<Arc<Compartment>>;
    fn all(&self) -> Vec<(Arc<Compartment>, bool)>;
    fn len(&self) -> usize;
    fn overflow(&self) -> Arc<Compartment>;
    fn name(&self) -> &str;
    fn set_default_max_concurrent(&self, value: u32);
}

impl<K, F> Keys<K> for Registry<K, F>
where
    K: Hash + Eq + Send + Sync,
    F: Send + Sync,
{
    fn get(&self, key: &K) -> Option<Arc<Compartment>> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.map.get(key).map(|slot| Arc::clone(&slot.compartment))
    }
    fn all(&self) -> Vec<(Arc<Compartment>, bool)> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.map
            .values()
            .map(|slot| (Arc::clone(&slot.compartment), slot.named))
            .collect()
    }
    fn len(&self) -> usize {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.map.len()
    }
    fn overflow(&self) -> Arc<Compartment> {
        Arc::clone(&self.overflow)
    }
    fn name(&self) -> &str {
        &self.common.name
    }
    fn set_default_max_concurrent(&self, value: u32) {
        self.defaults
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .max_concurrent = value;
    }
}

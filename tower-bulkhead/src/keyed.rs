//! Per-key compartments: one compartment per key of the request, a cap on keys, idle
//! eviction, an overflow policy.

use std::collections::HashMap;

/// The key map's hasher: foldhash with a random seed per map (SipHash, std's default, costs
/// several times more per lookup). foldhash is only "minimally" HashDoS-resistant; the map
/// is also bounded (`max_keys`, eviction), so a flood of colliding keys slows lookups in a
/// table of bounded size at worst, and never grows memory.
type KeyMap<K> = HashMap<K, Slot, foldhash::fast::RandomState>;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_outcome::{Answer, BoxErrorAnswer, Reason};
#[cfg(feature = "http")]
use tower_outcome::{GrpcAnswer, HttpAnswer};
use tower_service::Service;

use crate::compartment::{Common, Compartment, Denied, nanos};
use crate::config::{KeyedLimits, Limits, MAX_CONCURRENT, count};
use crate::cost::TypeName;
use crate::future::ResponseFuture;
#[cfg(feature = "http")]
use crate::hold::UntilBodyEnd;
use crate::{
    ActualCost, BulkheadHandle, ConfigError, Cost, EstimateStands, Hold, Overflow, PerRequest,
    UntilResponse,
};

struct Slot {
    compartment: Arc<Compartment>,
    named: bool,
}

impl Slot {
    /// Referenced only by the map: no call in flight or waiting, no handle.
    fn unused(&self) -> bool {
        Arc::strong_count(&self.compartment) == 1
    }

    fn last_used(&self) -> u64 {
        self.compartment.last_used_ns.load(Relaxed)
    }

    /// Moves a use seen since the last look to `now`.
    fn refresh(&self, now: u64) {
        if self.compartment.touched.swap(false, Relaxed) {
            self.compartment.last_used_ns.store(now, Relaxed);
        }
    }
}

/// The compartments of a per-key layer.
struct Registry<K, F> {
    common: Arc<Common>,
    key: F,
    defaults: RwLock<Limits>,
    named: HashMap<K, Limits>,
    map: RwLock<KeyMap<K>>,
    overflow: Arc<Compartment>,
    policy: Overflow,
    max_keys: usize,
    idle_ns: u64,
    next_sweep_ns: AtomicU64,
}

impl<K: Hash + Eq + fmt::Debug, F> Registry<K, F> {
    /// The compartment of `request`'s key; `None` when the map is full of busy keys and the
    /// overflow policy rejects.
    fn compartment<Req>(&self, request: &Req) -> Option<Arc<Compartment>>
    where
        F: Fn(&Req) -> K,
    {
        let key = (self.key)(request);
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(&key) {
            // A load before the store: a busy key's cache line is not written by every call.
            if !slot.compartment.touched.load(Relaxed) {
                slot.compartment.touched.store(true, Relaxed);
            }
            return Some(Arc::clone(&slot.compartment));
        }
        drop(map);
        self.insert(key)
    }

    /// A key not in the map: the only place the clock is read, idle keys are swept and room
    /// is made.
    #[cold]
    fn insert(&self, key: K) -> Option<Arc<Compartment>> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(&key) {
            return Some(Arc::clone(&slot.compartment));
        }
        let now = self.common.now_ns();
        self.sweep_if_due(&mut map, now);
        if map.len() >= self.max_keys {
            self.make_room(&mut map, now);
        }
        if map.len() >= self.max_keys {
            return match self.policy {
                Overflow::Shared => Some(Arc::clone(&self.overflow)),
                Overflow::Reject => None,
            };
        }
        let named = self.named.get(&key);
        let limits = match named {
            Some(limits) => limits.clone(),
            None => self
                .defaults
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        let label: Arc<str> = format!("{key:?}").into();
        let compartment = Arc::new(Compartment::new(
            &limits,
            Arc::clone(&self.common),
            Some(label),
        ));
        map.insert(
            key,
            Slot {
                compartment: Arc::clone(&compartment),
                named: named.is_some(),
            },
        );
        self.common.metrics.keys(map.len());
        Some(compartment)
    }

    /// Forgets idle keys, at most every half idle timeout (and at least every 100 ms apart).
    fn sweep_if_due(&self, map: &mut KeyMap<K>, now: u64) {
        if now < self.next_sweep_ns.load(Relaxed) {
            return;
        }
        let every = (self.idle_ns / 2).max(nanos(Duration::from_millis(100)));
        self.next_sweep_ns.store(now.saturating_add(every), Relaxed);
        let before = map.len();
        map.retain(|_, slot| {
            slot.refresh(now);
            !(slot.unused() && now.saturating_sub(slot.last_used()) >= self.idle_ns)
        });
        self.evicted(before - map.len(), map.len(), "idle");
    }

    /// Forgets the idle unused keys; if none was idle long enough, the least recently used
    /// eighth of the unused keys, so a flood of new keys evicts in batches, not one per call.
    /// A key with a call in flight or waiting (or a live handle) is never evicted.
    fn make_room(&self, map: &mut KeyMap<K>, now: u64) {
        let before = map.len();
        map.retain(|_, slot| {
            slot.refresh(now);
            !(slot.unused() && now.saturating_sub(slot.last_used()) >= self.idle_ns)
        });
        if map.len() >= self.max_keys {
            let mut ages: Vec<u64> = map
                .values()
                .filter(|slot| slot.unused())
                .map(Slot::last_used)
                .collect();
            if !ages.is_empty() {
                let n = (self.max_keys / 8).clamp(1, ages.len());
                let (_, &mut cut, _) = ages.select_nth_unstable(n - 1);
                let mut removed = 0;
                map.retain(|_, slot| {
                    let remove = removed < n && slot.unused() && slot.last_used() <= cut;
                    removed += usize::from(remove);
                    !remove
                });
            }
        }
        self.evicted(before - map.len(), map.len(), "full");
    }

    fn evicted(&self, evicted: usize, live: usize, cause: &'static str) {
        if evicted > 0 {
            self.common.metrics.keys(live);
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
trait Keys<K>: Send + Sync {
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
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(key).map(|slot| Arc::clone(&slot.compartment))
    }
    fn all(&self) -> Vec<(Arc<Compartment>, bool)> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.values()
            .map(|slot| (Arc::clone(&slot.compartment), slot.named))
            .collect()
    }
    fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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

/// Applies one compartment per key of the request.
///
/// A key function maps each request to a key (an agent's name from a header, a tenant, axum's
/// `MatchedPath`, a host; never a raw path, which callers control). Each key gets its own
/// compartment: the configuration named after it, or the default. One key saturated never
/// slows another: keys share nothing but the key map.
///
/// At most `max_keys` keys are kept: a key with no call in flight or waiting that has been
/// idle for `key_idle_timeout` is forgotten; when the map is full the least recently used
/// eighth of the unused keys make room; if every key is busy, a new key shares one overflow
/// compartment (key `<overflow>`, the default limits) or, with [`Overflow::Reject`], is
/// rejected. So a flood of distinct keys cannot grow memory past the cap.
///
/// Metrics carry the layer's name only, never a key: in-flight calls and tokens are summed
/// over keys, and `bulkhead_keys` counts live keys.
///
/// Because the key is only known from the request, this service's `poll_ready` is always
/// ready at once, and an admitted call polls a clone of the inner service ready before calling
/// it (`S: Clone`): once in `call`, and from the response future if it was not ready. A refused call never touches it. Per
/// call, a keyed bulkhead also runs the key function, takes a read lock on the key map (a write
/// lock only to add or evict keys). It reads no clock: a lookup only marks its key as used,
/// and keys are swept when a new key arrives (no background task), at most every half idle
/// timeout; a key used since the previous sweep counts as used at the sweep. So a key is
/// forgotten no earlier than `key_idle_timeout` after its last call, and once the map is
/// full, as soon as room is needed.
///
/// ```
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_bulkhead::BulkheadLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_bulkhead::BoxError> {
/// let per_tenant = BulkheadLayer::builder()
///     .name("tenants")
///     .max_concurrent(4)
///     .max_keys(10_000)
///     .build_keyed(|request: &(String, u32)| request.0.clone())?;
/// let handle = per_tenant.handle();
/// let mut svc = ServiceBuilder::new()
///     .layer(per_tenant)
///     .service_fn(|(_, n): (String, u32)| async move { Ok::<_, std::io::Error>(n) });
/// svc.ready().await?.call(("acme".to_owned(), 1)).await?;
/// assert_eq!(handle.keys(), 1);
/// # Ok(()) }
/// ```
#[must_use]
pub struct KeyedBulkheadLayer<
    K,
    F,
    E = PerRequest,
    R = EstimateStands,
    H = UntilResponse,
    A = BoxErrorAnswer,
> {
    registry: Arc<Registry<K, F>>,
    cost: E,
    actual: R,
    _mode: PhantomData<fn() -> (H, A)>,
}

impl<K, F, E, R, H, A> KeyedBulkheadLayer<K, F, E, R, H, A> {
    pub(crate) fn from_limits(
        limits: KeyedLimits,
        key: F,
        cost: E,
        actual: R,
    ) -> Result<Self, ConfigError>
    where
        K: Hash + Eq + std::str::FromStr,
    {
        let common = Arc::new(Common::new(Arc::clone(&limits.name), true));
        let mut named = HashMap::new();
        for (name, config) in limits.named {
            let parsed = name.parse::<K>().map_err(|_| ConfigError::InvalidKey {
                field: "bulkheads",
                key: name,
            })?;
            named.insert(parsed, config);
        }
        let overflow = Arc::new(Compartment::new(
            &limits.default,
            Arc::clone(&common),
            Some("<overflow>".into()),
        ));
        Ok(Self {
            registry: Arc::new(Registry {
                common,
                key,
                defaults: RwLock::new(limits.default),
                named,
                map: RwLock::new(KeyMap::default()),
                overflow,
                policy: limits.overflow,
                max_keys: limits.max_keys as usize,
                idle_ns: nanos(limits.key_idle_timeout),
                next_sweep_ns: AtomicU64::new(0),
            }),
            cost,
            actual,
            _mode: PhantomData,
        })
    }

    #[cfg(feature = "http")]
    fn mode<H2, A2>(self) -> KeyedBulkheadLayer<K, F, E, R, H2, A2> {
        KeyedBulkheadLayer {
            registry: self.registry,
            cost: self.cost,
            actual: self.actual,
            _mode: PhantomData,
        }
    }

    /// Sets how a request's cost is estimated (see [`BulkheadBuilder::cost`](crate::BulkheadBuilder::cost)).
    pub fn cost<E2>(self, cost: E2) -> KeyedBulkheadLayer<K, F, E2, R, H, A> {
        KeyedBulkheadLayer {
            registry: self.registry,
            cost,
            actual: self.actual,
            _mode: PhantomData,
        }
    }

    /// Sets how the actual cost is read from a response.
    pub fn actual_cost<R2>(self, actual: R2) -> KeyedBulkheadLayer<K, F, E, R2, H, A> {
        KeyedBulkheadLayer {
            registry: self.registry,
            cost: self.cost,
            actual,
            _mode: PhantomData,
        }
    }

    /// Answers rejections with HTTP 503/429 + `Retry-After`. The same compartments.
    #[cfg(feature = "http")]
    pub fn http(self) -> KeyedBulkheadLayer<K, F, E, R, H, HttpAnswer> {
        self.mode()
    }

    /// Answers rejections with gRPC `RESOURCE_EXHAUSTED`. The same compartments.
    #[cfg(feature = "http")]
    pub fn grpc(self) -> KeyedBulkheadLayer<K, F, E, R, H, GrpcAnswer> {
        self.mode()
    }

    /// Holds permits until the response body ends. The same compartments.
    #[cfg(feature = "http")]
    pub fn hold_until_body_end(self) -> KeyedBulkheadLayer<K, F, E, R, UntilBodyEnd, A> {
        self.mode()
    }
}

impl<K, F, E, R, H, A> KeyedBulkheadLayer<K, F, E, R, H, A>
where
    K: Hash + Eq + Send + Sync + 'static,
    F: Send + Sync + 'static,
{
    /// A handle on this layer's compartments.
    pub fn handle(&self) -> KeyedBulkheadHandle<K> {
        KeyedBulkheadHandle {
            keys: Arc::clone(&self.registry) as Arc<dyn Keys<K>>,
        }
    }
}

impl<K, F, E: Clone, R: Clone, H, A> Clone for KeyedBulkheadLayer<K, F, E, R, H, A> {
    fn clone(&self) -> Self {
        Self {
            registry: Arc::clone(&self.registry),
            cost: self.cost.clone(),
            actual: self.actual.clone(),
            _mode: PhantomData,
        }
    }
}

impl<K, F, E, R, H, A> fmt::Debug for KeyedBulkheadLayer<K, F, E, R, H, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkheadLayer")
            .field("name", &self.registry.common.name)
            .field("key", &TypeName::<F>::new())
            .field("cost", &TypeName::<E>::new())
            .field("actual", &TypeName::<R>::new())
            .finish_non_exhaustive()
    }
}

impl<S, K, F, E: Clone, R: Clone, H, A> Layer<S> for KeyedBulkheadLayer<K, F, E, R, H, A> {
    type Service = KeyedBulkhead<S, K, F, E, R, H, A>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedBulkhead {
            inner,
            registry: Arc::clone(&self.registry),
            cost: self.cost.clone(),
            actual: self.actual.clone(),
            _mode: PhantomData,
        }
    }
}

/// A service behind per-key compartments. Made by [`KeyedBulkheadLayer`].
pub struct KeyedBulkhead<
    S,
    K,
    F,
    E = PerRequest,
    R = EstimateStands,
    H = UntilResponse,
    A = BoxErrorAnswer,
> {
    inner: S,
    registry: Arc<Registry<K, F>>,
    cost: E,
    actual: R,
    _mode: PhantomData<fn() -> (H, A)>,
}

impl<S, K, F, E, R, H, A> KeyedBulkhead<S, K, F, E, R, H, A> {
    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the bulkhead.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K, F, E: Clone, R: Clone, H, A> Clone for KeyedBulkhead<S, K, F, E, R, H, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            registry: Arc::clone(&self.registry),
            cost: self.cost.clone(),
            actual: self.actual.clone(),
            _mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, K, F, E, R, H, A> fmt::Debug for KeyedBulkhead<S, K, F, E, R, H, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkhead")
            .field("inner", &self.inner)
            .field("name", &self.registry.common.name)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, E, R, H, A, Req> Service<Req> for KeyedBulkhead<S, K, F, E, R, H, A>
where
    S: Service<Req> + Clone,
    K: Hash + Eq + fmt::Debug,
    F: Fn(&Req) -> K,
    E: Cost<Req>,
    R: ActualCost<S::Response> + Clone,
    H: Hold<S::Response>,
    A: Answer<S::Response, S::Error>,
{
    type Response = H::Response;
    type Error = A::Error;
    type Future = ResponseFuture<S, S::Future, Req, R, H, A>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The compartment is only known from the request; the inner service is driven to
        // readiness by the response future, and only for admitted calls.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let Some(compartment) = self.registry.compartment(&request) else {
            let overflow = &self.registry.overflow;
            let denied = Denied {
                reason: Reason::BulkheadFull,
                retry_after: None,
                until_refill: false,
            };
            return ResponseFuture::rejected(overflow.reject(denied), self.actual.clone());
        };
        let cost = if compartment.has_budgets() {
            self.cost.cost(&request)
        } else {
            0
        };
        match compartment.try_admit_owned(cost) {
            Ok(permit) => {
                ResponseFuture::admitted(self.inner.clone(), request, permit, self.actual.clone())
            }
            Err((compartment, denied)) => ResponseFuture::denied(
                &compartment,
                denied,
                cost,
                || self.inner.clone(),
                request,
                self.actual.clone(),
            ),
        }
    }
}

/// A handle on the compartments of a [`KeyedBulkheadLayer`].
#[derive(Clone)]
#[must_use]
pub struct KeyedBulkheadHandle<K> {
    keys: Arc<dyn Keys<K>>,
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

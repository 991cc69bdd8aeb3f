//! Per-key compartments: one compartment per key of the request, a cap on keys, idle
//! eviction, an overflow policy.

use std::collections::HashMap;

/// The key map's hasher: foldhash with a random seed per map (SipHash, std's default, costs
/// several times more per lookup). foldhash is only "minimally" HashDoS-resistant; the map
/// is also bounded (`max_keys`, eviction), so a flood of colliding keys slows lookups in a
/// table of bounded size at worst, and never grows memory.
type KeyMap<K> = HashMap<Arc<K>, Slot, foldhash::fast::RandomState>;
use std::collections::VecDeque;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_outcome::{Answer, BoxErrorAnswer, Reason};
#[cfg(feature = "http")]
use tower_outcome::{GrpcAnswer, HttpAnswer};
use tower_service::Service;

use crate::compartment::{Common, Compartment, nanos};
use crate::config::{KeyedLimits, Limits, MAX_CONCURRENT, count};
use crate::cost::TypeName;
use crate::future::ResponseFuture;
#[cfg(feature = "http")]
use crate::hold::UntilBodyEnd;
use crate::{
    ActualCost, BulkheadHandle, ConfigError, Cost, EstimateStands, Hold, Overflow, PerRequest,
    UntilResponse,
};

/// A live key of the map.
struct Slot {
    compartment: Arc<Compartment>,
    /// A key with a configuration of its own: kept for the layer's life (their number is
    /// bounded by the configuration), so it is never evicted and never shares the overflow
    /// compartment; not counted against `max_keys`, not on the eviction hand's ring.
    named: bool,
}

/// A live key as the eviction hand sees it: the key (to remove it from the map) and its
/// compartment (so that a busy key is told without a lookup).
struct Hand<K> {
    key: Arc<K>,
    compartment: Arc<Compartment>,
}

impl<K> Hand<K> {
    /// Referenced by the map and the hand only: no call in flight or waiting, no handle.
    fn unused(&self) -> bool {
        Arc::strong_count(&self.compartment) == 2
    }

    /// Moves a use seen since the last look to `now`; whether there was one.
    fn refresh(&self, now: u64) -> bool {
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
struct Live<K> {
    map: KeyMap<K>,
    ring: VecDeque<Hand<K>>,
    named: usize,
}

impl<K> Live<K> {
    /// Whether the keys subject to `max_keys` fill it.
    fn full(&self, max_keys: usize) -> bool {
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
const SWEEP: usize = 4;
/// Keys the hand visits at most per new key to make room in a full map; when all of them are
/// busy the new key overflows (the hand has moved on: the next new key looks at others).
const MAKE_ROOM: usize = 32;

/// The compartments of a per-key layer.
struct Registry<K, F> {
    common: Arc<Common>,
    key: F,
    defaults: RwLock<Limits>,
    named: HashMap<K, Limits, foldhash::fast::RandomState>,
    live: RwLock<Live<K>>,
    overflow: Arc<Compartment>,
    policy: Overflow,
    max_keys: usize,
    max_key_length: usize,
    idle_ns: u64,
}

/// Writes a key's `Debug` form, refusing past `max` bytes (so a huge key costs no more).
struct Bounded {
    text: String,
    max: usize,
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
    fn compartment<Req>(&self, request: &Req) -> Option<Arc<Compartment>>
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
    fn overflow(&self) -> Option<Arc<Compartment>> {
        match self.policy {
            Overflow::Shared => Some(Arc::clone(&self.overflow)),
            Overflow::Reject => None,
        }
    }

    /// A key not in the map: the only place the clock is read and keys are evicted.
    #[cold]
    fn insert(&self, key: K) -> Option<Arc<Compartment>> {
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
    fn insert_named(&self, key: K, limits: &Limits) -> Arc<Compartment> {
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
    fn sweep(&self, live: &mut Live<K>, now: u64) {
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

    fn keys_gauge(&self, live: usize) {
        self.common.metrics.keys(live);
    }

    fn evicted(&self, evicted: usize, live: usize, cause: &'static str) {
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

/// Applies one compartment per key of the request.
///
/// A key function maps each request to a key (an agent's name from a header, a tenant, axum's
/// `MatchedPath`, a host; never a raw path, which callers control). Each key gets its own
/// compartment: the configuration named after it, or the default. One key saturated never
/// slows another: keys share nothing but the key map.
///
/// At most `max_keys` keys are kept. **Eviction never resets a limit**: only a key at rest
/// can be forgotten (no call in flight or waiting, no handle, no in-flight tokens, a rate
/// budget that is full again, so forgetting it gives nothing away); such a key idle for
/// `key_idle_timeout` is forgotten, and when the map is full the least recently used key at
/// rest makes room (a clock: a hand visits the keys in order, a key used since its last visit
/// gets a second chance). The hand visits a bounded number of keys per new key, so a new key
/// costs O(1) amortized however many keys are busy. If none it visits is at rest, the new
/// key shares one overflow compartment (key `<overflow>`, the default limits) or, with
/// [`Overflow::Reject`], is rejected with the default `retry_after`. So a flood of distinct
/// keys cannot grow memory past the cap, nor buy a fresh budget.
///
/// A key with a configuration of its own (`bulkheads`, [`key_config`](crate::BulkheadBuilder::key_config))
/// is created on first use and kept for the layer's life: it never lands in the overflow
/// compartment and is not counted against `max_keys`. A key whose `Debug` form is longer than
/// `max_key_length` is never stored: it is treated as a key that finds the map full.
///
/// Metrics carry the layer's name only, never a key: in-flight calls and tokens are summed
/// over keys, and `bulkhead_keys` counts live keys.
///
/// Because the key is only known from the request, this service's `poll_ready` is always
/// ready at once, and an admitted call polls a clone of the inner service ready before calling
/// it (`S: Clone`): once in `call`, and from the response future if it was not ready; an
/// error from its `poll_ready` is the call's answer, and the request is never sent. A refused
/// call never touches it. Per call, a keyed bulkhead also runs the key function and takes a
/// read lock on the key map (a write lock only to add or evict keys). It reads no clock: a
/// lookup only marks its key as used, and the hand moves when a new key arrives (no
/// background task), visiting a few keys each time; a key used since the hand's last visit
/// counts as used at this one. So a key is forgotten no earlier than `key_idle_timeout` after
/// its last call.
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
        let mut named = HashMap::default();
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
                live: RwLock::new(Live::default()),
                overflow,
                policy: limits.overflow,
                max_keys: limits.max_keys as usize,
                max_key_length: limits.max_key_length,
                idle_ns: nanos(limits.key_idle_timeout),
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
            // The map is full (or the key too long) and the policy rejects: the default
            // `retry_after` says when to try again.
            let overflow = &self.registry.overflow;
            let rejected = overflow.reject(overflow.full(Reason::BulkheadFull));
            return ResponseFuture::rejected(rejected, self.actual.clone());
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

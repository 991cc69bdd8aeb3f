//! Per-key breakers: one breaker per key of the request, a cap on keys, idle eviction.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_outcome::{Answer, BoxErrorAnswer, Classify, ErrorsAsFailures};
use tower_service::Service;

use crate::call_event::{CallListener, NoCallListener};
use crate::clock::nanos;
use crate::common::Common;
use crate::future::{answer, finish};
use crate::handle::{Breaker, Thresholds};
use crate::machine::Core;
use crate::refusal::Refused;
use crate::slot::Slot;
use crate::ticket::Ticket;
use crate::{CircuitBreakerHandle, ConfigError, State};

/// The breakers of a per-key layer.
struct Registry<K, F, C, L> {
    common: Arc<Common<C, L>>,
    key: F,
    map: RwLock<HashMap<K, Arc<Core<C, L>>>>,
    /// Shared by every key that arrives while the map is full of keys with calls in flight.
    overflow: Arc<Core<C, L>>,
    next_sweep_ns: AtomicU64,
    created: AtomicU64,
}

impl<K: Hash + Eq + fmt::Debug, F, C, L> Registry<K, F, C, L> {
    fn breaker<Req>(&self, request: &Req) -> Arc<Core<C, L>>
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

    fn insert(&self, key: K, now: u64) -> Arc<Core<C, L>> {
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

    fn sweep_if_due(&self, now: u64) {
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
    fn evict(&self, map: &mut HashMap<K, Arc<Core<C, L>>>, now: u64, make_room: bool) {
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
trait Keys<K>: Send + Sync {
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

/// Applies one circuit breaker per key of the request.
///
/// A key function maps each request to a key (a host, a tenant, axum's `MatchedPath`; never a
/// raw path, which users control). Each key gets its own breaker with the layer's
/// configuration; thresholds changed through the handle apply to all keys.
///
/// # Eviction
///
/// At most `max_keys` keys are kept. A key idle for `key_idle_timeout` is forgotten, and when
/// the map is full the least recently used closed key makes room; if none can, the new key
/// shares one overflow breaker (key `<overflow>`). A forgotten key that comes back starts
/// closed, with clean counts. What survives eviction, however long idle:
///
/// | the key's breaker | idle sweep | making room |
/// |---|---|---|
/// | a call in flight, or a live [`CircuitBreakerHandle`] from [`get`](KeyedCircuitBreakerHandle::get) | kept | kept |
/// | forced open, disabled, metrics only (set by an operator: they hold until reset) | kept | kept |
/// | open, within its open period (new keys are no way to close a circuit) | kept | kept |
/// | open past its open period, or half-open with no probe in flight | forgotten | kept |
/// | closed | forgotten | the least recently used goes |
///
/// A circuit past its open period holds nothing back (its next call would be a probe), so
/// circuits that opened and were then abandoned fill the map for at most their open period
/// plus `key_idle_timeout`, not for ever: they cannot push every new key into the overflow
/// breaker for good.
///
/// The overflow breaker counts the calls of every key that had no room, whichever of them
/// failed; when a key later gets a breaker of its own, that breaker starts closed and the
/// overflow breaker's state stays with the keys still in it. A key whose failures opened the
/// overflow breaker thus gets `failure_threshold` more calls (the cost of any new key) before
/// its own circuit opens, and the keys left in the overflow breaker are not let through.
///
/// Metrics are labelled with the layer's name only (never a key): calls and transitions are
/// summed over keys, and `breaker_keys` counts live keys; there is no per-key state gauge.
///
/// Per call, a keyed breaker also takes a read lock on the key map (a write lock only to add or
/// evict keys) and reads the clock (to know which keys are idle).
///
/// Because the key is only known from the request, the rejection is decided in `call`: this
/// service's `poll_ready` is always ready at once, and the response future drives a clone of
/// the inner service through `poll_ready` before calling it (`S: Clone`, as axum and tonic
/// services are). A refused call never touches the inner service.
///
/// ```
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_breaker::CircuitBreakerLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_breaker::BoxError> {
/// let per_tenant = CircuitBreakerLayer::builder()
///     .name("tenants")
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
pub struct KeyedCircuitBreakerLayer<
    K,
    F,
    C = ErrorsAsFailures,
    A = BoxErrorAnswer,
    L = NoCallListener,
> {
    registry: Arc<Registry<K, F, C, L>>,
    _answer: PhantomData<fn() -> A>,
}

impl<K, F, C, A, L> KeyedCircuitBreakerLayer<K, F, C, A, L> {
    pub(crate) fn from_parts(common: Arc<Common<C, L>>, key: F) -> Self {
        let overflow = Arc::new(Core::new(Arc::clone(&common), Some("<overflow>".into()), 0));
        Self {
            registry: Arc::new(Registry {
                common,
                key,
                map: RwLock::new(HashMap::new()),
                overflow,
                next_sweep_ns: AtomicU64::new(0),
                created: AtomicU64::new(0),
            }),
            _answer: PhantomData,
        }
    }
}

impl<K: Hash + Eq, F> KeyedCircuitBreakerLayer<K, F> {
    /// A per-key layer from a configuration (for example one read from JSON), in the default
    /// answer mode: `key` maps each request to the key whose breaker it goes through. The same
    /// as `CircuitBreakerLayer::builder().config(&config).build_keyed(key)`, where the answer
    /// mode and classifier can be chosen too. Takes the configuration by reference or by value.
    ///
    /// # Errors
    /// The first invalid value, as [`CircuitBreakerConfig::validate`](crate::CircuitBreakerConfig::validate) finds it.
    pub fn from_config(
        config: impl std::borrow::Borrow<crate::CircuitBreakerConfig>,
        key: F,
    ) -> Result<Self, crate::ConfigError> {
        crate::CircuitBreakerLayer::builder()
            .config(config)
            .build_keyed(key)
    }
}

impl<K, F, C, A, L> KeyedCircuitBreakerLayer<K, F, C, A, L>
where
    K: Hash + Eq + fmt::Debug + Send + Sync + 'static,
    F: Send + Sync + 'static,
    C: Send + Sync + 'static,
    L: Send + Sync + 'static,
{
    /// A handle on this layer's breakers.
    pub fn handle(&self) -> KeyedCircuitBreakerHandle<K> {
        KeyedCircuitBreakerHandle {
            keys: Arc::clone(&self.registry) as Arc<dyn Keys<K>>,
        }
    }
}

impl<K, F, C, A, L> Clone for KeyedCircuitBreakerLayer<K, F, C, A, L> {
    fn clone(&self) -> Self {
        Self {
            registry: Arc::clone(&self.registry),
            _answer: PhantomData,
        }
    }
}

impl<K, F, C, A, L> fmt::Debug for KeyedCircuitBreakerLayer<K, F, C, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreakerLayer")
            .field("name", &self.registry.common.name)
            .field("key", &std::any::type_name::<F>())
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, A, L> Layer<S> for KeyedCircuitBreakerLayer<K, F, C, A, L> {
    type Service = KeyedCircuitBreaker<S, K, F, C, A, L>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker {
            inner,
            registry: Arc::clone(&self.registry),
            _answer: PhantomData,
        }
    }
}

/// A service behind per-key circuit breakers. Made by [`KeyedCircuitBreakerLayer`].
pub struct KeyedCircuitBreaker<
    S,
    K,
    F,
    C = ErrorsAsFailures,
    A = BoxErrorAnswer,
    L = NoCallListener,
> {
    inner: S,
    registry: Arc<Registry<K, F, C, L>>,
    _answer: PhantomData<fn() -> A>,
}

impl<S, K, F, C, A, L> KeyedCircuitBreaker<S, K, F, C, A, L> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the breaker.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, K, F, C, A, L> Clone for KeyedCircuitBreaker<S, K, F, C, A, L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            registry: Arc::clone(&self.registry),
            _answer: PhantomData,
        }
    }
}

impl<S: fmt::Debug, K, F, C, A, L> fmt::Debug for KeyedCircuitBreaker<S, K, F, C, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCircuitBreaker")
            .field("inner", &self.inner)
            .field("name", &self.registry.common.name)
            .finish_non_exhaustive()
    }
}

impl<S, K, F, C, A, L, Req> Service<Req> for KeyedCircuitBreaker<S, K, F, C, A, L>
where
    S: Service<Req> + Clone,
    K: Hash + Eq + fmt::Debug,
    F: Fn(&Req) -> K,
    C: Classify<S::Response> + Clone,
    L: CallListener,
    A: Answer<S::Response, S::Error>,
{
    type Response = C::Response<Ticket<C, L>>;
    type Error = A::Error;
    type Future = KeyedResponseFuture<S, S::Future, Req, C, A, L>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The breaker is only known from the request; the inner service is driven to
        // readiness by the response future, and only for admitted calls.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let core = self.registry.breaker(&request);
        let mut slot = Slot::new();
        slot.fill(&core);
        let kind = match slot.take(&core) {
            Ok(ticket) => KeyedKind::Waiting {
                service: self.inner.clone(),
                request: Some(request),
                ticket: Some(ticket),
            },
            Err(refusal) => KeyedKind::Rejected {
                refused: Some(core.rejection(refusal)),
            },
        };
        KeyedResponseFuture {
            kind,
            _answer: PhantomData,
        }
    }
}

pin_project! {
    /// The response future of [`KeyedCircuitBreaker`]: waits for the inner service to be
    /// ready, calls it, classifies the result; or answers a rejection at once.
    pub struct KeyedResponseFuture<S, F, Req, C, A, L = NoCallListener> {
        #[pin]
        kind: KeyedKind<S, F, Req, C, L>,
        _answer: PhantomData<fn() -> A>,
    }
}

pin_project! {
    #[project = KeyedProj]
    enum KeyedKind<S, F, Req, C, L> {
        Waiting { service: S, request: Option<Req>, ticket: Option<Ticket<C, L>> },
        Called { #[pin] future: F, ticket: Option<Ticket<C, L>>, start_ns: u64 },
        Rejected { refused: Option<Refused> },
    }
}

impl<S, Req, C, A, L> Future for KeyedResponseFuture<S, S::Future, Req, C, A, L>
where
    S: Service<Req>,
    C: Classify<S::Response> + Clone,
    L: CallListener,
    A: Answer<S::Response, S::Error>,
{
    type Output = Result<C::Response<Ticket<C, L>>, A::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        const DONE: &str = "KeyedResponseFuture polled after completion";
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KeyedProj::Waiting {
                    service,
                    request,
                    ticket,
                } => {
                    if let Err(error) = ready!(service.poll_ready(cx)) {
                        let ticket = ticket.take().expect(DONE);
                        // Settled as granted: it counts if the breaker is still in that state.
                        return Poll::Ready(finish::<C, A, L, S::Response, S::Error>(
                            Err(error),
                            ticket,
                            0,
                        ));
                    }
                    // The admission holds only for the state it was granted in: the breaker
                    // may have moved on while the inner service was getting ready.
                    let ticket = match ticket.take().expect(DONE).revalidate() {
                        Ok(ticket) => ticket,
                        Err(refused) => {
                            return Poll::Ready(answer::<C, A, L, S::Response, S::Error>(refused));
                        }
                    };
                    let start_ns = ticket.start();
                    let future = service.call(request.take().expect(DONE));
                    kind.set(KeyedKind::Called {
                        future,
                        ticket: Some(ticket),
                        start_ns,
                    });
                }
                KeyedProj::Called {
                    future,
                    ticket,
                    start_ns,
                } => {
                    let result = ready!(future.poll(cx));
                    let ticket = ticket.take().expect(DONE);
                    return Poll::Ready(finish::<C, A, L, S::Response, S::Error>(
                        result, ticket, *start_ns,
                    ));
                }
                KeyedProj::Rejected { refused } => {
                    let refused = refused.take().expect(DONE);
                    return Poll::Ready(answer::<C, A, L, S::Response, S::Error>(refused));
                }
            }
        }
    }
}

impl<S, F, Req, C, A, L> fmt::Debug for KeyedResponseFuture<S, F, Req, C, A, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            KeyedKind::Waiting { .. } => "waiting",
            KeyedKind::Called { .. } => "called",
            KeyedKind::Rejected { .. } => "rejected",
        };
        f.debug_struct("KeyedResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// A handle on the breakers of a [`KeyedCircuitBreakerLayer`].
///
/// Threshold changes apply to every key, present and future.
#[derive(Clone)]
#[must_use]
pub struct KeyedCircuitBreakerHandle<K> {
    keys: Arc<dyn Keys<K>>,
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

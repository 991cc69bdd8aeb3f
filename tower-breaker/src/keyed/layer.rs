//! The per-key layer.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use tower_layer::Layer;
use tower_outcome::{BoxErrorAnswer, ErrorsAsFailures};

use crate::call_event::NoCallListener;
use crate::common::Common;
use crate::machine::Core;

use super::{KeyedCircuitBreaker, KeyedCircuitBreakerHandle, Keys, Registry};

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
/// | a call in flight, or a live [`CircuitBreakerHandle`](crate::CircuitBreakerHandle) from [`get`](KeyedCircuitBreakerHandle::get) | kept | kept |
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
    pub(super) registry: Arc<Registry<K, F, C, L>>,
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

//! The per-key layer.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use tower_layer::Layer;
use tower_outcome::BoxErrorAnswer;
#[cfg(feature = "http")]
use tower_outcome::{GrpcAnswer, HttpAnswer};

use crate::compartment::{Common, Compartment, nanos};
use crate::config::KeyedLimits;
use crate::cost::TypeName;
#[cfg(feature = "http")]
use crate::hold::UntilBodyEnd;
use crate::{ConfigError, EstimateStands, PerRequest, UntilResponse};

use super::registry::Live;
use super::{KeyedBulkhead, KeyedBulkheadHandle, Keys, Registry};

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
/// [`Overflow::Reject`](crate::Overflow::Reject), is rejected with the default `retry_after`. So a flood of distinct
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
    pub(super) registry: Arc<Registry<K, F>>,
    pub(super) cost: E,
    pub(super) actual: R,
    pub(super) _mode: PhantomData<fn() -> (H, A)>,
}

impl<K, F> KeyedBulkheadLayer<K, F> {
    /// Per-key compartments from a configuration (for example one read from JSON), in the
    /// default answer mode: `key` maps each request to its key; a key named in
    /// `config.bulkheads` gets that configuration, others the default. For cost functions or
    /// an answer mode, use the builder:
    /// `BulkheadLayer::builder().keyed_config(&config).http().build_keyed(key)`. Takes the
    /// configuration by reference or by value.
    ///
    /// # Errors
    /// The first invalid value, as
    /// [`KeyedBulkheadConfig::validate`](crate::KeyedBulkheadConfig::validate) finds it, or a
    /// name in `bulkheads` that is not a valid key (`K: std::str::FromStr`).
    pub fn from_config<Req>(
        config: impl std::borrow::Borrow<crate::KeyedBulkheadConfig>,
        key: F,
    ) -> Result<Self, ConfigError>
    where
        F: Fn(&Req) -> K,
        K: Hash + Eq + std::str::FromStr,
    {
        Self::from_limits(config.borrow().limits()?, key, PerRequest, EstimateStands)
    }
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
    #[deprecated(
        since = "0.1.0",
        note = "choose the answer mode on the builder: `.http()`"
    )]
    pub fn http(self) -> KeyedBulkheadLayer<K, F, E, R, H, HttpAnswer> {
        self.mode()
    }

    /// Answers rejections with gRPC `RESOURCE_EXHAUSTED`. The same compartments.
    #[cfg(feature = "http")]
    #[deprecated(
        since = "0.1.0",
        note = "choose the answer mode on the builder: `.grpc()`"
    )]
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

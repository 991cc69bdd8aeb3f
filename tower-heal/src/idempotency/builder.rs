//! The idempotency builder: the store, the time to live, the wait, `build`.

use super::layer::{IdempotencyLayer, Shared};
use crate::store::{MemoryStore, ResultStore};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tower_outcome::BoxErrorAnswer;

/// Builds an [`IdempotencyLayer`].
#[must_use]
pub struct IdempotencyBuilder<Codec, A = BoxErrorAnswer> {
    pub(crate) codec: Codec,
    store: Option<Arc<dyn ResultStore>>,
    ttl: Option<Duration>,
    max_wait: Duration,
    _answer: PhantomData<fn() -> A>,
}

impl<Codec, A> IdempotencyBuilder<Codec, A> {
    pub(crate) fn new(codec: Codec) -> Self {
        Self {
            codec,
            store: None,
            ttl: Some(Duration::from_secs(86_400)),
            max_wait: Duration::from_secs(10),
            _answer: PhantomData,
        }
    }

    /// `store`: where responses are kept (default: a [`MemoryStore`] of 10,000 entries and
    /// 64 MiB). Share one store between layers by passing an `Arc`.
    pub fn store(mut self, store: impl ResultStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// `ttl`: how long a stored response is replayed (default 24 h; `None`: until evicted).
    pub fn ttl(mut self, ttl: impl Into<Option<Duration>>) -> Self {
        self.ttl = ttl.into();
        self
    }

    /// `max_wait`: how long a duplicate waits for the first call with its key before it is
    /// answered "in progress" (HTTP 409; other services: the family's `Rejected`). Default
    /// 10 s. A waiting duplicate holds no downstream capacity.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Builds the layer.
    pub fn build(self) -> IdempotencyLayer<Codec, A> {
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::default()));
        IdempotencyLayer {
            shared: Arc::new(Shared {
                codec: self.codec,
                store,
                ttl: self.ttl,
                max_wait: self.max_wait,
                flights: Arc::default(),
                replays: crate::metrics::replay_counter(),
            }),
            _answer: PhantomData,
        }
    }
}

impl<Codec: fmt::Debug, A> fmt::Debug for IdempotencyBuilder<Codec, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyBuilder")
            .field("codec", &self.codec)
            .field("ttl", &self.ttl)
            .finish()
    }
}

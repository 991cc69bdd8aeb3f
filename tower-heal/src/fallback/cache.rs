//! The last good response per key, kept to answer at level 1 when the live service fails.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Degradable;

/// No good response is kept for this key: the cache cannot answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheMiss;

impl fmt::Display for CacheMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no good response kept for this key")
    }
}

impl std::error::Error for CacheMiss {}

struct Entries<Key, Res> {
    map: HashMap<Key, (Res, u64)>,
    next: u64,
}

/// The last good response per key, bounded to `max_keys` (the oldest written key goes first).
///
/// [`record`](Self::record) gives a layer that keeps each successful, undegraded response of
/// the live service (a [good answer](crate::Degradable::is_good_answer): for HTTP a `2xx`, so a
/// 503 left over by a retry never replaces the good answer kept before); the cache itself is a service that answers a request with the kept
/// response for its key, or [`CacheMiss`]: put it behind a [`FallbackLayer`](crate::FallbackLayer)
/// at level 1.
///
/// ```
/// use tower::{Service, ServiceBuilder, ServiceExt};
/// use tower_heal::{Degradable, DegradationLevel, FallbackLayer, LastGood, Marked};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_heal::BoxError> {
/// let cache = LastGood::new(1000, |city: &String| city.clone());
/// let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
/// let live = {
///     let up = up.clone();
///     tower::service_fn(move |city: String| {
///         let up = up.load(std::sync::atomic::Ordering::Relaxed);
///         async move {
///             if up { Ok(Marked::new(format!("{city}: 21°C"))) }
///             else { Err(std::io::Error::other("weather service down")) }
///         }
///     })
/// };
/// let mut svc = ServiceBuilder::new()
///     .layer(FallbackLayer::new("weather", DegradationLevel::Slight, cache.clone()))
///     .layer(cache.record())
///     .service(live);
///
/// assert_eq!(svc.ready().await?.call("Oslo".to_string()).await?.value, "Oslo: 21°C");
/// up.store(false, std::sync::atomic::Ordering::Relaxed);
/// let stale = svc.ready().await?.call("Oslo".to_string()).await?;
/// assert_eq!(stale.value, "Oslo: 21°C");
/// assert_eq!(stale.degraded().unwrap().level(), DegradationLevel::Slight);
/// # Ok(()) }
/// ```
pub struct LastGood<KF, Key, Res> {
    entries: Arc<Mutex<Entries<Key, Res>>>,
    key: Arc<KF>,
    max_keys: usize,
}

impl<KF, Key: Hash + Eq, Res> LastGood<KF, Key, Res> {
    /// A cache of at most `max_keys` keys (at least 1), keyed by `key(&request)`.
    pub fn new(max_keys: usize, key: KF) -> Self {
        Self {
            entries: Arc::new(Mutex::new(Entries {
                map: HashMap::new(),
                next: 0,
            })),
            key: Arc::new(key),
            max_keys: max_keys.max(1),
        }
    }

    /// The layer that records the live service's good responses into this cache.
    #[must_use]
    pub fn record(&self) -> RecordLastGoodLayer<KF, Key, Res> {
        RecordLastGoodLayer {
            cache: self.clone(),
        }
    }

    /// Keys kept now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<Key, Res>> {
        // A panic while holding this lock leaves the map consistent (inserts are single calls).
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, key: Key, response: Res)
    where
        Key: Clone,
    {
        let mut entries = self.lock();
        let seq = entries.next;
        entries.next += 1;
        if !entries.map.contains_key(&key) && entries.map.len() >= self.max_keys {
            let oldest = entries
                .map
                .iter()
                .min_by_key(|(_, (_, seq))| *seq)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.map.remove(&oldest);
            }
        }
        entries.map.insert(key, (response, seq));
    }
}

impl<KF, Key, Res> Clone for LastGood<KF, Key, Res> {
    fn clone(&self) -> Self {
        Self {
            entries: Arc::clone(&self.entries),
            key: Arc::clone(&self.key),
            max_keys: self.max_keys,
        }
    }
}

impl<KF, Key, Res> fmt::Debug for LastGood<KF, Key, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LastGood")
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

impl<KF, Key, Res, Req> Service<Req> for LastGood<KF, Key, Res>
where
    KF: Fn(&Req) -> Key,
    Key: Hash + Eq,
    Res: Clone,
{
    type Response = Res;
    type Error = CacheMiss;
    type Future = std::future::Ready<Result<Res, CacheMiss>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), CacheMiss>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.key)(&request);
        let found = self.lock().map.get(&key).map(|(res, _)| res.clone());
        std::future::ready(found.ok_or(CacheMiss))
    }
}

/// Records the live service's good responses into a [`LastGood`]. Made by
/// [`LastGood::record`].
pub struct RecordLastGoodLayer<KF, Key, Res> {
    cache: LastGood<KF, Key, Res>,
}

impl<KF, Key, Res> Clone for RecordLastGoodLayer<KF, Key, Res> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
        }
    }
}

impl<KF, Key, Res> fmt::Debug for RecordLastGoodLayer<KF, Key, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordLastGoodLayer").finish()
    }
}

impl<S, KF, Key, Res> Layer<S> for RecordLastGoodLayer<KF, Key, Res> {
    type Service = RecordLastGood<S, KF, Key, Res>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordLastGood {
            inner,
            cache: self.cache.clone(),
        }
    }
}

/// A service whose good responses are kept in a [`LastGood`]. Each successful call clones its
/// response into the cache (one lock).
pub struct RecordLastGood<S, KF, Key, Res> {
    inner: S,
    cache: LastGood<KF, Key, Res>,
}

impl<S: Clone, KF, Key, Res> Clone for RecordLastGood<S, KF, Key, Res> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl<S: fmt::Debug, KF, Key, Res> fmt::Debug for RecordLastGood<S, KF, Key, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordLastGood")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, KF, Key, Req> Service<Req> for RecordLastGood<S, KF, Key, S::Response>
where
    S: Service<Req>,
    S::Response: Clone + Degradable,
    KF: Fn(&Req) -> Key,
    Key: Hash + Eq + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RecordFuture<S::Future, KF, Key, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let key = (self.cache.key)(&request);
        RecordFuture {
            future: self.inner.call(request),
            key: Some(key),
            cache: self.cache.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`RecordLastGood`].
    pub struct RecordFuture<F, KF, Key, Res> {
        #[pin]
        future: F,
        key: Option<Key>,
        cache: LastGood<KF, Key, Res>,
    }
}

impl<F, KF, Key, Res> fmt::Debug for RecordFuture<F, KF, Key, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordFuture").finish()
    }
}

impl<F, KF, Key, Res, E> Future for RecordFuture<F, KF, Key, Res>
where
    F: Future<Output = Result<Res, E>>,
    Res: Clone + Degradable,
    Key: Hash + Eq + Clone,
{
    type Output = Result<Res, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let (Ok(response), Some(key)) = (&result, this.key.take())
            && response.degraded().is_none()
            && response.is_good_answer()
        {
            this.cache.insert(key, response.clone());
        }
        Poll::Ready(result)
    }
}

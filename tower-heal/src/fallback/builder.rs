//! The fallback builder: what to keep of the request, the classifier, the answer mode, `build`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;

#[cfg(feature = "http")]
use tower_outcome::HttpAnswer;
use tower_outcome::{BoxErrorAnswer, ErrorsAsFailures};

use super::layer::FallbackLayer;
use super::shared::{FallbackOn, Shared};
use super::{CloneRequest, DegradationLevel, FallbackChain};
use crate::metrics::FallbackMetrics;

/// Builds a [`FallbackLayer`], or a [`FallbackChain`] of them.
///
/// ```
/// use tower::service_fn;
/// use tower_heal::{DegradationLevel, FallbackLayer, FallbackOn, Marked};
///
/// let layer = FallbackLayer::builder("search")
///     .level(DegradationLevel::Moderate)
///     .on(FallbackOn::ALL.failure(false))     // errors and rejections only
///     .keep(|query: &String| query.len())     // the fallback gets the query's length
///     .build(service_fn(|_len: usize| async { Ok::<_, std::io::Error>(Marked::new(vec![0u8])) }));
/// assert_eq!(layer.level(), DegradationLevel::Moderate);
/// ```
#[must_use]
pub struct FallbackBuilder<K = CloneRequest, C = ErrorsAsFailures, A = BoxErrorAnswer> {
    component: Arc<str>,
    level: DegradationLevel,
    on: FallbackOn,
    keep: K,
    classifier: C,
    header: bool,
    _answer: PhantomData<fn() -> A>,
}

impl FallbackBuilder {
    pub(crate) fn new(component: impl Into<Arc<str>>) -> Self {
        Self {
            component: component.into(),
            level: DegradationLevel::Slight,
            on: FallbackOn::ALL,
            keep: CloneRequest,
            classifier: ErrorsAsFailures,
            header: false,
            _answer: PhantomData,
        }
    }
}

impl<K, C, A> FallbackBuilder<K, C, A> {
    /// `level`: what the fallback's answers are marked with (1 to 3; default 1, slight).
    pub fn level(mut self, level: DegradationLevel) -> Self {
        self.level = level;
        self
    }

    /// `on`: which failures the fallback answers (default: all).
    pub fn on(mut self, on: FallbackOn) -> Self {
        self.on = on;
        self
    }

    /// What the fallback is called with: `keep(&request)` runs before the primary is called.
    /// The default clones the request; for an `http::Request` keep the head
    /// ([`keep_head`](crate::fallback::keep_head)), since its body is not `Clone`.
    pub fn keep<K2>(self, keep: K2) -> FallbackBuilder<K2, C, A> {
        FallbackBuilder {
            component: self.component,
            level: self.level,
            on: self.on,
            keep,
            classifier: self.classifier,
            header: self.header,
            _answer: PhantomData,
        }
    }

    /// The classifier that decides what a failure is (default [`ErrorsAsFailures`]; for HTTP
    /// `HttpStatus`, so a 503 falls back).
    pub fn classifier<C2>(self, classifier: C2) -> FallbackBuilder<K, C2, A> {
        FallbackBuilder {
            component: self.component,
            level: self.level,
            on: self.on,
            keep: self.keep,
            classifier,
            header: self.header,
            _answer: PhantomData,
        }
    }

    /// HTTP mode: the inner error type is kept (axum's `Infallible` stays), and a fallback's
    /// answer also carries the [`DEGRADED_HEADER`](crate::DEGRADED_HEADER) header.
    #[cfg(feature = "http")]
    pub fn http(self) -> FallbackBuilder<K, C, HttpAnswer> {
        FallbackBuilder {
            component: self.component,
            level: self.level,
            on: self.on,
            keep: self.keep,
            classifier: self.classifier,
            header: true,
            _answer: PhantomData,
        }
    }

    pub(crate) fn shared<F>(
        &self,
        fallback: F,
        level: DegradationLevel,
        last: bool,
    ) -> Shared<F, K, C>
    where
        K: Clone,
        C: Clone,
    {
        Shared {
            fallback,
            keep: self.keep.clone(),
            classifier: self.classifier.clone(),
            component: Arc::clone(&self.component),
            level,
            on: self.on,
            header: self.header,
            last_stage: last,
            current: AtomicU8::new(0),
            gauge: std::sync::Mutex::new(()),
            metrics: FallbackMetrics::new(&self.component),
        }
    }

    /// Builds the layer with `fallback`.
    pub fn build<F>(self, fallback: F) -> FallbackLayer<F, K, C, A>
    where
        K: Clone,
        C: Clone,
    {
        let shared = self.shared(fallback, self.level, true);
        FallbackLayer {
            shared: Arc::new(shared),
            _answer: PhantomData,
        }
    }

    /// Starts a chain of fallbacks: `fallback` answers at `level` first; add more with
    /// [`then`](FallbackChain::then).
    pub fn chain<F>(
        self,
        level: DegradationLevel,
        fallback: F,
    ) -> FallbackChain<tower_layer::Identity, F, K, C, A> {
        FallbackChain::new(self, level, fallback)
    }
}

impl<K, C, A> fmt::Debug for FallbackBuilder<K, C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackBuilder")
            .field("component", &self.component)
            .field("level", &self.level)
            .field("on", &self.on)
            .field("header", &self.header)
            .finish()
    }
}

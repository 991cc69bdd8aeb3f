//! A chain of fallbacks, each answering at its own level.

use std::fmt;

use tower_layer::Stack;

use super::{DegradationLevel, FallbackBuilder, FallbackLayer};

/// Fallbacks tried in order (live → cache → static): each stage answers when the stages
/// before it failed, so a request never drops from level 0 to level 4 while a lower level can
/// answer.
///
/// [`build`](Self::build) gives a stack of [`FallbackLayer`]s, the first stage innermost.
/// Only the last stage reports level 4 (no fallback answered).
///
/// ```
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
/// use tower_heal::{Degradable, DegradationLevel, FallbackLayer, Marked};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_heal::BoxError> {
/// let down = |_: u32| async { Err::<Marked<&str>, _>(std::io::Error::other("down")) };
/// let chain = FallbackLayer::builder("metrics")
///     .chain(DegradationLevel::Slight, service_fn(down))                 // the cache is down too
///     .then(DegradationLevel::Minimal, service_fn(|_: u32| async {
///         Ok::<_, std::io::Error>(Marked::new("static"))
///     }))
///     .build();
/// let mut svc = ServiceBuilder::new().layer(chain).service_fn(down);
/// let answer = svc.ready().await?.call(1).await?;
/// assert_eq!(answer.value, "static");
/// assert_eq!(answer.degraded().unwrap().level(), DegradationLevel::Minimal);
/// # Ok(()) }
/// ```
#[must_use]
pub struct FallbackChain<L, F, K, C, A> {
    builder: FallbackBuilder<K, C, A>,
    inner: L,
    pending: (DegradationLevel, F),
}

impl<F, K, C, A> FallbackChain<tower_layer::Identity, F, K, C, A> {
    pub(crate) fn new(
        builder: FallbackBuilder<K, C, A>,
        level: DegradationLevel,
        fallback: F,
    ) -> Self {
        Self {
            builder,
            inner: tower_layer::Identity::new(),
            pending: (level, fallback),
        }
    }
}

/// The chain after one more stage: the pending stage is built into the stack.
pub type Then<L, F, F2, K, C, A> = FallbackChain<Stack<L, FallbackLayer<F, K, C, A>>, F2, K, C, A>;

impl<L, F, K: Clone, C: Clone, A> FallbackChain<L, F, K, C, A> {
    /// Adds a stage tried when every stage so far failed.
    pub fn then<F2>(self, level: DegradationLevel, fallback: F2) -> Then<L, F, F2, K, C, A> {
        let (pending_level, pending) = self.pending;
        let layer = FallbackLayer::from_shared(self.builder.shared(pending, pending_level, false));
        FallbackChain {
            builder: self.builder,
            inner: Stack::new(self.inner, layer),
            pending: (level, fallback),
        }
    }

    /// The stack of layers, first stage innermost.
    pub fn build(self) -> Stack<L, FallbackLayer<F, K, C, A>> {
        let (level, fallback) = self.pending;
        let layer = FallbackLayer::from_shared(self.builder.shared(fallback, level, true));
        Stack::new(self.inner, layer)
    }
}

impl<L, F, K, C, A> fmt::Debug for FallbackChain<L, F, K, C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackChain")
            .field("builder", &self.builder)
            .field("next_level", &self.pending.0)
            .finish()
    }
}

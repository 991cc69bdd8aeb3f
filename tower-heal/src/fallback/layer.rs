//! The layer.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use tower_outcome::{BoxErrorAnswer, ErrorsAsFailures};

use super::builder::FallbackBuilder;
use super::shared::Shared;
use super::{CloneRequest, DegradationLevel};
#[cfg(doc)]
use super::{Degraded, FallbackOn};

/// Answers with a fallback service when the primary fails, marking the answer [`Degraded`].
///
/// The fallback is used on a classified failure, an error, or a rejection by one of the
/// family's layers ([`FallbackOn`], all three by default). It is called with what
/// [`keep`](FallbackBuilder::keep) kept of the request before the primary ran (by default a
/// clone: [`CloneRequest`]). Its answer carries a [`Degraded`] marker with the layer's
/// `component` and `level`. If the fallback fails too, the primary's own result is returned
/// (level 4, [`DegradationLevel::Failed`]).
///
/// ```
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
/// use tower_heal::{Degradable, DegradationLevel, FallbackLayer, Marked};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_heal::BoxError> {
/// let cache = service_fn(|_id: u32| async { Ok::<_, std::io::Error>(Marked::new("cached")) });
/// let mut svc = ServiceBuilder::new()
///     .layer(FallbackLayer::new("templates", DegradationLevel::Slight, cache))
///     .service_fn(|_id: u32| async {
///         Err::<Marked<&str>, _>(std::io::Error::other("github down"))
///     });
///
/// let answer = svc.ready().await?.call(7).await?;
/// assert_eq!(answer.value, "cached");
/// assert_eq!(answer.degraded().unwrap().level(), DegradationLevel::Slight);
/// # Ok(()) }
/// ```
#[must_use]
pub struct FallbackLayer<F, K = CloneRequest, C = ErrorsAsFailures, A = BoxErrorAnswer> {
    pub(crate) shared: Arc<Shared<F, K, C>>,
    pub(super) _answer: PhantomData<fn() -> A>,
}

impl<F> FallbackLayer<F> {
    /// A fallback for `component` answering at `level`, on every kind of failure.
    pub fn new(component: impl Into<Arc<str>>, level: DegradationLevel, fallback: F) -> Self {
        FallbackBuilder::new(component).level(level).build(fallback)
    }
}

impl FallbackLayer<()> {
    /// A builder for `component` (default level [`Slight`](DegradationLevel::Slight)).
    pub fn builder(component: impl Into<Arc<str>>) -> FallbackBuilder {
        FallbackBuilder::new(component)
    }
}

impl<F, K, C, A> FallbackLayer<F, K, C, A> {
    /// The component's name.
    #[must_use]
    pub fn component(&self) -> &str {
        &self.shared.component
    }

    /// The level the fallback's answers are marked with.
    #[must_use]
    pub fn level(&self) -> DegradationLevel {
        self.shared.level
    }
}

impl<F, K, C, A> Clone for FallbackLayer<F, K, C, A> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _answer: PhantomData,
        }
    }
}

impl<F, K, C, A> fmt::Debug for FallbackLayer<F, K, C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("component", &self.shared.component)
            .field("level", &self.shared.level)
            .field("on", &self.shared.on)
            .field("fallback", &std::any::type_name::<F>())
            .finish()
    }
}

impl<S, F, K, C, A> Layer<S> for FallbackLayer<F, K, C, A> {
    type Service = super::Fallback<S, F, K, C, A>;

    fn layer(&self, inner: S) -> Self::Service {
        super::Fallback::new(inner, Arc::clone(&self.shared))
    }
}

impl<F, K, C, A> FallbackLayer<F, K, C, A> {
    pub(crate) fn from_shared(shared: Shared<F, K, C>) -> Self {
        Self {
            shared: Arc::new(shared),
            _answer: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    use metrics::{
        Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    /// A gauge whose first write of 0 pauses (up to 200 ms) until another write lands, so a
    /// second call can slip in between the first call's level change and its gauge write.
    #[derive(Default)]
    struct SlowGauge {
        value: AtomicU64,
        paused: Mutex<(bool, bool)>,
        changed: Condvar,
    }

    impl GaugeFn for SlowGauge {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, value: f64) {
            let mut state = self.paused.lock().unwrap();
            if value == 0.0 && !state.0 {
                state.0 = true;
                self.changed.notify_all();
                // Bounded: with the fix the other write waits for this one, and never comes.
                let (next, _) = self
                    .changed
                    .wait_timeout_while(state, Duration::from_millis(200), |s| !s.1)
                    .unwrap();
                state = next;
            } else {
                state.1 = true;
                self.changed.notify_all();
            }
            drop(state);
            self.value.store(value.to_bits(), Ordering::SeqCst);
        }
    }

    struct OneGauge(Arc<SlowGauge>);

    impl Recorder for OneGauge {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::clone(&self.0))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn the_gauge_ends_at_the_level_kept_when_two_calls_race_at_a_change() {
        let gauge = Arc::new(SlowGauge::default());
        let recorder = OneGauge(Arc::clone(&gauge));
        let shared = metrics::with_local_recorder(&recorder, || {
            FallbackBuilder::new("race").shared((), DegradationLevel::Slight, true)
        });
        // Start at level 1, so that the first call's change back to 0 is the paused write.
        shared.report(DegradationLevel::Slight);
        *gauge.paused.lock().unwrap() = (false, false);
        std::thread::scope(|s| {
            s.spawn(|| shared.report(DegradationLevel::Full));
            s.spawn(|| {
                // Once the first call is between its change and its gauge write...
                let state = gauge.paused.lock().unwrap();
                drop(gauge.changed.wait_while(state, |s| !s.0).unwrap());
                // ...a second call changes the level again.
                shared.report(DegradationLevel::Slight);
            });
        });
        let shown = f64::from_bits(gauge.value.load(Ordering::SeqCst));
        assert_eq!(
            shown,
            f64::from(shared.current_level()),
            "the gauge shows the level kept, so later calls at that level need not write it"
        );
    }
}

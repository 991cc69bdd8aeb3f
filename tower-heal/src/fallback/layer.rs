//! The layer and its builder.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tower_layer::Layer;

use super::builder::FallbackBuilder;
use tower_outcome::{BoxErrorAnswer, Classify, ErrorsAsFailures, Outcome, Settle, find_rejected};

use super::{CloneRequest, Degradable, DegradationLevel, Degraded, Trigger};
use crate::metrics::FallbackMetrics;

/// Which failures of the primary the fallback answers. By default all three.
///
/// ```
/// use tower_heal::FallbackOn;
///
/// let only_rejections = FallbackOn::NONE.rejection(true);
/// assert!(!only_rejections.is_on_error());
/// assert!(FallbackOn::ALL.is_on_failure());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct FallbackOn {
    failure: bool,
    error: bool,
    rejection: bool,
}

impl FallbackOn {
    /// Classified failures, errors and rejections (the default).
    pub const ALL: Self = Self {
        failure: true,
        error: true,
        rejection: true,
    };
    /// Nothing (a starting point for the setters).
    pub const NONE: Self = Self {
        failure: false,
        error: false,
        rejection: false,
    };

    /// A response the classifier calls a failure (an HTTP 503 under `HttpStatus`).
    pub const fn failure(mut self, on: bool) -> Self {
        self.failure = on;
        self
    }

    /// An error the classifier calls a failure (connection refused, a timeout).
    pub const fn error(mut self, on: bool) -> Self {
        self.error = on;
        self
    }

    /// A rejection by one of the family's layers (an open breaker, a full bulkhead), as an
    /// error or as an answered response.
    pub const fn rejection(mut self, on: bool) -> Self {
        self.rejection = on;
        self
    }

    /// Whether classified failures are answered.
    #[must_use]
    pub const fn is_on_failure(&self) -> bool {
        self.failure
    }

    /// Whether errors are answered.
    #[must_use]
    pub const fn is_on_error(&self) -> bool {
        self.error
    }

    /// Whether rejections are answered.
    #[must_use]
    pub const fn is_on_rejection(&self) -> bool {
        self.rejection
    }
}

impl Default for FallbackOn {
    fn default() -> Self {
        Self::ALL
    }
}

/// Records the classifier's verdict on a response, so the fallback can decide at once.
///
/// This is the [`Settle`] obligation a [`FallbackLayer`] hands its classifier; classifiers that
/// settle from the response value (`ErrorsAsFailures`, `HttpStatus`, `FnClassifier`) work. One
/// that waits for the end of the stream (gRPC trailers) cannot steer a fallback.
#[derive(Debug)]
pub struct OutcomeRecorder<'a>(&'a Cell<Outcome>);

impl<'a> OutcomeRecorder<'a> {
    /// An obligation that writes the outcome into `cell`.
    #[must_use]
    pub const fn new(cell: &'a Cell<Outcome>) -> Self {
        Self(cell)
    }
}

impl Settle for OutcomeRecorder<'_> {
    fn settle(self, outcome: Outcome) {
        self.0.set(outcome);
    }
}

/// State shared by every service a [`FallbackLayer`] makes.
pub(crate) struct Shared<F, K, C> {
    pub(crate) fallback: F,
    pub(crate) keep: K,
    pub(crate) classifier: C,
    pub(crate) component: Arc<str>,
    pub(crate) level: DegradationLevel,
    pub(crate) on: FallbackOn,
    pub(crate) header: bool,
    /// The outermost stage of a chain (or a lone layer): it alone reports level 4.
    pub(crate) last_stage: bool,
    /// The level last reported on the gauge, so a healthy call writes nothing.
    pub(super) current: AtomicU8,
    /// Held while `current` and the gauge change together, so two calls racing at a level
    /// change cannot leave the gauge at one level and `current` at another (which would keep
    /// the gauge wrong until the level changes again).
    pub(super) gauge: std::sync::Mutex<()>,
    pub(crate) metrics: FallbackMetrics,
}

impl<F, K, C> Shared<F, K, C> {
    /// Why the primary's response needs the fallback, if it does.
    #[inline]
    pub(crate) fn judge_response<Res>(&self, response: Res) -> (Res, Option<Trigger>)
    where
        Res: Degradable,
        C: for<'a> Classify<Res, Response<OutcomeRecorder<'a>> = Res>,
    {
        if self.on.rejection && response.is_rejection() {
            return (response, Some(Trigger::Rejection));
        }
        let verdict = Cell::new(Outcome::Ignore);
        let response = self
            .classifier
            .classify_response(response, OutcomeRecorder(&verdict));
        let trigger =
            (self.on.failure && verdict.get() == Outcome::Failure).then_some(Trigger::Failure);
        (response, trigger)
    }

    /// Why the primary's error needs the fallback, if it does.
    pub(crate) fn judge_error<Res>(
        &self,
        error: &(dyn std::error::Error + 'static),
    ) -> Option<Trigger>
    where
        C: Classify<Res>,
    {
        if find_rejected(error).is_some() {
            return self.on.rejection.then_some(Trigger::Rejection);
        }
        let failed = self.classifier.classify_error(error) == Outcome::Failure;
        (self.on.error && failed).then_some(Trigger::Error)
    }

    /// Reports the level of an answer on the gauge, writing only when it changed (one load
    /// on the hot path; a lock only at a change of level).
    #[inline]
    pub(crate) fn report(&self, level: DegradationLevel) {
        if self.current.load(Ordering::Relaxed) != level as u8 {
            self.report_change(level);
        }
    }

    #[inline(never)]
    fn report_change(&self, level: DegradationLevel) {
        // The gauge and `current` change under one lock: the gauge always ends at the level
        // `current` holds, whatever the interleaving.
        let _gauge = self
            .gauge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.current.store(level as u8, Ordering::Relaxed);
        self.metrics.level(level);
    }

    #[cfg(test)]
    pub(crate) fn current_level(&self) -> u8 {
        self.current.load(Ordering::Relaxed)
    }

    pub(crate) fn answered<Res: Degradable>(&self, response: &mut Res, trigger: Trigger) {
        // A fallback that is itself degraded (a chain inside the fallback) keeps the worse level.
        let level = response
            .degraded()
            .map_or(self.level, |d| d.level().max(self.level));
        response.mark_degraded(
            Degraded::new(Arc::clone(&self.component), level),
            self.header,
        );
        self.metrics.fallback(level);
        self.report(level);
        tracing::info!(
            target: "tower_heal",
            component = &*self.component,
            level = level.as_u8(),
            trigger = trigger.as_str(),
            "fallback answered"
        );
    }

    pub(crate) fn unanswered(&self, trigger: Trigger, why: &dyn fmt::Display) {
        if self.last_stage {
            self.metrics.fallback(DegradationLevel::Failed);
            self.report(DegradationLevel::Failed);
        }
        tracing::warn!(
            target: "tower_heal",
            component = &*self.component,
            level = if self.last_stage { 4 } else { self.level.as_u8() },
            trigger = trigger.as_str(),
            error = %why,
            "fallback failed; the primary's failure is returned"
        );
    }
}

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

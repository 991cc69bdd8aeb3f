//! What the services of one fallback layer share: which failures it answers ([`FallbackOn`]),
//! the classifier's obligation ([`OutcomeRecorder`]) and the layer's state.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tower_outcome::{Classify, Outcome, Settle, find_rejected};

use super::{Degradable, DegradationLevel, Degraded, Trigger};
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
/// This is the [`Settle`] obligation a [`FallbackLayer`](crate::FallbackLayer) hands its classifier; classifiers that
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

/// State shared by every service a [`FallbackLayer`](crate::FallbackLayer) makes.
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

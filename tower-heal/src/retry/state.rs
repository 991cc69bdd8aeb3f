//! The state every clone of a retry layer shares, and the retry event.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::budget::Budget;
use crate::metrics::RetryMetrics;
use crate::retry::policy::Policies;
use crate::{Class, Failure};

/// What a retry hook and the tracing event are told about a retry about to wait.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a> {
    /// The layer's name.
    pub name: &'a str,
    /// The attempt that failed (1 = the first).
    pub attempt: u32,
    /// The most attempts its class allows (1 + `max_retries`).
    pub max_attempts: u32,
    /// The class of the failure.
    pub class: Class,
    /// The HTTP status or gRPC code, when there is one.
    pub code: Option<u16>,
    /// The back-off about to be slept before the next attempt.
    pub delay: Duration,
}

pub(crate) type Hook = Arc<dyn Fn(&RetryEvent<'_>) + Send + Sync>;

pub(crate) struct Shared<C, G, R> {
    pub(crate) name: Arc<str>,
    pub(crate) classifier: C,
    pub(crate) gate: G,
    pub(crate) replay: R,
    pub(crate) policies: Policies,
    pub(crate) max_retry_after: Duration,
    pub(crate) max_rejection_wait: Duration,
    pub(crate) max_total_delay: Option<Duration>,
    pub(crate) retry_non_idempotent: bool,
    pub(crate) budget: Arc<Budget>,
    pub(crate) hook: Option<Hook>,
    pub(crate) metrics: RetryMetrics,
    seed: u64,
    /// Counts calls that needed a random number, so each gets its own stream.
    sequence: AtomicU64,
}

impl<C, G, R> Shared<C, G, R> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: Arc<str>,
        classifier: C,
        gate: G,
        replay: R,
        policies: Policies,
        limits: (Duration, Duration, Option<Duration>),
        retry_non_idempotent: bool,
        budget: Arc<Budget>,
        hook: Option<Hook>,
        seed: u64,
    ) -> Self {
        let metrics = RetryMetrics::new(&name, budget.label());
        Self {
            name,
            classifier,
            gate,
            replay,
            policies,
            max_retry_after: limits.0,
            max_rejection_wait: limits.1,
            max_total_delay: limits.2,
            retry_non_idempotent,
            budget,
            hook,
            metrics,
            seed,
            sequence: AtomicU64::new(0),
        }
    }

    /// A random stream for one call, taken when it first needs one (the failure path): the
    /// same seed and the same order of calls give the same delays.
    pub(crate) fn rng(&self) -> fastrand::Rng {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        fastrand::Rng::with_seed(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub(crate) fn retrying(
        &self,
        failure: &Failure,
        attempt: u32,
        max_attempts: u32,
        delay: Duration,
    ) {
        let ms = delay.as_millis();
        match failure.code {
            Some(code) => tracing::info!(
                retry = %self.name,
                class = failure.class.as_str(),
                code,
                "attempt {attempt}/{max_attempts} failed: {} ({code}); waiting {ms} ms",
                failure.class
            ),
            None => tracing::info!(
                retry = %self.name,
                class = failure.class.as_str(),
                "attempt {attempt}/{max_attempts} failed: {}; waiting {ms} ms",
                failure.class
            ),
        }
        self.metrics.retry(failure.class.as_str(), delay);
        if let Some(hook) = &self.hook {
            hook(&RetryEvent {
                name: &self.name,
                attempt,
                max_attempts,
                class: failure.class,
                code: failure.code,
                delay,
            });
        }
    }

    pub(crate) fn stopped(&self, failure: &Failure, attempt: u32, reason: &'static str) {
        tracing::debug!(
            retry = %self.name,
            class = failure.class.as_str(),
            "attempt {attempt} failed: {}; not retried: {reason}",
            failure.class
        );
    }

    pub(crate) fn refused(&self, failure: &Failure, attempt: u32) {
        self.metrics.refused();
        tracing::warn!(
            retry = %self.name,
            class = failure.class.as_str(),
            "attempt {attempt} failed: {}; not retried: the retry {} is exhausted",
            failure.class,
            self.budget.label()
        );
    }
}

impl<C, G, R> fmt::Debug for Shared<C, G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("name", &self.name)
            .field("default", &self.policies.default)
            .field("classes", &self.policies.classes)
            .field("max_retry_after", &self.max_retry_after)
            .field("max_total_delay", &self.max_total_delay)
            .field("budget", &self.budget.label())
            .finish_non_exhaustive()
    }
}

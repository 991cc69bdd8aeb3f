//! Metric names and descriptions of every tower-heal layer, and the handles the layers keep.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `heal_attempts_total` | counter | `retry`, `outcome` = `success`, `failure` | attempts of calls that met a failure: every failed attempt (`failure`: classified in a class), and the attempt that then succeeded (`success`). A call that succeeds at its first attempt is not counted: that is the hot path, and request metrics count it |
//! | `heal_retries_total` | counter | `retry`, `class` | retries started, by the class of the failure |
//! | `heal_backoff_seconds` | histogram | `retry` | each back-off slept before a retry |
//! | `heal_retries_refused_total` | counter | `retry`, `reason` = `budget`, `throttle` | retries the budget refused (it never waits) |
//! | `heal_hedges_total` | counter | `hedge`, `result` = `sent`, `won`, `refused` | hedged copies sent, won, refused by the budget |
//! | `heal_fallbacks_total` | counter | `component`, `level` = `1` \| `2` \| `3` \| `4` | answers by a fallback at a level; `4` counts calls no fallback answered |
//! | `heal_degradation_level` | gauge | `component` | the level of the component's latest answer, 0 (full) to 4 (failed) |
//! | `heal_recoveries_total` | counter | `component`, `result` = `success` \| `failure` | recovery actions run (hook or rebuild) |
//! | `heal_escalations_total` | counter | `component` | recoveries that did not help `max_attempts` times in a row |
//! | `heal_idempotent_replays_total` | counter | — | duplicate requests answered from the store |
//! | `heal_store_evictions_total` | counter | — | entries a result store (in memory or SQLite) evicted before their ttl (it was full) |
//! | `heal_store_failures_total` | counter | — | calls of a `RedisStore` (feature `redis`) that failed or timed out |
//! | `heal_checkpoint_resumes_total` | counter | — | workflow runs that skipped steps already completed |
//!
//! Labels are the layer's `name`, fixed words and class names (a bounded set chosen in code
//! or configuration), never a request's path or key. Handles are registered when the layer
//! is built, with the recorder installed at that moment: install your recorder first.

use std::sync::{Arc, Once};

use metrics::{Counter, Histogram, SharedString, Unit};

mod healing;
#[cfg(feature = "checkpoint")]
pub(crate) use healing::resume_counter;
pub use healing::{
    CHECKPOINT_RESUMES_TOTAL, DEGRADATION_LEVEL, ESCALATIONS_TOTAL, FALLBACKS_TOTAL,
    IDEMPOTENT_REPLAYS_TOTAL, RECOVERIES_TOTAL, STORE_EVICTIONS_TOTAL,
};
pub(crate) use healing::{
    FallbackMetrics, RecoveryMetrics, replay_counter, store_eviction_counter,
};

/// `heal_attempts_total{retry,outcome}`.
pub const ATTEMPTS_TOTAL: &str = "heal_attempts_total";
/// `heal_retries_total{retry,class}`.
pub const RETRIES_TOTAL: &str = "heal_retries_total";
/// `heal_backoff_seconds{retry}`.
pub const BACKOFF_SECONDS: &str = "heal_backoff_seconds";
/// `heal_retries_refused_total{retry,reason}`: budget exhaustion.
pub const RETRIES_REFUSED_TOTAL: &str = "heal_retries_refused_total";
/// `heal_hedges_total{hedge,result}`.
pub const HEDGES_TOTAL: &str = "heal_hedges_total";

/// Describes every tower-heal metric to the installed recorder. Building a layer does this
/// once by itself; call it yourself only to describe them before any layer exists.
pub fn describe_metrics() {
    healing::describe_healing();
    metrics::describe_counter!(
        ATTEMPTS_TOTAL,
        Unit::Count,
        "Attempts of calls that met a failure (failed attempts, and the attempt that then succeeded), by outcome."
    );
    metrics::describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "Retries started, by the class of the failure."
    );
    metrics::describe_histogram!(
        BACKOFF_SECONDS,
        Unit::Seconds,
        "Back-off slept before a retry."
    );
    metrics::describe_counter!(
        RETRIES_REFUSED_TOTAL,
        Unit::Count,
        "Retries refused because the retry budget (or throttle) was exhausted."
    );
    metrics::describe_counter!(
        HEDGES_TOTAL,
        Unit::Count,
        "Hedged requests sent, won, or refused by the budget."
    );
}

static DESCRIBE: Once = Once::new();

pub(crate) struct RetryMetrics {
    name: SharedString,
    success: Counter,
    failure: Counter,
    backoff: Histogram,
    refused: Counter,
}

impl RetryMetrics {
    pub(crate) fn new(name: &Arc<str>, budget: &'static str) -> Self {
        DESCRIBE.call_once(describe_metrics);
        let label = SharedString::from(Arc::clone(name));
        Self {
            success: metrics::counter!(ATTEMPTS_TOTAL, "retry" => label.clone(), "outcome" => "success"),
            failure: metrics::counter!(ATTEMPTS_TOTAL, "retry" => label.clone(), "outcome" => "failure"),
            backoff: metrics::histogram!(BACKOFF_SECONDS, "retry" => label.clone()),
            refused: metrics::counter!(RETRIES_REFUSED_TOTAL, "retry" => label.clone(), "reason" => budget),
            name: label,
        }
    }

    #[inline]
    pub(crate) fn success(&self) {
        self.success.increment(1);
    }

    pub(crate) fn failure(&self) {
        self.failure.increment(1);
    }

    pub(crate) fn retry(&self, class: &'static str, backoff: std::time::Duration) {
        metrics::counter!(RETRIES_TOTAL, "retry" => self.name.clone(), "class" => class)
            .increment(1);
        self.backoff.record(backoff.as_secs_f64());
    }

    pub(crate) fn refused(&self) {
        self.refused.increment(1);
    }
}

pub(crate) struct HedgeMetrics {
    sent: Counter,
    won: Counter,
    refused: Counter,
}

impl HedgeMetrics {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        DESCRIBE.call_once(describe_metrics);
        let label = SharedString::from(Arc::clone(name));
        Self {
            sent: metrics::counter!(HEDGES_TOTAL, "hedge" => label.clone(), "result" => "sent"),
            won: metrics::counter!(HEDGES_TOTAL, "hedge" => label.clone(), "result" => "won"),
            refused: metrics::counter!(HEDGES_TOTAL, "hedge" => label, "result" => "refused"),
        }
    }

    pub(crate) fn sent(&self) {
        self.sent.increment(1);
    }

    pub(crate) fn won(&self) {
        self.won.increment(1);
    }

    pub(crate) fn refused(&self) {
        self.refused.increment(1);
    }
}

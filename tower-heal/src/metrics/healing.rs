//! Fallback, recovery, idempotency and checkpoint metrics (names listed in the parent module).

use std::sync::{Arc, Once};

use metrics::{Counter, Gauge, SharedString, Unit};

use crate::DegradationLevel;

/// `heal_fallbacks_total{component,level}`.
pub const FALLBACKS_TOTAL: &str = "heal_fallbacks_total";
/// `heal_degradation_level{component}`.
pub const DEGRADATION_LEVEL: &str = "heal_degradation_level";
/// `heal_recoveries_total{component,result}`.
pub const RECOVERIES_TOTAL: &str = "heal_recoveries_total";
/// `heal_escalations_total{component}`.
pub const ESCALATIONS_TOTAL: &str = "heal_escalations_total";
/// `heal_idempotent_replays_total`.
pub const IDEMPOTENT_REPLAYS_TOTAL: &str = "heal_idempotent_replays_total";
/// `heal_store_evictions_total`: entries a result store evicted before their ttl (it was
/// full).
pub const STORE_EVICTIONS_TOTAL: &str = "heal_store_evictions_total";
/// `heal_checkpoint_resumes_total`.
pub const CHECKPOINT_RESUMES_TOTAL: &str = "heal_checkpoint_resumes_total";

/// Describes the fallback, recovery, idempotency and checkpoint metrics.
pub(super) fn describe_healing() {
    metrics::describe_counter!(
        FALLBACKS_TOTAL,
        Unit::Count,
        "Answers by a fallback, by component and degradation level (4: no fallback answered)."
    );
    metrics::describe_gauge!(
        DEGRADATION_LEVEL,
        "Degradation level of the component's latest answer: 0 full, 1 slight, 2 moderate, 3 minimal, 4 failed."
    );
    metrics::describe_counter!(
        RECOVERIES_TOTAL,
        Unit::Count,
        "Recovery actions run (hook or rebuild from the factory), by result."
    );
    metrics::describe_counter!(
        ESCALATIONS_TOTAL,
        Unit::Count,
        "Escalations: max_attempts recoveries in a row without improvement."
    );
    metrics::describe_counter!(
        IDEMPOTENT_REPLAYS_TOTAL,
        Unit::Count,
        "Duplicate requests answered with the stored response of the first call."
    );
    metrics::describe_counter!(
        STORE_EVICTIONS_TOTAL,
        Unit::Count,
        "Entries of a result store (in memory or SQLite) evicted before their ttl (the store was full)."
    );
    metrics::describe_counter!(
        CHECKPOINT_RESUMES_TOTAL,
        Unit::Count,
        "Workflow runs that resumed after steps already completed."
    );
}

static DESCRIBE: Once = Once::new();

pub(crate) fn describe_once() {
    DESCRIBE.call_once(super::describe_metrics);
}

/// A fallback layer's handles.
pub(crate) struct FallbackMetrics {
    /// Indexed by level; index 0 is unused (level 0 is not a fallback).
    fallbacks: [Counter; 5],
    level: Gauge,
}

impl FallbackMetrics {
    pub(crate) fn new(component: &Arc<str>) -> Self {
        describe_once();
        let label = SharedString::from(Arc::clone(component));
        let fallbacks = DegradationLevel::ALL.map(|level| {
            metrics::counter!(FALLBACKS_TOTAL, "component" => label.clone(), "level" => level.as_label())
        });
        let level = metrics::gauge!(DEGRADATION_LEVEL, "component" => label);
        level.set(0.0);
        Self { fallbacks, level }
    }

    pub(crate) fn fallback(&self, level: DegradationLevel) {
        self.fallbacks[level as usize].increment(1);
    }

    pub(crate) fn level(&self, level: DegradationLevel) {
        self.level.set(f64::from(level.as_u8()));
    }
}

/// A recovery layer's handles.
pub(crate) struct RecoveryMetrics {
    success: Counter,
    failure: Counter,
    escalations: Counter,
}

impl RecoveryMetrics {
    pub(crate) fn new(component: &Arc<str>) -> Self {
        describe_once();
        let label = SharedString::from(Arc::clone(component));
        Self {
            success: metrics::counter!(RECOVERIES_TOTAL, "component" => label.clone(), "result" => "success"),
            failure: metrics::counter!(RECOVERIES_TOTAL, "component" => label.clone(), "result" => "failure"),
            escalations: metrics::counter!(ESCALATIONS_TOTAL, "component" => label),
        }
    }

    pub(crate) fn recovery(&self, ok: bool) {
        if ok {
            self.success.increment(1);
        } else {
            self.failure.increment(1);
        }
    }

    pub(crate) fn escalation(&self) {
        self.escalations.increment(1);
    }
}

pub(crate) fn store_eviction_counter() -> Counter {
    describe_once();
    metrics::counter!(STORE_EVICTIONS_TOTAL)
}

pub(crate) fn replay_counter() -> Counter {
    describe_once();
    metrics::counter!(IDEMPOTENT_REPLAYS_TOTAL)
}

#[cfg(feature = "checkpoint")]
pub(crate) fn resume_counter() -> Counter {
    describe_once();
    metrics::counter!(CHECKPOINT_RESUMES_TOTAL)
}

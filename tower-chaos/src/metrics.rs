//! Metric names, descriptions and the handles a chaos layer keeps.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `chaos_injected_total` | counter | `chaos`, `fault` | faults injected, by fault name |
//! | `chaos_dry_run_total` | counter | `chaos`, `fault` | faults decided but not injected (dry run) |
//! | `chaos_overflow_total` | counter | `chaos` | faults not injected because `max_active_faults` were in progress |
//! | `chaos_armed` | gauge | `chaos` | 1 while the layer is armed, 0 otherwise |
//! | `chaos_guard_trips_total` | counter | `chaos` | times the guard disarmed the layer |
//!
//! `chaos` is the layer's name and `fault` the fault's name (its kind by default, such as
//! `latency` or `http_503`): both are fixed when the layer is built, so cardinality stays low.
//! Handles are registered when the layer is built, with the recorder installed at that moment:
//! install your recorder before building layers.

use std::sync::{Arc, Once};

use metrics::{Counter, Gauge, SharedString, Unit};

/// `chaos_injected_total{chaos,fault}`.
pub const INJECTED_TOTAL: &str = "chaos_injected_total";
/// `chaos_dry_run_total{chaos,fault}`.
pub const DRY_RUN_TOTAL: &str = "chaos_dry_run_total";
/// `chaos_overflow_total{chaos}`.
pub const OVERFLOW_TOTAL: &str = "chaos_overflow_total";
/// `chaos_armed{chaos}`.
pub const ARMED: &str = "chaos_armed";
/// `chaos_guard_trips_total{chaos}`.
pub const GUARD_TRIPS_TOTAL: &str = "chaos_guard_trips_total";

/// Describes the chaos metrics to the installed recorder. Building a layer does this once by
/// itself; call it yourself only to describe them before any layer exists.
pub fn describe_metrics() {
    metrics::describe_counter!(
        INJECTED_TOTAL,
        Unit::Count,
        "Faults injected by a chaos layer, by fault."
    );
    metrics::describe_counter!(
        DRY_RUN_TOTAL,
        Unit::Count,
        "Faults a chaos layer in dry-run mode decided on but did not inject, by fault."
    );
    metrics::describe_counter!(
        OVERFLOW_TOTAL,
        Unit::Count,
        "Faults not injected because max_active_faults were already in progress."
    );
    metrics::describe_gauge!(ARMED, "1 while a chaos layer is armed, 0 otherwise.");
    metrics::describe_counter!(
        GUARD_TRIPS_TOTAL,
        Unit::Count,
        "Times a chaos layer's guard disarmed it because the real error rate passed its limit."
    );
}

static DESCRIBE: Once = Once::new();

pub(crate) struct FaultMetrics {
    pub(crate) injected: Counter,
    pub(crate) dry_run: Counter,
}

impl FaultMetrics {
    pub(crate) fn new(layer: &SharedString, fault: &Arc<str>) -> Self {
        let fault = SharedString::from(Arc::clone(fault));
        Self {
            injected: metrics::counter!(INJECTED_TOTAL, tower_outcome::LayerKind::Chaos.label() => layer.clone(), "fault" => fault.clone()),
            dry_run: metrics::counter!(DRY_RUN_TOTAL, tower_outcome::LayerKind::Chaos.label() => layer.clone(), "fault" => fault),
        }
    }
}

pub(crate) struct Metrics {
    pub(crate) label: SharedString,
    pub(crate) armed: Gauge,
    pub(crate) overflow: Counter,
    pub(crate) guard_trips: Counter,
}

impl Metrics {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        DESCRIBE.call_once(describe_metrics);
        let label = SharedString::from(Arc::clone(name));
        let armed =
            metrics::gauge!(ARMED, tower_outcome::LayerKind::Chaos.label() => label.clone());
        armed.set(0.0);
        Self {
            armed,
            overflow: metrics::counter!(OVERFLOW_TOTAL, tower_outcome::LayerKind::Chaos.label() => label.clone()),
            guard_trips: metrics::counter!(GUARD_TRIPS_TOTAL, tower_outcome::LayerKind::Chaos.label() => label.clone()),
            label,
        }
    }
}

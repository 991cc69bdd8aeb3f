//! Metric names, descriptions and the handles a bulkhead keeps.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `bulkhead_in_flight` | gauge | `bulkhead` | calls holding a permit (summed over keys) |
//! | `bulkhead_tokens_in_use` | gauge | `bulkhead` | tokens held in in-flight budgets (summed over keys) |
//! | `bulkhead_rejected_total` | counter | `bulkhead`, `reason` = `bulkhead_full`, `budget_exhausted`, `cost_exceeds_capacity`, `wait_timed_out` | calls refused |
//! | `bulkhead_wait_seconds` | histogram | `bulkhead` | time spent waiting by calls that waited (admitted or timed out) |
//! | `bulkhead_keys` | gauge | `bulkhead` | live keys of a per-key layer |
//!
//! Labels are the layer's name and the reason, never a key. Handles are registered when the
//! layer is built, with the recorder installed at that moment: install your recorder before
//! building layers.

use std::sync::{Arc, Once};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, SharedString, Unit};
use tower_outcome::Reason;

/// `bulkhead_in_flight{bulkhead}`.
pub const IN_FLIGHT: &str = "bulkhead_in_flight";
/// `bulkhead_tokens_in_use{bulkhead}`.
pub const TOKENS_IN_USE: &str = "bulkhead_tokens_in_use";
/// `bulkhead_rejected_total{bulkhead,reason}`.
pub const REJECTED_TOTAL: &str = "bulkhead_rejected_total";
/// `bulkhead_wait_seconds{bulkhead}`.
pub const WAIT_SECONDS: &str = "bulkhead_wait_seconds";
/// `bulkhead_keys{bulkhead}`: live keys of a per-key layer.
pub const KEYS: &str = "bulkhead_keys";

/// Describes the bulkhead's metrics to the installed recorder. Building a layer does this once
/// by itself; call it yourself only to describe them before any layer exists.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        IN_FLIGHT,
        Unit::Count,
        "Calls holding a bulkhead permit (in flight, or streaming their response body)."
    );
    metrics::describe_gauge!(
        TOKENS_IN_USE,
        Unit::Count,
        "Tokens held in a bulkhead's in-flight budgets."
    );
    metrics::describe_counter!(
        REJECTED_TOTAL,
        Unit::Count,
        "Calls refused by a bulkhead, by reason."
    );
    metrics::describe_histogram!(
        WAIT_SECONDS,
        Unit::Seconds,
        "Time calls spent waiting for room in a bulkhead (only calls that waited)."
    );
    metrics::describe_gauge!(KEYS, Unit::Count, "Live keys of a per-key bulkhead.");
}

static DESCRIBE: Once = Once::new();

/// The label of a rejection reason ([`Reason::label`]); a reason the bulkhead never gives
/// counts as full.
pub(crate) const fn reason_label(reason: Reason) -> &'static str {
    match reason {
        Reason::BudgetExhausted | Reason::CostExceedsCapacity | Reason::WaitTimedOut => {
            reason.label()
        }
        _ => Reason::BulkheadFull.label(),
    }
}

const REASONS: [Reason; 4] = [
    Reason::BulkheadFull,
    Reason::BudgetExhausted,
    Reason::CostExceedsCapacity,
    Reason::WaitTimedOut,
];

pub(crate) struct Metrics {
    in_flight: Gauge,
    tokens: Gauge,
    rejected: [Counter; 4],
    wait: Histogram,
    keys: Option<Gauge>,
}

impl Metrics {
    pub(crate) fn new(name: &Arc<str>, keyed: bool) -> Self {
        DESCRIBE.call_once(describe_metrics);
        let label = SharedString::from(Arc::clone(name));
        Self {
            in_flight: metrics::gauge!(IN_FLIGHT, tower_outcome::LayerKind::Bulkhead.label() => label.clone()),
            tokens: metrics::gauge!(TOKENS_IN_USE, tower_outcome::LayerKind::Bulkhead.label() => label.clone()),
            rejected: REASONS.map(|r| {
                metrics::counter!(REJECTED_TOTAL, tower_outcome::LayerKind::Bulkhead.label() => label.clone(), "reason" => reason_label(r))
            }),
            wait: metrics::histogram!(WAIT_SECONDS, tower_outcome::LayerKind::Bulkhead.label() => label.clone()),
            keys: keyed.then(|| metrics::gauge!(KEYS, tower_outcome::LayerKind::Bulkhead.label() => label)),
        }
    }

    /// The `bulkhead_in_flight` handle, which each compartment keeps on its hot line.
    pub(crate) fn in_flight_gauge(&self) -> Gauge {
        self.in_flight.clone()
    }

    #[inline]
    pub(crate) fn tokens_taken(&self, tokens: u64) {
        if tokens > 0 {
            self.tokens.increment(tokens as f64);
        }
    }

    #[inline]
    pub(crate) fn tokens_given_back(&self, tokens: u64) {
        if tokens > 0 {
            self.tokens.decrement(tokens as f64);
        }
    }

    pub(crate) fn tokens_changed(&self, more: u64, less: u64) {
        if more > 0 {
            self.tokens.increment(more as f64);
        }
        if less > 0 {
            self.tokens.decrement(less as f64);
        }
    }

    pub(crate) fn rejected(&self, reason: Reason) {
        let index = match reason {
            Reason::BudgetExhausted => 1,
            Reason::CostExceedsCapacity => 2,
            Reason::WaitTimedOut => 3,
            _ => 0,
        };
        self.rejected[index].increment(1);
    }

    pub(crate) fn waited(&self, waited: Duration) {
        self.wait.record(waited.as_secs_f64());
    }

    pub(crate) fn keys(&self, live: usize) {
        if let Some(gauge) = &self.keys {
            gauge.set(live as f64);
        }
    }
}

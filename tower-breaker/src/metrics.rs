//! Metric names, descriptions and the handles a breaker keeps.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `breaker_calls_total` | counter | `breaker`, `outcome` = `success`, `failure`, `ignored`, `rejected` | calls seen, by outcome |
//! | `breaker_state` | gauge | `breaker`, `state` = `closed`, `open`, `half_open`, `forced_open`, `disabled`, `metrics_only` | one-hot: exactly one state reads 1; moves on transitions only (an open breaker past its reset timeout reads `open` until a call probes it) |
//! | `breaker_transitions_total` | counter | `breaker`, `from`, `to` | state changes |
//! | `breaker_keys` | gauge | `breaker` | live keys of a per-key breaker |
//!
//! Handles are registered when the layer is built, with the recorder installed at that
//! moment: install your recorder before building layers.

use std::sync::{Arc, Once};

use metrics::{Counter, Gauge, SharedString, Unit};
use tower_outcome::Outcome;

use crate::State;

/// `breaker_calls_total{breaker,outcome}`.
pub const CALLS_TOTAL: &str = "breaker_calls_total";
/// `breaker_state{breaker,state}`, one-hot.
pub const STATE: &str = "breaker_state";
/// `breaker_transitions_total{breaker,from,to}`.
pub const TRANSITIONS_TOTAL: &str = "breaker_transitions_total";
/// `breaker_keys{breaker}`: live keys of a per-key breaker.
pub const KEYS: &str = "breaker_keys";

/// Describes the breaker's metrics to the installed recorder. Building a layer does this once
/// by itself; call it yourself only to describe them before any layer exists.
pub fn describe_metrics() {
    metrics::describe_counter!(
        CALLS_TOTAL,
        Unit::Count,
        "Calls seen by a circuit breaker, by outcome."
    );
    metrics::describe_gauge!(
        STATE,
        "Circuit breaker state, one-hot: exactly one state reads 1."
    );
    metrics::describe_counter!(
        TRANSITIONS_TOTAL,
        Unit::Count,
        "Circuit breaker state transitions."
    );
    metrics::describe_gauge!(KEYS, Unit::Count, "Live keys of a per-key circuit breaker.");
}

static DESCRIBE: Once = Once::new();

pub(crate) struct Metrics {
    name: SharedString,
    calls: [Counter; 4],
    /// `None` for per-key breakers: their state is per key, not one series.
    state: Option<[Gauge; State::COUNT]>,
    keys: Option<Gauge>,
}

impl Metrics {
    pub(crate) fn new(name: &Arc<str>, keyed: bool) -> Self {
        DESCRIBE.call_once(describe_metrics);
        let label = SharedString::from(Arc::clone(name));
        let calls = ["success", "failure", "ignored", "rejected"]
            .map(|outcome| metrics::counter!(CALLS_TOTAL, tower_outcome::LayerKind::Breaker.label() => label.clone(), "outcome" => outcome));
        let state = (!keyed).then(|| {
            let gauges = State::ALL
                .map(|s| metrics::gauge!(STATE, tower_outcome::LayerKind::Breaker.label() => label.clone(), "state" => s.as_str()));
            gauges[State::Closed as usize].set(1.0);
            gauges
        });
        let keys = keyed.then(
            || metrics::gauge!(KEYS, tower_outcome::LayerKind::Breaker.label() => label.clone()),
        );
        Self {
            name: label,
            calls,
            state,
            keys,
        }
    }

    #[inline]
    pub(crate) fn call(&self, outcome: Outcome) {
        let index = match outcome {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::Ignore => 2,
        };
        self.calls[index].increment(1);
    }

    #[inline]
    pub(crate) fn rejected(&self) {
        self.calls[3].increment(1);
    }

    /// Called with the transition lock held, so the one-hot gauge never shows two states.
    pub(crate) fn transition(&self, from: State, to: State) {
        if let Some(gauges) = &self.state {
            gauges[from as usize].set(0.0);
            gauges[to as usize].set(1.0);
        }
        metrics::counter!(
            TRANSITIONS_TOTAL,
            tower_outcome::LayerKind::Breaker.label() => self.name.clone(),
            "from" => from.as_str(),
            "to" => to.as_str()
        )
        .increment(1);
    }

    pub(crate) fn keys(&self, live: usize) {
        if let Some(gauge) = &self.keys {
            gauge.set(live as f64);
        }
    }
}

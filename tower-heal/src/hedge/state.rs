//! The state every clone of a hedge layer shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::budget::Budget;
use crate::hedge::latency::Latency;
use crate::metrics::HedgeMetrics;

#[derive(Debug)]
pub(crate) enum HedgeDelay {
    Fixed(Duration),
    Percentile(Box<Latency>),
}

pub(crate) struct HedgeShared<C, G, R> {
    pub(crate) name: Arc<str>,
    pub(crate) classifier: C,
    pub(crate) gate: G,
    pub(crate) replay: R,
    pub(crate) delay: HedgeDelay,
    pub(crate) max_hedges: u32,
    pub(crate) budget: Arc<Budget>,
    /// `false` when the budget is a retry layer's, which already deposits per request.
    pub(crate) deposits: bool,
    pub(crate) metrics: HedgeMetrics,
}

impl<C, G, R> HedgeShared<C, G, R> {
    pub(crate) fn delay(&self) -> Duration {
        match &self.delay {
            HedgeDelay::Fixed(delay) => *delay,
            HedgeDelay::Percentile(latency) => latency.delay(),
        }
    }

    pub(crate) fn record(&self, latency: Duration) {
        if let HedgeDelay::Percentile(tracker) = &self.delay {
            tracker.record(latency);
        }
    }
}

impl<C, G, R> fmt::Debug for HedgeShared<C, G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("name", &self.name)
            .field("delay", &self.delay)
            .field("max_hedges", &self.max_hedges)
            .field("budget", &self.budget.label())
            .finish_non_exhaustive()
    }
}

//! The layer's clock: nanoseconds since the layer was built, on tokio's clock (so paused time
//! moves it), kept with what every compartment of the layer shares.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::Metrics;

/// What every compartment of one layer shares: its name, metrics and clock origin.
pub(crate) struct Common {
    pub(crate) name: Arc<str>,
    pub(crate) metrics: Metrics,
    pub(crate) epoch: Instant,
}

impl Common {
    pub(crate) fn new(name: Arc<str>, keyed: bool) -> Self {
        Self {
            metrics: Metrics::new(&name, keyed),
            name,
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the layer was built, from `tokio::time` (so paused time moves it).
    pub(crate) fn now_ns(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.epoch))
    }

    pub(crate) fn instant(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

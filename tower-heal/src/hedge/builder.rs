//! The hedge builder: typed setters, the presets, and `build`.

use super::layer::HedgeLayer;
use crate::budget::{Budget, BudgetKind};
use crate::hedge::latency::Latency;
use crate::hedge::state::{HedgeDelay, HedgeShared};
use crate::metrics::HedgeMetrics;
use crate::replay::CloneRequest;
use crate::retry::error::check_duration;
use crate::{AnyRequest, ConfigError, DefaultClasses, RetryBudget, RetryIf, RetryLayer};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum DelayConfig {
    Fixed(Duration),
    Percentile {
        percentile: f64,
        min: Duration,
        max: Duration,
    },
}

enum BudgetChoice {
    Own(BudgetKind),
    Shared(Arc<Budget>),
}

/// Builds a [`HedgeLayer`].
#[must_use]
pub struct HedgeBuilder<C = DefaultClasses, G = AnyRequest, R = CloneRequest> {
    name: String,
    delay: DelayConfig,
    max_hedges: u32,
    budget: BudgetChoice,
    classifier: C,
    gate: G,
    replay: R,
}

impl<C, G, R> HedgeBuilder<C, G, R> {
    pub(super) fn with(classifier: C, gate: G, replay: R) -> Self {
        Self {
            name: "hedge".into(),
            delay: DelayConfig::Fixed(Duration::from_millis(100)),
            max_hedges: 1,
            budget: BudgetChoice::Own(BudgetKind::Ratio(RetryBudget::default())),
            classifier,
            gate,
            replay,
        }
    }

    /// `name`: the `hedge` label of the metrics and events.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// `hedge_delay`: a copy after this long without an answer.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = DelayConfig::Fixed(delay);
        self
    }

    /// A copy after the `percentile` (0..100) of recent latencies, kept within `min..=max`
    /// (`max` until 20 latencies are known). Latencies are those of calls not answered on
    /// their future's first poll (the others cost nothing to time and would pull it down).
    pub fn percentile(mut self, percentile: f64, min: Duration, max: Duration) -> Self {
        self.delay = DelayConfig::Percentile {
            percentile,
            min,
            max,
        };
        self
    }

    /// `max_hedges`: copies beyond the first attempt (default 1).
    pub fn max_hedges(mut self, max_hedges: u32) -> Self {
        self.max_hedges = max_hedges;
        self
    }

    /// The layer's own budget (default [`RetryBudget::default`]).
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = BudgetChoice::Own(BudgetKind::Ratio(budget));
        self
    }

    /// No budget: every slow request gets its copies.
    pub fn no_budget(mut self) -> Self {
        self.budget = BudgetChoice::Own(BudgetKind::None);
        self
    }

    /// Hedges withdraw from `retry`'s budget (which already deposits per request).
    pub fn share_budget_with<C2, G2, R2>(mut self, retry: &RetryLayer<C2, G2, R2>) -> Self {
        self.budget = BudgetChoice::Shared(Arc::clone(&retry.shared.budget));
        self
    }

    /// Which answers are good: those `classifier` does not class as failures.
    pub fn classifier<C2>(self, classifier: C2) -> HedgeBuilder<C2, G, R> {
        HedgeBuilder {
            name: self.name,
            delay: self.delay,
            max_hedges: self.max_hedges,
            budget: self.budget,
            classifier,
            gate: self.gate,
            replay: self.replay,
        }
    }

    /// Which requests may be hedged.
    pub fn gate<G2>(self, gate: G2) -> HedgeBuilder<C, G2, R> {
        HedgeBuilder {
            name: self.name,
            delay: self.delay,
            max_hedges: self.max_hedges,
            budget: self.budget,
            classifier: self.classifier,
            gate,
            replay: self.replay,
        }
    }

    /// Hedges only the requests `predicate` accepts.
    pub fn retry_if<F>(self, predicate: F) -> HedgeBuilder<C, RetryIf<F>, R> {
        self.gate(RetryIf::new(predicate))
    }

    /// Replays HTTP request bodies that are not `Clone` from a buffer of at most `max_bytes`.
    #[cfg(feature = "http")]
    pub fn replay_bodies(self, max_bytes: usize) -> HedgeBuilder<C, G, crate::ReplayBodies> {
        HedgeBuilder {
            name: self.name,
            delay: self.delay,
            max_hedges: self.max_hedges,
            budget: self.budget,
            classifier: self.classifier,
            gate: self.gate,
            replay: crate::ReplayBodies::new(max_bytes),
        }
    }

    /// The preset for HTTP clients: good answers are those [`HttpClasses`](crate::HttpClasses)
    /// does not class as failures, only idempotent requests are hedged
    /// ([`IdempotentMethods`](crate::IdempotentMethods)), requests are cloned. Errors stay
    /// errors. The preset replaces the classifier, gate and replay set before it; the settings
    /// stay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_heal::HedgeLayer;
    ///
    /// let hedge = HedgeLayer::builder().http_client().delay(Duration::from_millis(50)).build().unwrap();
    /// # let _ = hedge;
    /// ```
    #[cfg(feature = "http")]
    pub fn http_client(
        self,
    ) -> HedgeBuilder<crate::HttpClasses, crate::IdempotentMethods, CloneRequest> {
        HedgeBuilder {
            name: self.name,
            delay: self.delay,
            max_hedges: self.max_hedges,
            budget: self.budget,
            classifier: crate::HttpClasses::new(),
            gate: crate::IdempotentMethods,
            replay: CloneRequest,
        }
    }

    /// Checks the settings and builds the layer.
    ///
    /// # Errors
    /// The first invalid value.
    pub fn build(self) -> Result<HedgeLayer<C, G, R>, ConfigError> {
        if self.max_hedges == 0 || self.max_hedges > 10 {
            return Err(ConfigError::Count {
                field: "max_hedges",
                value: self.max_hedges.into(),
                max: 10,
            });
        }
        let delay = match self.delay {
            DelayConfig::Fixed(delay) => {
                check_duration("hedge_delay", delay, true)?;
                HedgeDelay::Fixed(delay)
            }
            DelayConfig::Percentile {
                percentile,
                min,
                max,
            } => {
                if !(percentile > 0.0 && percentile < 100.0) {
                    return Err(ConfigError::Number {
                        field: "hedge_percentile",
                        value: percentile,
                        range: "a percentile above 0 and below 100",
                    });
                }
                check_duration("hedge_delay_max", max, false)?;
                if min > max {
                    return Err(ConfigError::Missing {
                        field: "hedge_delay_min",
                        needs: "to be at most hedge_delay_max",
                    });
                }
                HedgeDelay::Percentile(Box::new(Latency::new(percentile, min, max)))
            }
        };
        let (budget, deposits) = match self.budget {
            BudgetChoice::Own(kind) => {
                if let BudgetKind::Ratio(b) = kind {
                    b.validate()?;
                }
                (Arc::new(Budget::new(kind)), true)
            }
            BudgetChoice::Shared(budget) => (budget, false),
        };
        let name: Arc<str> = Arc::from(self.name.as_str());
        Ok(HedgeLayer {
            shared: Arc::new(HedgeShared {
                metrics: HedgeMetrics::new(&name),
                name,
                classifier: self.classifier,
                gate: self.gate,
                replay: self.replay,
                delay,
                max_hedges: self.max_hedges,
                budget,
                deposits,
            }),
        })
    }
}

impl<C, G, R> fmt::Debug for HedgeBuilder<C, G, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeBuilder")
            .field("name", &self.name)
            .field("delay", &self.delay)
            .field("max_hedges", &self.max_hedges)
            .finish_non_exhaustive()
    }
}

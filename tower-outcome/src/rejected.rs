//! The one rejection type of the family.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Which layer raised a [`Rejected`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerKind {
    /// A circuit breaker (`tower-breaker`).
    Breaker,
    /// An isolation compartment (`tower-bulkhead`).
    Bulkhead,
    /// A retry budget or recovery layer (`tower-heal`).
    Heal,
    /// A fault injected on purpose (`tower-chaos`).
    Chaos,
    /// A layer outside the family; the string names it.
    Other(&'static str),
}

impl LayerKind {
    /// The label used in messages and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Breaker => "circuit breaker",
            Self::Bulkhead => "bulkhead",
            Self::Heal => "heal",
            Self::Chaos => "chaos",
            Self::Other(name) => name,
        }
    }

    /// The metric label: `breaker`, `bulkhead`, `heal`, `chaos`, or the string of
    /// [`Other`](Self::Other). Every crate of the family labels its metrics with it.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Breaker => "breaker",
            Self::Bulkhead => "bulkhead",
            Self::Heal => "heal",
            Self::Chaos => "chaos",
            Self::Other(name) => name,
        }
    }
}

/// Why a call was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The circuit is open after tripping.
    CircuitOpen,
    /// The circuit is half-open and every probe slot is taken.
    HalfOpenFull,
    /// The circuit was forced open through a handle.
    ForcedOpen,
    /// Every concurrency slot of a compartment is taken.
    BulkheadFull,
    /// A token budget is exhausted for now.
    BudgetExhausted,
    /// The request costs more than the whole budget: it can never be admitted.
    CostExceedsCapacity,
    /// A bounded wait for capacity ran out.
    WaitTimedOut,
    /// A fault injected by a chaos layer.
    Injected,
    /// Any other reason; the string says which.
    Other(&'static str),
}

impl Reason {
    /// A short lower-case phrase, used in messages.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CircuitOpen => "is open",
            Self::HalfOpenFull => "is half-open and has no free probe slot",
            Self::ForcedOpen => "is forced open",
            Self::BulkheadFull => "is full",
            Self::BudgetExhausted => "has no budget left",
            Self::CostExceedsCapacity => "cannot admit a request costing more than its capacity",
            Self::WaitTimedOut => "timed out waiting for capacity",
            Self::Injected => "injected a fault",
            Self::Other(reason) => reason,
        }
    }

    /// The metric label, in snake case: `circuit_open`, `half_open_full`, `forced_open`,
    /// `bulkhead_full`, `budget_exhausted`, `cost_exceeds_capacity`, `wait_timed_out`,
    /// `injected`, or the string of [`Other`](Self::Other). Every crate of the family labels
    /// its metrics with it.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::CircuitOpen => "circuit_open",
            Self::HalfOpenFull => "half_open_full",
            Self::ForcedOpen => "forced_open",
            Self::BulkheadFull => "bulkhead_full",
            Self::BudgetExhausted => "budget_exhausted",
            Self::CostExceedsCapacity => "cost_exceeds_capacity",
            Self::WaitTimedOut => "wait_timed_out",
            Self::Injected => "injected",
            Self::Other(reason) => reason,
        }
    }

    /// The HTTP status code the `.http()` answer uses: 429 for an exhausted budget, 503 otherwise.
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            Self::BudgetExhausted => 429,
            _ => 503,
        }
    }
}

/// A call refused by one of the family's layers (or by a user's own admission layer).
///
/// In the default answer mode a rejection reaches the caller as a `BoxError` that can be
/// downcast to this type; [`find_rejected`] also looks through an error's `source()` chain,
/// which is where it sits behind a `tonic::Status`.
///
/// ```
/// use std::time::Duration;
/// use tower_outcome::{LayerKind, Reason, Rejected};
///
/// let rejected = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen)
///     .with_name("payments")
///     .with_retry_after(Duration::from_millis(1500));
/// assert_eq!(rejected.to_string(), "circuit breaker \"payments\" is open");
/// assert_eq!(rejected.retry_after(), Some(Duration::from_millis(1500)));
///
/// let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(rejected);
/// assert_eq!(boxed.downcast_ref::<Rejected>().unwrap().reason(), Reason::CircuitOpen);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    kind: LayerKind,
    reason: Reason,
    name: Option<Arc<str>>,
    retry_after: Option<Duration>,
}

impl Rejected {
    /// A rejection from `kind` for `reason`, with no name and no retry hint.
    #[must_use]
    pub const fn new(kind: LayerKind, reason: Reason) -> Self {
        Self {
            kind,
            reason,
            name: None,
            retry_after: None,
        }
    }

    /// Names the instance that rejected (a breaker's or compartment's `name`).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Says how long the caller should wait before trying again.
    #[must_use]
    pub const fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Which layer rejected.
    #[must_use]
    pub const fn kind(&self) -> LayerKind {
        self.kind
    }

    /// Why it rejected.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// The instance's name, if it has one.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// How long to wait before trying again, if the layer knows.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The gRPC status code of the `.grpc()` answer: 8 `RESOURCE_EXHAUSTED` for a bulkhead or a
    /// budget, 14 `UNAVAILABLE` otherwise.
    #[must_use]
    pub const fn grpc_code(&self) -> i32 {
        match (self.kind, self.reason) {
            (LayerKind::Bulkhead, _) | (_, Reason::BudgetExhausted) => 8,
            _ => 14,
        }
    }

    /// The HTTP status code of the `.http()` answer (see [`Reason::http_status`]).
    #[must_use]
    pub const fn http_status(&self) -> u16 {
        self.reason.http_status()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(
                f,
                "{} {name:?} {}",
                self.kind.as_str(),
                self.reason.as_str()
            ),
            None => write!(f, "{} {}", self.kind.as_str(), self.reason.as_str()),
        }
    }
}

impl Error for Rejected {}

/// Finds a [`Rejected`] in `error` or anywhere in its `source()` chain.
///
/// ```
/// use tower_outcome::{find_rejected, LayerKind, Reason, Rejected};
///
/// let err: Box<dyn std::error::Error + Send + Sync> =
///     Box::new(Rejected::new(LayerKind::Bulkhead, Reason::BulkheadFull));
/// assert!(find_rejected(&*err).is_some());
/// assert!(find_rejected(&std::fmt::Error).is_none());
/// ```
#[must_use]
pub fn find_rejected<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a Rejected> {
    let mut current = Some(error);
    // Chains are short in practice; the bound keeps a cyclic `source()` from looping.
    for _ in 0..32 {
        let err = current?;
        if let Some(rejected) = err.downcast_ref::<Rejected>() {
            return Some(rejected);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(Rejected);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn labels_are_snake_case_and_distinct() {
        let reasons = [
            Reason::CircuitOpen,
            Reason::HalfOpenFull,
            Reason::ForcedOpen,
            Reason::BulkheadFull,
            Reason::BudgetExhausted,
            Reason::CostExceedsCapacity,
            Reason::WaitTimedOut,
            Reason::Injected,
        ];
        let labels: std::collections::HashSet<_> = reasons.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), reasons.len());
        for label in labels {
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{label}"
            );
        }
        assert_eq!(Reason::Other("mine").label(), "mine");
        let kinds = [
            LayerKind::Breaker,
            LayerKind::Bulkhead,
            LayerKind::Heal,
            LayerKind::Chaos,
        ];
        let labels: Vec<_> = kinds.iter().map(|k| k.label()).collect();
        assert_eq!(labels, ["breaker", "bulkhead", "heal", "chaos"]);
        assert_eq!(LayerKind::Other("gate").label(), "gate");
    }

    #[test]
    fn display_without_name() {
        let r = Rejected::new(LayerKind::Bulkhead, Reason::BulkheadFull);
        assert_eq!(r.to_string(), "bulkhead is full");
    }

    #[test]
    fn found_in_source_chain() {
        let w = Wrapper(Rejected::new(LayerKind::Breaker, Reason::ForcedOpen));
        assert_eq!(
            find_rejected(&w).map(Rejected::reason),
            Some(Reason::ForcedOpen)
        );
    }

    #[test]
    fn codes_follow_the_layer() {
        let breaker = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen);
        let bulkhead = Rejected::new(LayerKind::Bulkhead, Reason::BulkheadFull);
        let budget = Rejected::new(LayerKind::Bulkhead, Reason::BudgetExhausted);
        assert_eq!((breaker.grpc_code(), breaker.http_status()), (14, 503));
        assert_eq!((bulkhead.grpc_code(), bulkhead.http_status()), (8, 503));
        assert_eq!((budget.grpc_code(), budget.http_status()), (8, 429));
    }
}

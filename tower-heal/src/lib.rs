//! Self-healing for tower services: retry with backoff and jitter, per-error-class policies,
//! Retry-After, retry budgets, fallback, and recovery when health degrades.
//!
//! This crate is a placeholder: the layers are not built yet. They will honour the family's
//! [`Rejected::retry_after`] and read `Retry-After` with [`parse_retry_after`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use tower_outcome::{Rejected, parse_retry_after};

// part 2: fallback, recovery, idempotency, checkpoints
#[cfg(feature = "checkpoint")]
pub mod checkpoint;
pub mod fallback;
pub mod idempotency;
pub mod metrics_part2;
pub mod recovery;
pub mod store;

pub use idempotency::IdempotencyLayer;
pub use recovery::{
    ConfigError as RecoveryConfigError, DuringRebuild, Escalation, Recovery, RecoveryConfig,
    RecoveryLayer,
};

pub use fallback::{
    CloneRequest, DEGRADED_HEADER, Degradable, DegradationLevel, DegradationReport, Degraded,
    Fallback, FallbackBuilder, FallbackChain, FallbackLayer, FallbackOn, KeepRequest, LastGood,
    Marked,
};
pub use tower_outcome::BoxError;

//! Isolation compartments for tower services: concurrency limits and weighted token budgets,
//! per key.
//!
//! This crate is a placeholder: the bulkhead is not built yet. Its semantics are settled in the
//! family's design (concurrency limit `max_concurrent`, token budget `capacity` with refill,
//! reject at once or wait up to `max_wait`, per-key compartments), and its rejections will be
//! the family's [`Rejected`] with [`Reason::BulkheadFull`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use tower_outcome::{Reason, Rejected};

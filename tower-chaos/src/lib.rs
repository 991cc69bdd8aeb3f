//! Fault injection for tower services (errors, latency, aborts, status codes) and chaos
//! experiments that produce a measured reliability report.
//!
//! This crate is a placeholder: the chaos layer is not built yet. Faults it injects and marks
//! will be the family's [`Rejected`] with [`Reason::Injected`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use tower_outcome::{Reason, Rejected};

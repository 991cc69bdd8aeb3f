//! The shared vocabulary of the tower resilience family (`tower-breaker`, `tower-bulkhead`,
//! `tower-heal`, `tower-chaos`).
//!
//! It holds only what crosses crate boundaries, so no crate re-implements another's:
//!
//! - [`Outcome`] and the [`Classify`] trait, with [`ErrorsAsFailures`] (the default),
//!   [`FnClassifier`] (a closure), [`HttpStatus`] and [`GrpcStatus`] (headers first, trailers at
//!   the end of the stream through [`EosBody`]);
//! - [`Settle`], the obligation a call carries until its outcome is known (dropped unsettled =
//!   cancelled);
//! - [`Rejected`], the one rejection type of the family, and the three [`Answer`] modes:
//!   [`BoxErrorAnswer`], [`HttpAnswer`], [`GrpcAnswer`];
//! - `Retry-After` and `grpc-retry-pushback-ms` reading and writing.
//!
//! Users rarely depend on this crate directly: each layer crate re-exports what its users touch.
//! Write against it when you build your own classifier or your own admission layer whose
//! rejections the family should honour.
//!
//! ```
//! use std::error::Error;
//! use tower_outcome::{default_error_outcome, Classify, FnClassifier, Outcome, Rejected, LayerKind, Reason};
//!
//! // Treat `Ok(false)` from a health probe as a failure.
//! let classifier = FnClassifier::new(|result: Result<&bool, &(dyn Error + 'static)>| match result {
//!     Ok(true) => Outcome::Success,
//!     Ok(false) => Outcome::Failure,
//!     Err(err) => default_error_outcome(err),
//! });
//! // Rejections raised by the family are never counted against a dependency.
//! let open = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen);
//! assert_eq!(classifier.classify_error(&open), Outcome::Ignore);
//! ```
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | yes | [`HttpStatus`], [`GrpcStatus`], [`EosBody`], [`HttpAnswer`], [`GrpcAnswer`], Retry-After and pushback |
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod answer;
mod classify;
mod outcome;
mod rejected;

#[cfg(feature = "http")]
mod body;
#[cfg(feature = "http")]
mod retry_after;

pub use answer::{Answer, BoxError, BoxErrorAnswer};
pub use classify::{Classify, ErrorsAsFailures, FnClassifier, default_error_outcome};
pub use outcome::{Outcome, Settle};
pub use rejected::{LayerKind, Reason, Rejected, find_rejected};

#[cfg(feature = "http")]
pub use answer::{GrpcAnswer, HttpAnswer};
#[cfg(feature = "http")]
pub use body::{ClassifyEos, EosBody};
#[cfg(feature = "http")]
pub use classify::{grpc::GrpcStatus, http::HttpStatus};
#[cfg(feature = "http")]
pub use retry_after::{
    GRPC_PUSHBACK, Pushback, parse_grpc_pushback, parse_retry_after, retry_after_value,
};

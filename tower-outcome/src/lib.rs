//! The shared vocabulary of the tower resilience family (`tower-breaker`, `tower-bulkhead`,
//! `tower-heal`, `tower-chaos`).
//!
//! It holds only what crosses crate boundaries, so no crate re-implements another's:
//!
//! - [`Outcome`] and the [`Classify`] trait, with [`ErrorsAsFailures`] (the default),
//!   [`FnClassifier`] (a closure), [`HttpStatus`] and [`GrpcStatus`] (headers first, trailers at
//!   the end of the stream through [`EosBody`]), and `ReqwestStatus` (feature `reqwest`) for
//!   `reqwest::Client`;
//! - [`Settle`], the obligation a call carries until its outcome is known (dropped unsettled =
//!   cancelled);
//! - [`Rejected`], the one rejection type of the family, and the three [`Answer`] modes:
//!   [`BoxErrorAnswer`], [`HttpAnswer`], [`GrpcAnswer`];
//! - `Retry-After` and `grpc-retry-pushback-ms` reading and writing.
//!
//! Users rarely depend on this crate directly: each layer crate re-exports what its users touch.
//! Write against it when you build your own classifier, or your own admission layer whose
//! rejections the family should honour:
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_outcome::{find_rejected, Classify, ErrorsAsFailures, LayerKind, Outcome, Reason, Rejected};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_outcome::BoxError> {
//! // A quota check of your own, answering with the family's rejection.
//! let mut svc = ServiceBuilder::new()
//!     .filter(|tokens: u32| {
//!         if tokens <= 1000 {
//!             Ok(tokens)
//!         } else {
//!             Err(Rejected::new(LayerKind::Other("quota"), Reason::BudgetExhausted)
//!                 .with_retry_after(Duration::from_secs(60)))
//!         }
//!     })
//!     .service_fn(|tokens: u32| async move { Ok::<_, std::io::Error>(tokens) });
//!
//! let err = svc.ready().await?.call(5000).await.unwrap_err();
//! let rejected = find_rejected(&*err).expect("the quota's rejection");
//! assert_eq!(rejected.retry_after(), Some(Duration::from_secs(60)));
//! // Every classifier of the family ignores it: a refused call says nothing about the dependency.
//! assert_eq!(Classify::<u32>::classify_error(&ErrorsAsFailures, &*err), Outcome::Ignore);
//! # Ok(()) }
//! ```
//!
//! A classifier of your own, from a closure:
//!
//! ```
//! use std::error::Error;
//! use tower_outcome::{default_error_outcome, Classify, FnClassifier, Outcome};
//!
//! // Treat `Ok(false)` from a health probe as a failure.
//! let classifier = FnClassifier::new(|result: Result<&bool, &(dyn Error + 'static)>| match result {
//!     Ok(true) => Outcome::Success,
//!     Ok(false) => Outcome::Failure,
//!     Err(err) => default_error_outcome(err),
//! });
//! assert_eq!(classifier.classify_error(&std::fmt::Error), Outcome::Failure);
//! ```
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | yes | [`HttpStatus`], [`GrpcStatus`], [`EosBody`], [`HttpAnswer`], [`GrpcAnswer`], Retry-After and pushback |
//! | `reqwest` | no | `ReqwestStatus`, a classifier for `reqwest::Response` and `reqwest::Error` (implies `http`) |
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
mod grpc_code;
#[cfg(feature = "http")]
mod retry_after;

pub use answer::{Answer, BoxError, BoxErrorAnswer};
pub use classify::{Classify, ErrorsAsFailures, FnClassifier, default_error_outcome};
pub use outcome::{Outcome, Settle};
pub use rejected::{LayerKind, Reason, Rejected, find_rejected};

#[cfg(feature = "http")]
pub use answer::{GrpcAnswer, HttpAnswer, grpc_trailers_only};
#[cfg(feature = "http")]
pub use body::{ClassifyEos, EosBody};
#[cfg(feature = "reqwest")]
pub use classify::reqwest::ReqwestStatus;
#[cfg(feature = "http")]
pub use classify::{grpc::GrpcStatus, http::HttpStatus};
#[cfg(feature = "http")]
pub use grpc_code::{
    GRPC_STATUS, grpc_code_at_head, grpc_code_for_http_status, grpc_status_in, parse_grpc_status,
};
#[cfg(feature = "http")]
pub use retry_after::{
    GRPC_PUSHBACK, Pushback, parse_grpc_pushback, parse_retry_after, retry_after_value,
};

// The README's examples must keep compiling: they are checked as doctests here.
#[cfg(all(doctest, feature = "http"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

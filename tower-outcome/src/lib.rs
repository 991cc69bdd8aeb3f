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
//! - `grpc-status` reading ([`parse_grpc_status`], [`grpc_code_at_head`]), for every layer of
//!   the family that reads a gRPC outcome;
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
//! # Classification
//!
//! | response | [`HttpStatus`] | [`GrpcStatus`] |
//! |---|---|---|
//! | 1xx, 2xx, 3xx | success | read `grpc-status` (below) |
//! | 408, 500, 502, 503, 504, other 5xx, 600 to 999 | failure | read `grpc-status` (below) |
//! | 501, 505, 429, other 4xx | ignored | read `grpc-status` (below) |
//! | a family answer (carries [`Rejected`]) | ignored | ignored |
//! | an error ([`default_error_outcome`]) | failure (a family rejection: ignored) | the same |
//!
//! [`GrpcStatus`] reads the code as the gRPC spec and tonic do: the `grpc-status` in the
//! headers, whatever the HTTP status; otherwise the one in the trailers, whatever the HTTP
//! status; a stream that ends without one takes the code its HTTP status maps to
//! ([`grpc_code_for_http_status`]: 200 is `UNKNOWN`). A value that is not ASCII digits
//! ([`parse_grpc_status`]) is `UNKNOWN`. `OK` is a success; `UNKNOWN`, `DEADLINE_EXCEEDED`,
//! `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS` are failures; the others
//! are ignored.
//!
//! A classifier that waits for the trailers moves the obligation into the body ([`EosBody`]),
//! which settles it as soon as the stream is known to have ended: trailers, `None`, an error,
//! a data frame after which the body reports `is_end_stream()`, or a drop after a body of
//! known length sent all its bytes. That is where hyper stops polling a body it serves, so a
//! response served through axum or tonic is classified exactly as one a client collects. A
//! body dropped before its end settles nothing: the call was cancelled.
//!
//! ## Where we differ from tonic and tower-http
//!
//! The same responses run through our classifiers, tonic's client and tower-http's
//! `GrpcErrorsAsFailures` and `ServerErrorsAsFailures` in this crate's `differential` tests.
//! They agree everywhere except here, on purpose:
//!
//! | case | tonic | tower-http | here | why |
//! |---|---|---|---|---|
//! | `grpc-status: 014` (leading zeros) | `UNKNOWN` | 14 | 14 | the spec's grammar is `1*DIGIT`; grpc-go reads it so |
//! | `grpc-status: " 0"` (surrounding ASCII whitespace) | `UNKNOWN` | success | 0 | the header grammar's optional whitespace; HTTP parsers strip it on the wire anyway |
//! | no `grpc-status` at the end of the stream | the HTTP mapping | success | the HTTP mapping | the spec: a missing status is `UNKNOWN` (or mapped), never `OK` |
//! | `grpc-status` that is not an integer (`abc`, `0\u{a0}`) | `UNKNOWN` | success | `UNKNOWN` | a malformed status must not heal a breaker |
//! | a signed `grpc-status` (`+0`, `-0`, `+5`) | `UNKNOWN` | the integer | `UNKNOWN` | not in the grammar |
//! | `grpc-message` that is not percent-encoded UTF-8 | `UNKNOWN` | not read | the code | the message is for people; the code decides |
//! | a family answer (`.grpc()`, `.http()`) | its code | failure | ignored | a refusal says nothing about the dependency |
//! | which gRPC codes fail | (no outcome) | every code but `OK` | `UNKNOWN`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS` | `CANCELLED` and the caller-fault codes say nothing about the dependency's health |
//! | HTTP 408 | | success | failure | the dependency did not answer in time |
//! | HTTP 501, 505 | | failure | ignored | the request asked for what the server does not do |
//! | HTTP 600 to 999 | | success | failure | not an HTTP status: a dependency sending one is misbehaving |
//! | HTTP 429 and other 4xx | | success | ignored | a caller's mistake or a rate limit is neither health nor ill health |
//!
//! `grpc-message` is written percent-encoded (bytes outside printable ASCII, `%`, and spaces
//! at either end, so no field value starts or ends with whitespace); tonic reads it back as
//! the text that was written. `grpc-retry-pushback-ms` ([`parse_grpc_pushback`]) and
//! `Retry-After` delta-seconds ([`parse_retry_after`]) take ASCII digits only, as
//! `grpc-status` does.
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
mod config;
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
pub use config::{FieldError, MAX_DURATION};
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

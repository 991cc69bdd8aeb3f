//! Fallback with degradation levels: when the primary fails, answer from a fallback and say
//! how degraded the answer is.
//!
//! - [`FallbackLayer`]: one fallback, used on a classified failure, an error or a family
//!   rejection ([`FallbackOn`]); its answer carries a [`Degraded`] marker (component, level).
//! - [`FallbackChain`]: live → cache → static, each stage at its own level.
//! - [`LastGood`]: the last good response per key, served as level 1.
//! - [`DegradationReport`]: what each dependency of a handler answered.

mod builder;
mod cache;
mod chain;
mod degraded;
mod future;
mod keep;
mod layer;
mod report;
mod service;
mod shared;

pub use builder::FallbackBuilder;
pub use cache::{CacheMiss, LastGood, RecordFuture, RecordLastGood, RecordLastGoodLayer};
pub use chain::{FallbackChain, Then};
pub use degraded::{DEGRADED_HEADER, Degradable, DegradationLevel, Degraded, Marked};
pub use future::ResponseFuture;
#[cfg(feature = "http")]
pub use keep::keep_head;
pub use keep::{CloneRequest, KeepRequest};
pub use layer::FallbackLayer;
pub use shared::{FallbackOn, OutcomeRecorder};

/// The old name of [`OutcomeRecorder`] (the chaos experiment's `Verdict` is a report's judgement).
#[deprecated(since = "0.1.0", note = "renamed to `OutcomeRecorder`")]
pub type Verdict<'a> = OutcomeRecorder<'a>;
pub use report::DegradationReport;
pub use service::Fallback;

/// What made the fallback answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    Failure,
    Error,
    Rejection,
}

impl Trigger {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::Error => "error",
            Self::Rejection => "rejection",
        }
    }
}

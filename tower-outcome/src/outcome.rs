//! What a call came to, and the obligation that records it.

/// What a call came to, as far as a resilience layer is concerned.
///
/// The breaker counts `Failure` toward tripping and `Success` toward recovery; `Ignore` changes
/// neither (a caller's mistake, a rate limit, a rejection by another layer, a cancelled call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job.
    Success,
    /// The dependency is unwell.
    Failure,
    /// Says nothing about the dependency's health.
    Ignore,
}

impl Outcome {
    /// The label used in metrics: `success`, `failure` or `ignored`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Ignore => "ignored",
        }
    }
}

/// An obligation a call carries until its outcome is known.
///
/// A layer hands one to a [`Classify`](crate::Classify) together with the response. The
/// classifier calls [`settle`](Settle::settle) at once, or moves the obligation into the response
/// body and settles it at the end of the stream. An obligation dropped without being settled
/// means the call was cancelled: the implementation's `Drop` releases what it holds and records
/// nothing.
pub trait Settle {
    /// Records `outcome` and releases what the call held.
    fn settle(self, outcome: Outcome);
}

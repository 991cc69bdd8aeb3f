//! Classifiers: map a call's result to an [`Outcome`].

use std::error::Error;
use std::fmt;
use std::marker::PhantomData;

use crate::{Outcome, Settle, find_rejected};

#[cfg(feature = "http")]
pub(crate) mod grpc;
#[cfg(feature = "http")]
pub(crate) mod http;
#[cfg(feature = "reqwest")]
pub(crate) mod reqwest;

/// Maps a call's result to an [`Outcome`], at once or at the end of the response stream.
///
/// Classification has two phases, as in tower-http: most classifiers decide from the response
/// value ([`HttpStatus`](crate::HttpStatus) from the status line) and settle the obligation at
/// once; a gRPC classifier may need the trailers, so it moves the obligation into the response
/// body ([`EosBody`](crate::EosBody)), which settles it when the stream ends. That is why the
/// response type may change: [`Response`](Classify::Response).
///
/// Errors are passed as `&(dyn Error + 'static)` so a classifier can downcast them; the
/// family's own [`Rejected`](crate::Rejected) is found that way and classified
/// [`Outcome::Ignore`] by every classifier here.
pub trait Classify<Res> {
    /// The response handed to the caller: `Res` itself unless the classifier waits for the end
    /// of the stream and wraps the body.
    type Response<G: Settle>;

    /// Classifies a response and settles `guard` now or at the end of its stream.
    fn classify_response<G: Settle>(&self, response: Res, guard: G) -> Self::Response<G>;

    /// Passes a response through without classifying it (used for a layer's own answers).
    fn unclassified<G: Settle>(response: Res) -> Self::Response<G>;

    /// Classifies an error returned instead of a response.
    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome;
}

/// The default error classification: a family rejection is [`Outcome::Ignore`], any other
/// error is [`Outcome::Failure`].
///
/// ```
/// use tower_outcome::{default_error_outcome, LayerKind, Outcome, Reason, Rejected};
///
/// let rejected = Rejected::new(LayerKind::Breaker, Reason::CircuitOpen);
/// assert_eq!(default_error_outcome(&rejected), Outcome::Ignore);
/// assert_eq!(default_error_outcome(&std::fmt::Error), Outcome::Failure);
/// ```
#[must_use]
pub fn default_error_outcome(error: &(dyn Error + 'static)) -> Outcome {
    if find_rejected(error).is_some() {
        Outcome::Ignore
    } else {
        Outcome::Failure
    }
}

/// The default classifier: every response is a success, every error a failure (except the
/// family's own rejections, which are ignored).
///
/// ```
/// use tower_outcome::{Classify, ErrorsAsFailures, Outcome};
///
/// let classifier = ErrorsAsFailures;
/// assert_eq!(
///     <ErrorsAsFailures as Classify<u32>>::classify_error(&classifier, &std::fmt::Error),
///     Outcome::Failure,
/// );
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorsAsFailures;

impl<Res> Classify<Res> for ErrorsAsFailures {
    type Response<G: Settle> = Res;

    fn classify_response<G: Settle>(&self, response: Res, guard: G) -> Res {
        guard.settle(Outcome::Success);
        response
    }

    fn unclassified<G: Settle>(response: Res) -> Res {
        response
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        default_error_outcome(error)
    }
}

/// A classifier made from a closure over `Result<&Res, &(dyn Error + 'static)>`.
///
/// The closure sees every error, the family's rejections included; call
/// [`default_error_outcome`] for the default treatment.
///
/// ```
/// use std::error::Error;
/// use tower_outcome::{default_error_outcome, Classify, FnClassifier, Outcome};
///
/// // A database client whose `Ok(None)` means "row missing": the caller's problem, not ill health.
/// let classifier = FnClassifier::new(|result: Result<&Option<u32>, &(dyn Error + 'static)>| {
///     match result {
///         Ok(Some(_)) => Outcome::Success,
///         Ok(None) => Outcome::Ignore,
///         Err(err) => default_error_outcome(err),
///     }
/// });
/// assert_eq!(classifier.classify_error(&std::fmt::Error), Outcome::Failure);
/// ```
pub struct FnClassifier<F, Res> {
    f: F,
    _res: PhantomData<fn(&Res)>,
}

impl<F, Res> FnClassifier<F, Res>
where
    F: Fn(Result<&Res, &(dyn Error + 'static)>) -> Outcome,
{
    /// Wraps `f`.
    pub const fn new(f: F) -> Self {
        Self {
            f,
            _res: PhantomData,
        }
    }
}

impl<F: Clone, Res> Clone for FnClassifier<F, Res> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            _res: PhantomData,
        }
    }
}

impl<F, Res> fmt::Debug for FnClassifier<F, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnClassifier")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

impl<F, Res> Classify<Res> for FnClassifier<F, Res>
where
    F: Fn(Result<&Res, &(dyn Error + 'static)>) -> Outcome,
{
    type Response<G: Settle> = Res;

    fn classify_response<G: Settle>(&self, response: Res, guard: G) -> Res {
        guard.settle((self.f)(Ok(&response)));
        response
    }

    fn unclassified<G: Settle>(response: Res) -> Res {
        response
    }

    fn classify_error(&self, error: &(dyn Error + 'static)) -> Outcome {
        (self.f)(Err(error))
    }
}

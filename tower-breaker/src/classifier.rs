//! Which classifier a breaker is built with: the one you set, or the one its answer mode implies.

use tower_outcome::{BoxErrorAnswer, ErrorsAsFailures};
#[cfg(feature = "http")]
use tower_outcome::{GrpcAnswer, GrpcStatus, HttpAnswer, HttpStatus};

/// The builder's classifier until you set one: the answer mode then implies it.
///
/// | answer mode | the breaker classifies with |
/// |---|---|
/// | default | [`ErrorsAsFailures`]: every error fails, every response succeeds |
/// | [`.http()`](crate::CircuitBreakerBuilder::http) | [`HttpStatus`](crate::HttpStatus): 500, 502, 503, 504 and 408 fail |
/// | [`.grpc()`](crate::CircuitBreakerBuilder::grpc) | [`GrpcStatus`](crate::GrpcStatus): `UNAVAILABLE`, `INTERNAL`, `UNKNOWN`... fail |
///
/// So an axum route behind `.http()` opens on five 500s in a row with no classifier named. A
/// classifier set with [`classifier`](crate::CircuitBreakerBuilder::classifier) always wins,
/// whatever the answer mode.
///
/// ```
/// use tower_breaker::{CircuitBreakerLayer, HttpAnswer, HttpStatus};
///
/// let layer: CircuitBreakerLayer<HttpStatus, HttpAnswer> =
///     CircuitBreakerLayer::builder().name("reports").http().build().unwrap();
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

/// A classifier set explicitly on the builder (see
/// [`classifier`](crate::CircuitBreakerBuilder::classifier)): used whatever the answer mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chosen<C>(pub C);

/// The builder's classifier slot: resolves to the classifier a layer answering in mode `A`
/// is built with. Implemented by [`DefaultClassifier`] (for the three answer modes) and by
/// [`Chosen`]; you never implement it yourself.
pub trait ClassifierChoice<A> {
    /// The classifier the layer is built with.
    type Classifier;

    /// Resolves the choice.
    fn into_classifier(self) -> Self::Classifier;
}

impl<C, A> ClassifierChoice<A> for Chosen<C> {
    type Classifier = C;

    fn into_classifier(self) -> C {
        self.0
    }
}

impl ClassifierChoice<BoxErrorAnswer> for DefaultClassifier {
    type Classifier = ErrorsAsFailures;

    fn into_classifier(self) -> ErrorsAsFailures {
        ErrorsAsFailures
    }
}

#[cfg(feature = "http")]
impl ClassifierChoice<HttpAnswer> for DefaultClassifier {
    type Classifier = HttpStatus;

    fn into_classifier(self) -> HttpStatus {
        HttpStatus::new()
    }
}

#[cfg(feature = "http")]
impl ClassifierChoice<GrpcAnswer> for DefaultClassifier {
    type Classifier = GrpcStatus;

    fn into_classifier(self) -> GrpcStatus {
        GrpcStatus::new()
    }
}

/// How [`http_client`](crate::CircuitBreakerBuilder::http_client) and
/// [`grpc_client`](crate::CircuitBreakerBuilder::grpc_client) pick the classifier: the preset's
/// `D` unless a classifier was set. Implemented by [`DefaultClassifier`] and [`Chosen`]; you never
/// implement it yourself.
pub trait ImplyClassifier<D> {
    /// The builder's classifier slot after the preset.
    type Choice;

    /// Applies the preset's classifier `preset` unless one was set.
    fn imply(self, preset: D) -> Self::Choice;
}

impl<D> ImplyClassifier<D> for DefaultClassifier {
    type Choice = Chosen<D>;

    fn imply(self, preset: D) -> Chosen<D> {
        Chosen(preset)
    }
}

impl<C, D> ImplyClassifier<D> for Chosen<C> {
    type Choice = Self;

    fn imply(self, _preset: D) -> Self {
        self
    }
}

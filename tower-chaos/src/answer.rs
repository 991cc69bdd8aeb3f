//! How each answer mode hands an injected error to the caller.

use tower_outcome::{Answer, BoxError, BoxErrorAnswer};

/// An [`Answer`] mode that can also answer an error fault: implemented for the family's three
/// modes ([`BoxErrorAnswer`], and with the `http` feature `HttpAnswer` and `GrpcAnswer`).
///
/// In the default mode the factory's error is returned as it is. The HTTP and gRPC modes keep
/// the inner service's error type (so axum's `Infallible` stays), so an error fault answers
/// with its wire face instead: a bare `500 Internal Server Error`, or a Trailers-Only
/// `INTERNAL` (13) carrying the error's message. Neither carries the family's `Rejected`:
/// to the layers above they are the real thing.
pub trait ChaosAnswer<Res, E>: Answer<Res, E> {
    /// Answers an injected error.
    fn injected_error(error: BoxError) -> Result<Res, Self::Error>;
}

impl<Res, E: Into<BoxError>> ChaosAnswer<Res, E> for BoxErrorAnswer {
    fn injected_error(error: BoxError) -> Result<Res, BoxError> {
        Err(error)
    }
}

#[cfg(feature = "http")]
mod http_modes {
    use std::error::Error;

    use http::Response;
    use tower_outcome::{BoxError, GrpcAnswer, HttpAnswer};

    use super::ChaosAnswer;
    use crate::http::http_response;
    use tower_outcome::grpc_trailers_only;

    impl<B: Default + From<String>, E: Error + 'static> ChaosAnswer<Response<B>, E> for HttpAnswer {
        fn injected_error(_error: BoxError) -> Result<Response<B>, E> {
            Ok(http_response(500, None))
        }
    }

    impl<B: Default, E: Error + 'static> ChaosAnswer<Response<B>, E> for GrpcAnswer {
        fn injected_error(error: BoxError) -> Result<Response<B>, E> {
            Ok(grpc_trailers_only(13, Some(&error.to_string()), None))
        }
    }
}

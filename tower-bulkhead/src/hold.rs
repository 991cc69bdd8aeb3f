//! How long a call holds its permit: until its response, or until its response body ends.

use crate::Permit;

/// When an admitted call gives its permit (slot and in-flight tokens) back.
///
/// [`UntilResponse`] (the default) gives it back when the response future completes;
/// [`UntilBodyEnd`] (HTTP, opt-in with
/// [`hold_until_body_end`](crate::BulkheadLayer::hold_until_body_end)) moves it into the
/// response body, for streams (SSE, gRPC server streaming).
pub trait Hold<Res> {
    /// The response handed to the caller.
    type Response;

    /// Hands `permit` on with `response` (or drops it).
    fn hold(response: Res, permit: Permit) -> Self::Response;

    /// Passes a response through that holds nothing (the bulkhead's own answers).
    fn unheld(response: Res) -> Self::Response;
}

/// The permit is given back when the response arrives.
#[derive(Clone, Copy, Debug, Default)]
pub struct UntilResponse;

impl<Res> Hold<Res> for UntilResponse {
    type Response = Res;

    #[inline(always)]
    fn hold(response: Res, permit: Permit) -> Res {
        permit.release();
        response
    }

    fn unheld(response: Res) -> Res {
        response
    }
}

#[cfg(feature = "http")]
pub use body::{BodyEnd, UntilBodyEnd};

#[cfg(feature = "http")]
mod body {
    use super::*;
    use http::{HeaderMap, Response};
    use tower_outcome::{ClassifyEos, EosBody, Outcome};

    use crate::StreamPermit;

    /// The permit is held by the response body (the family's [`EosBody`]) and given back
    /// when the stream ends (its last frame, or trailers) or the body is dropped. The response
    /// carries a [`CostReport`](crate::CostReport) in its extensions, to settle the actual
    /// cost from the stream itself.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct UntilBodyEnd;

    /// The end-of-stream rule of [`UntilBodyEnd`]: any end gives the permit back.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct BodyEnd;

    impl ClassifyEos for BodyEnd {
        fn classify_eos(&self, _: Option<&HeaderMap>) -> Outcome {
            Outcome::Ignore
        }
    }

    impl<B> Hold<Response<B>> for UntilBodyEnd {
        type Response = Response<EosBody<B, BodyEnd, StreamPermit>>;

        fn hold(mut response: Response<B>, permit: Permit) -> Self::Response {
            let (permit, report) = StreamPermit::new(permit);
            response.extensions_mut().insert(report);
            response.map(|body| EosBody::new(body, BodyEnd, permit))
        }

        fn unheld(response: Response<B>) -> Self::Response {
            response.map(EosBody::settled)
        }
    }
}

//! Cost functions: what a request is estimated to cost, and what it actually cost.

use std::fmt;

/// Estimates what a request costs in tokens (estimated LLM tokens, bytes, a weight).
///
/// Implemented for closures `Fn(&Req) -> u64`, for [`PerRequest`] (every request costs 1,
/// the default) and, with the `http` feature, for [`HeaderCost`] and [`BodySize`]. The cost
/// function runs only when the compartment has a token budget. A cost above
/// [`MAX_TOKENS`](crate::MAX_TOKENS) is clamped to it.
pub trait Cost<Req> {
    /// The estimated cost of `request`.
    fn cost(&self, request: &Req) -> u64;
}

impl<F, Req> Cost<Req> for F
where
    F: Fn(&Req) -> u64,
{
    fn cost(&self, request: &Req) -> u64 {
        self(request)
    }
}

/// Every request costs one token: a token budget then counts requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct PerRequest;

impl<Req> Cost<Req> for PerRequest {
    fn cost(&self, _: &Req) -> u64 {
        1
    }
}

/// Reads what a call actually cost from its response (a usage header, a field of an LLM
/// answer); `None` keeps the estimate.
///
/// Implemented for closures `Fn(&Res) -> Option<u64>`, for [`EstimateStands`] (the default)
/// and, with the `http` feature, for [`HeaderCost`] over responses.
pub trait ActualCost<Res> {
    /// The actual cost of the call that answered `response`, if it says.
    fn actual_cost(&self, response: &Res) -> Option<u64>;
}

impl<F, Res> ActualCost<Res> for F
where
    F: Fn(&Res) -> Option<u64>,
{
    fn actual_cost(&self, response: &Res) -> Option<u64> {
        self(response)
    }
}

/// The estimate is the cost: nothing is read from responses.
#[derive(Clone, Copy, Debug, Default)]
pub struct EstimateStands;

impl<Res> ActualCost<Res> for EstimateStands {
    fn actual_cost(&self, _: &Res) -> Option<u64> {
        None
    }
}

#[cfg(feature = "http")]
pub use http_costs::{BodySize, HeaderCost};

#[cfg(feature = "http")]
mod http_costs {
    use super::*;
    use http::header::{CONTENT_LENGTH, HeaderName};
    use http::{HeaderMap, Request, Response};

    /// A cost read from a header holding a decimal integer: on requests an estimate (for
    /// example `x-estimated-tokens`), on responses the actual cost (for example
    /// `x-usage-tokens`). A missing or malformed header costs `fallback` on a request and
    /// keeps the estimate on a response.
    ///
    /// A request's header is written by the client, so its estimate is never below
    /// [`min_cost`](Self::min_cost) (default 1): `x-estimated-tokens: 0` does not pass an
    /// exhausted budget. (A response's actual cost is the upstream's word and is taken as is.)
    ///
    /// ```
    /// use tower_bulkhead::{Cost, HeaderCost};
    ///
    /// let cost = HeaderCost::new("x-estimated-tokens").fallback(100);
    /// let request = http::Request::builder().header("x-estimated-tokens", "250").body(()).unwrap();
    /// assert_eq!(cost.cost(&request), 250);
    /// assert_eq!(cost.cost(&http::Request::new(())), 100);
    /// let zero = http::Request::builder().header("x-estimated-tokens", "0").body(()).unwrap();
    /// assert_eq!(cost.cost(&zero), 1);
    /// ```
    #[derive(Clone, Debug)]
    pub struct HeaderCost {
        name: HeaderName,
        fallback: u64,
        min_cost: u64,
    }

    impl HeaderCost {
        /// Reads `name`; a request without it costs 1.
        ///
        /// # Panics
        /// If `name` is not a valid header name (a programming error, as with
        /// `HeaderName::from_static`).
        #[must_use]
        pub fn new(name: &'static str) -> Self {
            Self {
                name: HeaderName::from_static(name),
                fallback: 1,
                min_cost: 1,
            }
        }

        /// The least a request is estimated to cost, whatever its header says. Default 1.
        #[must_use]
        pub const fn min_cost(mut self, cost: u64) -> Self {
            self.min_cost = cost;
            self
        }

        /// What a request without a readable header costs.
        #[must_use]
        pub const fn fallback(mut self, cost: u64) -> Self {
            self.fallback = cost;
            self
        }

        fn read(&self, headers: &HeaderMap) -> Option<u64> {
            headers.get(&self.name)?.to_str().ok()?.trim().parse().ok()
        }
    }

    impl<B> Cost<Request<B>> for HeaderCost {
        fn cost(&self, request: &Request<B>) -> u64 {
            self.read(request.headers())
                .unwrap_or(self.fallback)
                .max(self.min_cost)
        }
    }

    impl<B> ActualCost<Response<B>> for HeaderCost {
        fn actual_cost(&self, response: &Response<B>) -> Option<u64> {
            self.read(response.headers())
        }
    }

    /// A request costs its body's size in bytes: the exact size if the body knows it, else
    /// `content-length`; a body of unknown length (chunked, a stream) costs
    /// [`fallback`](Self::fallback) (default 1). The size and `content-length` come from the
    /// client, so a cost is never below [`min_cost`](Self::min_cost) (default 1).
    ///
    /// ```
    /// use tower_bulkhead::{BodySize, Cost};
    ///
    /// let cost = BodySize::new().fallback(64 * 1024);
    /// let request = http::Request::new(http_body_util::Full::new(bytes::Bytes::from("hello")));
    /// assert_eq!(cost.cost(&request), 5);
    /// let announced = http::Request::builder()
    ///     .header("content-length", "1024")
    ///     .body(http_body_util::StreamBody::new(futures_util_stream()))
    ///     .unwrap();
    /// assert_eq!(cost.cost(&announced), 1024);
    /// let chunked = http::Request::new(http_body_util::StreamBody::new(futures_util_stream()));
    /// assert_eq!(cost.cost(&chunked), 64 * 1024);
    /// let empty = http::Request::new(http_body_util::Empty::<bytes::Bytes>::new());
    /// assert_eq!(cost.cost(&empty), 1);
    /// # fn futures_util_stream() -> tokio_stream::Empty<Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>> {
    /// #     tokio_stream::empty()
    /// # }
    /// ```
    #[derive(Clone, Copy, Debug)]
    pub struct BodySize {
        fallback: u64,
        min_cost: u64,
    }

    impl BodySize {
        /// A body's size; a body of unknown length costs 1.
        #[must_use]
        pub const fn new() -> Self {
            Self {
                fallback: 1,
                min_cost: 1,
            }
        }

        /// What a body of unknown length (no exact size, no `content-length`) costs.
        #[must_use]
        pub const fn fallback(mut self, cost: u64) -> Self {
            self.fallback = cost;
            self
        }

        /// The least a request costs, whatever its size. Default 1.
        #[must_use]
        pub const fn min_cost(mut self, cost: u64) -> Self {
            self.min_cost = cost;
            self
        }
    }

    impl Default for BodySize {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<B: http_body::Body> Cost<Request<B>> for BodySize {
        fn cost(&self, request: &Request<B>) -> u64 {
            request
                .body()
                .size_hint()
                .exact()
                .or_else(|| {
                    request
                        .headers()
                        .get(CONTENT_LENGTH)?
                        .to_str()
                        .ok()?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(self.fallback)
                .max(self.min_cost)
        }
    }
}

/// Formats a cost function's type for `Debug` output.
pub(crate) struct TypeName<T>(std::marker::PhantomData<T>);

impl<T> TypeName<T> {
    pub(crate) const fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T> fmt::Debug for TypeName<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

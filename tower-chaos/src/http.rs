//! HTTP and gRPC faults: statuses that look exactly like the real thing, header-driven
//! control, and slow or cut-off bodies.

use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderName, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_outcome::{
    BoxError, GrpcStatus, HttpStatus, Outcome, grpc_trailers_only, retry_after_value,
};

use crate::core::ActiveSlot;
use crate::fault::{Action, Fault, FaultKind, Respond};

/// An HTTP response with `status`, `Retry-After` if given, an empty body, and no extension:
/// nothing tells it apart from the dependency's own answer.
pub(crate) fn http_response<B: Default>(status: u16, retry_after: Option<Duration>) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(delay) = retry_after {
        res.headers_mut()
            .insert(RETRY_AFTER, retry_after_value(delay));
    }
    res
}

fn make_http<B: Default>(spec: &Respond<Response<B>>) -> Response<B> {
    http_response(spec.status, spec.retry_after)
}

fn make_grpc<B: Default>(spec: &Respond<Response<B>>) -> Response<B> {
    // The family's Trailers-Only builder, without the `Rejected` mark: an injected status
    // must look to the layers above exactly like the dependency's own.
    grpc_trailers_only(
        i32::from(spec.status),
        spec.message.as_deref(),
        spec.retry_after,
    )
}

impl<Req, B: Default> Fault<Req, Response<B>> {
    /// Answers `status` (such as 503, 429 or 500) without calling the service, with an empty
    /// body; add [`retry_after`](Fault::retry_after) for a `Retry-After` header. Named
    /// `http_<code>` by default.
    ///
    /// The response carries no [`Rejected`](crate::Rejected) extension, so an outer breaker's
    /// [`HttpStatus`] classifier counts an injected 503 as the failure a real one would be.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::StatusCode;
    /// use tower_chaos::Fault;
    ///
    /// let fault = Fault::<http::Request<()>, http::Response<String>>::http_status(StatusCode::TOO_MANY_REQUESTS)
    ///     .retry_after(Duration::from_secs(30))
    ///     .rate(0.2);
    /// assert_eq!(fault.name(), "http_429");
    /// ```
    pub fn http_status(status: StatusCode) -> Self {
        let code = status.as_u16();
        Self::new(
            FaultKind::HttpStatus,
            format!("http_{code}"),
            Action::Respond(Respond {
                status: code,
                retry_after: None,
                message: None,
                make: make_http::<B>,
            }),
        )
    }

    /// Answers a gRPC Trailers-Only status (HTTP 200, `content-type: application/grpc`,
    /// `grpc-status: code`, `grpc-message: message`) without calling the service, as a server
    /// does for an error; add [`retry_after`](Fault::retry_after) for `grpc-retry-pushback-ms`.
    /// Named `grpc_<code>` by default. Codes outside 1..=16 are a
    /// [`ConfigError`](crate::ConfigError) when the layer is built.
    ///
    /// ```
    /// use tower_chaos::Fault;
    ///
    /// let fault = Fault::<http::Request<()>, http::Response<String>>::grpc_status(14, "upstream unavailable")
    ///     .rate(0.1);
    /// assert_eq!(fault.name(), "grpc_14");
    /// ```
    pub fn grpc_status(code: u16, message: impl Into<Arc<str>>) -> Self {
        Self::new(
            FaultKind::GrpcStatus,
            format!("grpc_{code}"),
            Action::Respond(Respond {
                status: code,
                retry_after: None,
                message: Some(message.into()),
                make: make_grpc::<B>,
            }),
        )
    }
}

impl<Req, B> Fault<Req, Response<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// Lets `after_bytes` of the body through, then stalls the stream for `pause` before the
    /// rest. `rewrap` puts the wrapped body back into your body type, such as
    /// `axum::body::Body::new`. Named `slow_body` by default.
    pub fn slow_body(after_bytes: usize, pause: Duration, rewrap: fn(ChaosBody<B>) -> B) -> Self {
        let mut fault = Self::body("slow_body", BodyMode::Stall { after_bytes, pause }, rewrap);
        fault.timer = true;
        fault
    }

    /// Lets `after_bytes` of the body through, then ends the stream with an error
    /// ([`BodyCutOff`]), as a connection reset mid-answer does. Named `cut_off_body` by default.
    pub fn cut_off_body(after_bytes: usize, rewrap: fn(ChaosBody<B>) -> B) -> Self {
        Self::body("cut_off_body", BodyMode::CutOff { after_bytes }, rewrap)
    }

    fn body(name: &'static str, mode: BodyMode, rewrap: fn(ChaosBody<B>) -> B) -> Self {
        Self::new(
            FaultKind::Body,
            name,
            Action::Body(Arc::new(move |res: Response<B>, slot| {
                res.map(|body| rewrap(ChaosBody::new(body, mode, slot)))
            })),
        )
    }
}

/// What a body fault does to the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyMode {
    Stall { after_bytes: usize, pause: Duration },
    CutOff { after_bytes: usize },
}

pin_project! {
    /// A response body slowed down or cut off by a body fault.
    ///
    /// It holds the call's place among the layer's `max_active_faults` until the fault ends:
    /// the stream ends (or errors), or the body is dropped.
    pub struct ChaosBody<B> {
        #[pin]
        inner: B,
        mode: BodyMode,
        sent: usize,
        held: Option<Bytes>,
        sleep: Option<Pin<Box<Sleep>>>,
        stalled: bool,
        done: bool,
        slot: Option<Arc<ActiveSlot>>,
    }
}

impl<B> ChaosBody<B> {
    fn new(inner: B, mode: BodyMode, slot: Option<Arc<ActiveSlot>>) -> Self {
        Self {
            inner,
            mode,
            sent: 0,
            held: None,
            sleep: None,
            stalled: false,
            done: false,
            slot,
        }
    }
}

impl<B> fmt::Debug for ChaosBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosBody")
            .field("mode", &self.mode)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// The error a cut-off body ends with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyCutOff;

impl fmt::Display for BodyCutOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body cut off (injected by chaos)")
    }
}

impl Error for BodyCutOff {}

impl<B> ChaosBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    fn poll_stream(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let after = match *this.mode {
            BodyMode::Stall { after_bytes, .. } | BodyMode::CutOff { after_bytes } => after_bytes,
        };
        if *this.sent >= after {
            match *this.mode {
                BodyMode::CutOff { .. } => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(Box::new(BodyCutOff))));
                }
                BodyMode::Stall { pause, .. } => {
                    if !*this.stalled {
                        *this.stalled = true;
                        *this.sleep = Some(Box::pin(tokio::time::sleep(pause)));
                    }
                    if let Some(sleep) = this.sleep.as_mut() {
                        ready!(sleep.as_mut().poll(cx));
                        *this.sleep = None;
                    }
                }
            }
        }
        if let Some(held) = this.held.take() {
            *this.sent += held.len();
            return Poll::Ready(Some(Ok(Frame::data(held))));
        }
        let frame = match ready!(this.inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
            None => return Poll::Ready(None),
        };
        match frame.into_data() {
            Ok(mut data) => {
                if *this.sent < after && *this.sent + data.len() > after {
                    // Split the frame where the fault begins.
                    *this.held = Some(data.split_off(after - *this.sent));
                }
                *this.sent += data.len();
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Err(frame) => Poll::Ready(Some(Ok(frame))),
        }
    }
}

impl<B> Body for ChaosBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = self.as_mut().poll_stream(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            // The fault has ended with the stream: its active-fault slot is free.
            *self.project().slot = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.done
            || (matches!(self.mode, BodyMode::Stall { .. })
                && self.held.is_none()
                && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match self.mode {
            BodyMode::CutOff { .. } => SizeHint::default(),
            BodyMode::Stall { .. } => self.inner.size_hint(),
        }
    }
}

use std::future::Future as _;

/// The default guard classifier for HTTP: [`HttpStatus`]'s failures (500, 502, 503, 504,
/// 408, other 5xx) and errors.
pub(crate) fn http_failure<B>(result: Result<&Response<B>, &(dyn Error + 'static)>) -> bool {
    match result {
        Ok(res) => HttpStatus::new().outcome(res.status()) == Outcome::Failure,
        Err(_) => true,
    }
}

/// The default guard classifier for gRPC: what [`GrpcStatus`] reads from the head as a
/// failure (a failing `grpc-status` in the headers, whatever the HTTP status; without one, a
/// non-200 status mapped to its gRPC code), and errors. Statuses in trailers are not read (the
/// guard does not wrap bodies).
pub(crate) fn grpc_failure<B>(result: Result<&Response<B>, &(dyn Error + 'static)>) -> bool {
    match result {
        Ok(res) => GrpcStatus::new().outcome_at_head(res) == Some(Outcome::Failure),
        Err(_) => true,
    }
}

/// Reads header `name` of an HTTP request as the per-request control string.
pub(crate) fn header_control<B>(
    name: HeaderName,
) -> impl for<'a> Fn(&'a Request<B>) -> Option<&'a str> + Send + Sync + 'static {
    move |req: &Request<B>| req.headers().get(&name).and_then(|v| v.to_str().ok())
}

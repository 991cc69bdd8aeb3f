//! The HTTP codec: the `Idempotency-Key` header, a fingerprint of method, path and body, and
//! responses stored as bytes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::header::HeaderName;
use http::{HeaderValue, Request, Response, StatusCode, request, response};
use http_body::Body;

use super::{Captured, IdempotencyBuilder, IdempotencyCodec, Prepared};
use crate::store::Fnv;

/// The header a replayed response carries: `idempotent-replayed: true`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The longest key accepted (longer keys are answered 400).
pub const MAX_KEY_LEN: usize = 255;

/// The HTTP codec of [`IdempotencyLayer::http`](crate::IdempotencyLayer::http).
///
/// - The key is the `Idempotency-Key` header (name configurable); requests without it pass
///   untouched. A key longer than [`MAX_KEY_LEN`] or not visible ASCII is answered 400.
/// - The fingerprint hashes the method, the path and query, and the body; the body is
///   buffered up to `max_request_bytes` (default 1 MiB; beyond: 413) and handed on whole.
/// - Responses with status 5xx, 408 or 429, and rejections answered by the family's layers,
///   are failures and not stored. Others are buffered and stored (status, headers, body) when
///   their body is at most `max_response_bytes` (default 1 MiB); a larger one is answered but
///   not stored. A replay carries [`REPLAYED_HEADER`].
#[derive(Clone, Debug)]
pub struct HttpCodec {
    header: HeaderName,
    max_request_bytes: usize,
    max_response_bytes: usize,
}

impl HttpCodec {
    pub(crate) fn new() -> Self {
        Self {
            header: HeaderName::from_static("idempotency-key"),
            max_request_bytes: 1 << 20,
            max_response_bytes: 1 << 20,
        }
    }
}

impl<A> IdempotencyBuilder<HttpCodec, A> {
    /// `header`: the header carrying the key (default `Idempotency-Key`).
    pub fn header(mut self, header: HeaderName) -> Self {
        self.codec.header = header;
        self
    }

    /// `max_request_bytes`: the largest request body hashed (default 1 MiB; beyond: 413).
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.codec.max_request_bytes = bytes;
        self
    }

    /// `max_response_bytes`: the largest response body stored (default 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.codec.max_response_bytes = bytes;
        self
    }
}

fn answer<B: From<Bytes>>(status: StatusCode, message: &'static str) -> Response<B> {
    let mut res = Response::new(B::from(Bytes::from_static(message.as_bytes())));
    *res.status_mut() = status;
    res
}

fn valid_key(value: &HeaderValue) -> Option<&str> {
    let key = value.to_str().ok()?;
    (!key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic()))
        .then_some(key)
}

fn storable(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

impl<ReqB, ResB> IdempotencyCodec<Request<ReqB>, Response<ResB>> for HttpCodec
where
    ReqB: Body + From<Bytes> + Unpin,
    ResB: Body + From<Bytes> + Unpin,
{
    type Prepare = PrepareFuture<ReqB, ResB>;
    type Capture = CaptureFuture<ResB>;

    fn prepare(&self, request: Request<ReqB>) -> Self::Prepare {
        let (parts, body) = request.into_parts();
        let key = match parts.headers.get(&self.header) {
            None => None,
            Some(value) => match valid_key(value) {
                Some(key) => Some(Ok(key.to_owned())),
                None => Some(Err(())),
            },
        };
        PrepareFuture {
            body: Some(body),
            parts: Some(parts),
            key,
            buf: Vec::new(),
            limit: self.max_request_bytes,
            _res: std::marker::PhantomData,
        }
    }

    fn capture(&self, response: Response<ResB>) -> Self::Capture {
        let keep = storable(response.status())
            && response
                .extensions()
                .get::<tower_outcome::Rejected>()
                .is_none();
        let (parts, body) = response.into_parts();
        CaptureFuture {
            body: Some(body),
            parts: Some(parts),
            keep,
            buf: Vec::new(),
            limit: self.max_response_bytes,
        }
    }

    fn replay(&self, stored: &[u8]) -> Option<Response<ResB>> {
        let (status, headers, body) = decode(stored)?;
        let mut res = Response::new(ResB::from(Bytes::copy_from_slice(body)));
        *res.status_mut() = status;
        for (name, value) in headers {
            res.headers_mut().append(name, value);
        }
        res.headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        Some(res)
    }

    fn mismatch(&self) -> Option<Response<ResB>> {
        Some(answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this Idempotency-Key was used with a different request",
        ))
    }
}

/// Why a body could not be buffered.
enum Drain {
    Failed,
    TooLarge,
}

/// Buffers `body` into `buf`, up to `limit` bytes.
fn drain<B: Body + Unpin>(
    body: &mut B,
    buf: &mut Vec<u8>,
    limit: usize,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Drain>> {
    loop {
        match ready!(Pin::new(&mut *body).poll_frame(cx)) {
            None => return Poll::Ready(Ok(())),
            Some(Err(_)) => return Poll::Ready(Err(Drain::Failed)),
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        if buf.len() + chunk.len() > limit {
                            return Poll::Ready(Err(Drain::TooLarge));
                        }
                        buf.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
            }
        }
    }
}

/// Reads an HTTP request's key and buffers its body to fingerprint it.
pub struct PrepareFuture<ReqB, ResB> {
    body: Option<ReqB>,
    parts: Option<request::Parts>,
    key: Option<Result<String, ()>>,
    buf: Vec<u8>,
    limit: usize,
    _res: std::marker::PhantomData<fn() -> ResB>,
}

impl<ReqB, ResB> std::fmt::Debug for PrepareFuture<ReqB, ResB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrepareFuture").finish()
    }
}

const POLLED_AFTER_DONE: &str = "idempotency body future polled after completion";

impl<ReqB, ResB> Future for PrepareFuture<ReqB, ResB>
where
    ReqB: Body + From<Bytes> + Unpin,
    ResB: From<Bytes>,
{
    type Output = Prepared<Request<ReqB>, Response<ResB>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let key = match &mut this.key {
            None => {
                // No key: hand the request on without reading its body.
                let parts = this.parts.take().expect(POLLED_AFTER_DONE);
                let body = this.body.take().expect(POLLED_AFTER_DONE);
                return Poll::Ready(Prepared::Pass(Request::from_parts(parts, body)));
            }
            Some(Err(())) => {
                return Poll::Ready(Prepared::Answer(answer(
                    StatusCode::BAD_REQUEST,
                    "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
                )));
            }
            Some(Ok(key)) => key,
        };
        let body = this.body.as_mut().expect(POLLED_AFTER_DONE);
        match ready!(drain(body, &mut this.buf, this.limit, cx)) {
            Ok(()) => {}
            Err(Drain::Failed) => {
                return Poll::Ready(Prepared::Answer(answer(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )));
            }
            Err(Drain::TooLarge) => {
                return Poll::Ready(Prepared::Answer(answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is too large to be made idempotent",
                )));
            }
        }
        let parts = this.parts.take().expect(POLLED_AFTER_DONE);
        this.body = None;
        let body = std::mem::take(&mut this.buf);
        let mut h = Fnv::new();
        h.field(parts.method.as_str().as_bytes())
            .field(
                parts
                    .uri
                    .path_and_query()
                    .map_or("", |p| p.as_str())
                    .as_bytes(),
            )
            .field(&body);
        Poll::Ready(Prepared::Keyed {
            request: Request::from_parts(parts, ReqB::from(Bytes::from(body))),
            key: std::mem::take(key),
            fingerprint: h.finish(),
        })
    }
}

/// Buffers a response to store it.
pub struct CaptureFuture<ResB> {
    body: Option<ResB>,
    parts: Option<response::Parts>,
    keep: bool,
    buf: Vec<u8>,
    limit: usize,
}

impl<ResB> std::fmt::Debug for CaptureFuture<ResB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFuture")
            .field("keep", &self.keep)
            .finish()
    }
}

impl<ResB> Future for CaptureFuture<ResB>
where
    ResB: Body + From<Bytes> + Unpin,
{
    type Output = Captured<Response<ResB>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.keep {
            let parts = this.parts.take().expect(POLLED_AFTER_DONE);
            let body = this.body.take().expect(POLLED_AFTER_DONE);
            return Poll::Ready(Captured {
                response: Response::from_parts(parts, body),
                stored: None,
            });
        }
        let body = this.body.as_mut().expect(POLLED_AFTER_DONE);
        // Read the whole body; a body over the limit is answered but not stored.
        let result = ready!(drain(body, &mut this.buf, usize::MAX, cx));
        let parts = this.parts.take().expect(POLLED_AFTER_DONE);
        this.body = None;
        let body = std::mem::take(&mut this.buf);
        if result.is_err() {
            // The handler's body failed half-way: nothing valid to hand on or to store.
            return Poll::Ready(Captured {
                response: answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the response body failed",
                ),
                stored: None,
            });
        }
        let stored = (body.len() <= this.limit).then(|| encode(&parts, &body));
        Poll::Ready(Captured {
            response: Response::from_parts(parts, ResB::from(Bytes::from(body))),
            stored,
        })
    }
}

const MAGIC: &[u8; 4] = b"THR1";

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// `THR1`, status, header count, (name, value)*, body; lengths as little-endian `u32`.
fn encode(parts: &response::Parts, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&parts.status.as_u16().to_le_bytes());
    let headers: Vec<_> = parts
        .headers
        .iter()
        .filter(|(name, _)| name.as_str() != REPLAYED_HEADER)
        .collect();
    out.extend_from_slice(&u32::try_from(headers.len()).unwrap_or(0).to_le_bytes());
    for (name, value) in headers {
        put_field(&mut out, name.as_str().as_bytes());
        put_field(&mut out, value.as_bytes());
    }
    out.extend_from_slice(body);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()
    }

    fn field(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n)
    }
}

type Decoded<'a> = (StatusCode, Vec<(HeaderName, HeaderValue)>, &'a [u8]);

fn decode(stored: &[u8]) -> Option<Decoded<'_>> {
    let mut r = Reader(stored);
    if r.take(4)? != MAGIC {
        return None;
    }
    let s = r.take(2)?;
    let status = StatusCode::from_u16(u16::from_le_bytes([s[0], s[1]])).ok()?;
    let count = r.u32()?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = HeaderName::from_bytes(r.field()?).ok()?;
        let value = HeaderValue::from_bytes(r.field()?).ok()?;
        headers.push((name, value));
    }
    Some((status, headers, r.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_round_trip_and_garbage_is_refused() {
        let mut res = Response::new(());
        *res.status_mut() = StatusCode::CREATED;
        res.headers_mut()
            .insert("x-order", HeaderValue::from_static("42"));
        let (parts, ()) = res.into_parts();
        let bytes = encode(&parts, b"done");
        let (status, headers, body) = decode(&bytes).unwrap();
        assert_eq!((status, body), (StatusCode::CREATED, &b"done"[..]));
        assert_eq!(headers[0].1, "42");
        for cut in 0..bytes.len() - 4 {
            // Any truncation inside the head is refused, never a panic.
            let _ = decode(&bytes[..cut]);
        }
        assert!(decode(b"nope").is_none());
    }
}

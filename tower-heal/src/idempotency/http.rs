//! The HTTP codec: the `Idempotency-Key` header, a fingerprint of method, path and body, and
//! responses stored as bytes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, request, response};
use http_body::{Body, Frame, SizeHint};

use super::{IdempotencyBuilder, IdempotencyCodec, Prepared, StoreSlot};
use crate::store::Fnv;

/// The header a replayed response carries: `idempotent-replayed: true`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The longest key accepted (longer keys are answered 400).
pub const MAX_KEY_LEN: usize = 255;

/// The HTTP codec of [`IdempotencyLayer::http`](crate::IdempotencyLayer::http).
///
/// - The key is the `Idempotency-Key` header (name configurable); requests without it pass
///   untouched. A key longer than [`MAX_KEY_LEN`] or not visible ASCII is answered 400.
/// - Keys are scoped to the caller: the store key joins the key with a hash of the
///   `scope_headers` (default `Authorization` and `Cookie`), so another caller sending the
///   same key gets its own run, never the first caller's answer. The hash is FNV-1a 64, which
///   keeps the values out of the store's keys but is no secret-keeping digest: keep the store
///   where only the service reads it. Callers sending none of these headers share one scope.
/// - The fingerprint hashes the method, the path and query, and the body; the body is
///   buffered up to `max_request_bytes` (default 1 MiB; beyond: 413) and handed on whole. A
///   key reused with another fingerprint is answered 422.
/// - Responses with status 5xx, 408 or 429, and rejections answered by the family's layers,
///   are failures and not stored (the key is released: a retry runs again).
/// - Other responses are never buffered beyond `max_response_bytes` (default 1 MiB): the body
///   passes to the client as it arrives ([`IdempotentBody`]) while a copy of at most that
///   many bytes is kept; when the body ends within the bound, status, headers and body are
///   stored and replayed to duplicates with [`REPLAYED_HEADER`]. A body that grows past the
///   bound (or ends with trailers) is passed through whole but not stored: the key is
///   **marked** "processed, not replayable", and a retry within the `ttl` gets 409 saying so,
///   rather than running the handler a second time. At most 1,024 frames are read before
///   the response is handed on; the rest is copied as it streams. A body that fails or is dropped before
///   its end stores nothing and releases the key. Until the body ends, duplicates wait (up
///   to the layer's `max_wait`, then 409).
/// - Per-caller headers are never stored nor replayed: `Set-Cookie`,
///   `Authentication-Info`, `Proxy-Authentication-Info`, hop-by-hop headers, and any
///   configured with [`unreplayed_headers`](IdempotencyBuilder::unreplayed_headers).
#[derive(Clone, Debug)]
pub struct HttpCodec {
    header: HeaderName,
    max_request_bytes: usize,
    max_response_bytes: usize,
    scope: Vec<HeaderName>,
    unreplayed: Vec<HeaderName>,
}

/// Response headers never stored nor replayed: they belong to one caller or one connection.
const PER_CALLER: [HeaderName; 9] = [
    header::SET_COOKIE,
    HeaderName::from_static("authentication-info"),
    HeaderName::from_static("proxy-authentication-info"),
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TRAILER,
];

impl HttpCodec {
    pub(crate) fn new() -> Self {
        Self {
            header: HeaderName::from_static("idempotency-key"),
            max_request_bytes: 1 << 20,
            max_response_bytes: 1 << 20,
            scope: vec![header::AUTHORIZATION, header::COOKIE],
            unreplayed: Vec::new(),
        }
    }

    fn replayed(&self, name: &HeaderName) -> bool {
        name.as_str() != REPLAYED_HEADER
            && !PER_CALLER.contains(name)
            && !self.unreplayed.contains(name)
    }

    /// The store key: the caller's scope, then the key.
    fn scoped(&self, headers: &http::HeaderMap, key: &str) -> String {
        let mut h = Fnv::new();
        for name in &self.scope {
            h.field(name.as_str().as_bytes());
            for value in headers.get_all(name) {
                h.field(value.as_bytes());
            }
        }
        format!("{:016x}:{key}", h.finish())
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

    /// `max_response_bytes`: the most of a response body kept to store it (default 1 MiB); a
    /// larger body passes through unstored and its key is marked not replayable.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.codec.max_response_bytes = bytes;
        self
    }

    /// `scope_headers`: the request headers that tell callers apart (default
    /// `Authorization` and `Cookie`); a key is only ever replayed to a request with the same
    /// values. An empty list shares keys between all callers.
    pub fn scope_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.codec.scope = headers.into_iter().collect();
        self
    }

    /// `unreplayed_headers`: response headers never stored nor replayed, besides
    /// `Set-Cookie`, `Authentication-Info` and the hop-by-hop headers (always left out).
    pub fn unreplayed_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.codec.unreplayed.extend(headers);
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
    ResB: Body<Data = Bytes> + Unpin,
{
    type Response = Response<IdempotentBody<ResB>>;
    type Prepare = PrepareFuture<ReqB, ResB>;

    fn prepare(&self, request: Request<ReqB>) -> Self::Prepare {
        let (parts, body) = request.into_parts();
        let key = match parts.headers.get(&self.header) {
            None => None,
            Some(value) => match valid_key(value) {
                Some(key) => Some(Ok(self.scoped(&parts.headers, key))),
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

    fn pass(&self, response: Response<ResB>) -> Self::Response {
        response.map(IdempotentBody::inner)
    }

    fn capture(&self, response: Response<ResB>, slot: StoreSlot) -> Self::Response {
        let keep = storable(response.status())
            && response
                .extensions()
                .get::<tower_outcome::Rejected>()
                .is_none();
        if !keep {
            // A failure: nothing stored, the key released so a retry can succeed.
            drop(slot);
            return response.map(IdempotentBody::inner);
        }
        let (parts, body) = response.into_parts();
        let head = encode_head(&parts, |name| self.replayed(name));
        match IdempotentBody::tee(body, head, self.max_response_bytes, slot) {
            Some(body) => Response::from_parts(parts, body),
            // The handler's body failed before anything could be handed on.
            None => answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the response body failed",
            ),
        }
    }

    fn replay(&self, stored: &[u8]) -> Option<Self::Response> {
        if stored == NOT_REPLAYABLE {
            let mut res = answer(
                StatusCode::CONFLICT,
                "a request with this Idempotency-Key was processed; its response could not be stored (over the size limit, or with trailers) and is not replayed",
            );
            res.headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            return Some(res);
        }
        let (status, headers, body) = decode(stored)?;
        let mut res = Response::new(IdempotentBody::full(Bytes::copy_from_slice(body)));
        *res.status_mut() = status;
        for (name, value) in headers {
            // Also filtered here: records written before a header was left out.
            if self.replayed(&name) {
                res.headers_mut().append(name, value);
            }
        }
        res.headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        Some(res)
    }

    fn mismatch(&self) -> Option<Self::Response> {
        Some(answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this Idempotency-Key was used with a different request",
        ))
    }

    fn in_progress(&self) -> Option<Self::Response> {
        Some(answer(
            StatusCode::CONFLICT,
            "a request with this Idempotency-Key is still in progress",
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
{
    type Output = Prepared<Request<ReqB>, Response<IdempotentBody<ResB>>>;

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

/// What a key is marked with when its response passed through unstored.
const NOT_REPLAYABLE: &[u8] = b"THR0";

/// The most frames read at once before a response is handed on.
const MAX_READY_FRAMES: u32 = 1024;

/// The body of an [`IdempotencyLayer::http`](crate::IdempotencyLayer::http) response: the
/// handler's body passed on as it arrives, a replayed body, or the layer's own answer.
///
/// A first call's body keeps a copy of at most `max_response_bytes` as it streams and stores
/// it when the body ends; beyond the bound it stops copying and marks the key not replayable.
/// What the handler had produced when the layer handed the response on is delivered at once,
/// even if the stream then stalls. Dropping the body before its end releases the key.
pub struct IdempotentBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Full(Option<Bytes>),
    Inner(B),
    Tee { body: B, side: Box<Side> },
}

/// A streamed first call's state beside its body (boxed: only such bodies pay for it).
struct Side {
    prefix: Option<Bytes>,
    trailers: Option<HeaderMap>,
    copy: Option<Kept>,
}

/// The copy being kept of a first call's body, and where it goes.
struct Kept {
    head: Vec<u8>,
    buf: Vec<u8>,
    limit: usize,
    slot: StoreSlot,
}

impl Kept {
    /// Keeps `data`; false when it would pass the bound (the caller then marks the key).
    fn keep(&mut self, data: &[u8]) -> bool {
        if self.buf.len() + data.len() > self.limit {
            return false;
        }
        self.buf.extend_from_slice(data);
        true
    }

    fn finish(self) {
        let mut record = self.head;
        record.extend_from_slice(&self.buf);
        self.slot.store(record);
    }

    fn mark(self) {
        tracing::info!(target: "tower_heal", key = self.slot.key(), "response not storable (over max_response_bytes, or trailers); the key is marked not replayable");
        self.slot.store(NOT_REPLAYABLE.to_vec());
    }
}

impl<B> IdempotentBody<B> {
    fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full(Some(data)),
        }
    }

    fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner(body),
        }
    }

    fn streamed(
        body: B,
        prefix: Option<Bytes>,
        trailers: Option<HeaderMap>,
        copy: Option<Kept>,
    ) -> Self {
        Self {
            kind: Kind::Tee {
                body,
                side: Box::new(Side {
                    prefix,
                    trailers,
                    copy,
                }),
            },
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> IdempotentBody<B> {
    /// Reads what `body` has ready now, without waiting: a body that ends within `limit` is
    /// stored at once (before the caller sees the response); otherwise what was read is
    /// handed on first and the rest streams. `None`: the body failed at once.
    fn tee(mut body: B, head: Vec<u8>, limit: usize, slot: StoreSlot) -> Option<Self> {
        let mut copy = Kept {
            head,
            buf: Vec::new(),
            limit,
            slot,
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut trailers = None;
        let mut copying = true;
        // Bounded even for a body of endless empty frames: past this, the rest streams.
        let mut frames = 0u32;
        loop {
            if body.is_end_stream() {
                break;
            }
            frames += 1;
            let poll = if frames > MAX_READY_FRAMES {
                Poll::Pending
            } else {
                Pin::new(&mut body).poll_frame(&mut cx)
            };
            match poll {
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(_))) => return None,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if !copy.keep(&data) {
                            // Past the bound: hand on what was read, stop reading.
                            let mut prefix = std::mem::take(&mut copy.buf);
                            prefix.extend_from_slice(&data);
                            copy.mark();
                            return Some(Self::streamed(
                                body,
                                Some(Bytes::from(prefix)),
                                None,
                                None,
                            ));
                        }
                    }
                    Err(frame) => {
                        trailers = frame.into_trailers().ok();
                        copying = false;
                        break;
                    }
                },
                Poll::Pending => {
                    // Streaming: hand on what is here, keep copying as the rest arrives.
                    let prefix = (!copy.buf.is_empty()).then(|| Bytes::copy_from_slice(&copy.buf));
                    return Some(Self::streamed(body, prefix, None, Some(copy)));
                }
            }
        }
        if !copying {
            // Trailers cannot be replayed: passed on, not stored.
            let prefix = std::mem::take(&mut copy.buf);
            copy.mark();
            return Some(Self::streamed(
                body,
                Some(Bytes::from(prefix)),
                trailers,
                None,
            ));
        }
        let data = Bytes::from(std::mem::take(&mut copy.buf));
        let mut record = std::mem::take(&mut copy.head);
        record.extend_from_slice(&data);
        copy.slot.store(record);
        Some(Self::full(data))
    }
}

impl<B> Default for IdempotentBody<B> {
    fn default() -> Self {
        Self::full(Bytes::new())
    }
}

impl<B> From<Bytes> for IdempotentBody<B> {
    fn from(data: Bytes) -> Self {
        Self::full(data)
    }
}

impl<B> From<String> for IdempotentBody<B> {
    fn from(text: String) -> Self {
        Self::full(Bytes::from(text))
    }
}

impl<B> std::fmt::Debug for IdempotentBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Full(_) => "full",
            Kind::Inner(_) => "inner",
            Kind::Tee { .. } => "streamed",
        };
        f.debug_struct("IdempotentBody")
            .field("kind", &kind)
            .finish()
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for IdempotentBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Inner(body) => Pin::new(body).poll_frame(cx),
            Kind::Tee { body, side } => {
                let Side {
                    prefix,
                    trailers,
                    copy,
                } = &mut **side;
                if let Some(data) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if let Some(trailers) = trailers.take() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
                match &frame {
                    None => {
                        if let Some(copy) = copy.take() {
                            copy.finish();
                        }
                    }
                    // Failed: nothing stored, the key released.
                    Some(Err(_)) => *copy = None,
                    Some(Ok(frame)) => {
                        let kept = match (copy.as_mut(), frame.data_ref()) {
                            (Some(copy), Some(data)) => copy.keep(data),
                            (Some(_), None) => false,
                            (None, _) => true,
                        };
                        if !kept {
                            if let Some(copy) = copy.take() {
                                copy.mark();
                            }
                        } else if body.is_end_stream()
                            && let Some(copy) = copy.take()
                        {
                            // Stored before the caller sees the last frame.
                            copy.finish();
                        }
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Inner(body) => body.is_end_stream(),
            Kind::Tee { body, side } => {
                side.prefix.is_none() && side.trailers.is_none() && body.is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Inner(body) => body.size_hint(),
            Kind::Tee { body, side } => {
                let extra = side.prefix.as_ref().map_or(0, |d| d.len() as u64);
                let inner = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(extra));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(extra));
                }
                hint
            }
        }
    }
}

const MAGIC: &[u8; 4] = b"THR1";

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// `THR1`, status, header count, (name, value)*; the body follows. Lengths as little-endian
/// `u32`. Only the headers `keep` accepts are written.
fn encode_head(parts: &response::Parts, keep: impl Fn(&HeaderName) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&parts.status.as_u16().to_le_bytes());
    let headers: Vec<_> = parts
        .headers
        .iter()
        .filter(|(name, _)| keep(name))
        .collect();
    out.extend_from_slice(&u32::try_from(headers.len()).unwrap_or(0).to_le_bytes());
    for (name, value) in headers {
        put_field(&mut out, name.as_str().as_bytes());
        put_field(&mut out, value.as_bytes());
    }
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
        let mut bytes = encode_head(&parts, |_| true);
        bytes.extend_from_slice(b"done");
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

//! How a request is keyed and a response stored: the codec trait and the closure codec.

use std::future::{Future, Ready, ready};

use super::StoreSlot;
use crate::store::Fnv;

/// What the codec made of a request.
#[derive(Debug)]
pub enum Prepared<Req, Res> {
    /// The request carries an idempotency key.
    Keyed {
        /// The request, to call the service with.
        request: Req,
        /// The idempotency key.
        key: String,
        /// A hash of what the request asks for, to tell a reused key apart.
        fingerprint: u64,
    },
    /// No key: the request passes through untouched.
    Pass(Req),
    /// The request is answered at once (an HTTP codec's 400 for a malformed key, 413 for a
    /// body over the limit).
    Answer(Res),
}

/// Keys requests and stores responses for an [`IdempotencyLayer`](crate::IdempotencyLayer).
///
/// [`HttpCodec`](crate::idempotency::HttpCodec) reads the `Idempotency-Key` header;
/// [`FnCodec`] takes closures, for services that are not HTTP.
///
/// A codec never has to hold a whole response: [`capture`](Self::capture) gets the response
/// of the first call with a key and a [`StoreSlot`], and stores through the slot when it has
/// the bytes (at once, or when a streamed body ends); dropping the slot unused releases the
/// key, so a duplicate runs itself.
pub trait IdempotencyCodec<Req, Res> {
    /// The layer's response: `Res`, or `Res` with a body that stores itself as it streams.
    type Response;
    /// Reads the key and fingerprint (an HTTP codec buffers the request body to hash it).
    type Prepare: Future<Output = Prepared<Req, Self::Response>>;

    /// Starts reading `request`.
    fn prepare(&self, request: Req) -> Self::Prepare;

    /// The answer to a request without a key, handed on untouched.
    fn pass(&self, response: Res) -> Self::Response;

    /// The answer to the first call with a key: stores what it can through `slot` (now, or as
    /// its body streams), or drops the slot to store nothing.
    fn capture(&self, response: Res, slot: StoreSlot) -> Self::Response;

    /// A response from stored bytes; `None` if they cannot be decoded (they are then ignored).
    fn replay(&self, stored: &[u8]) -> Option<Self::Response>;

    /// The answer to a key reused with another request (HTTP: 422); `None` answers with the
    /// family's [`Rejected`](crate::Rejected) in the layer's answer mode.
    fn mismatch(&self) -> Option<Self::Response>;

    /// The answer to a duplicate that waited `max_wait` for the first call with its key
    /// (HTTP: 409); `None` (the default) answers with the family's
    /// [`Rejected`](crate::Rejected) in the layer's answer mode.
    fn in_progress(&self) -> Option<Self::Response> {
        None
    }
}

/// A stable 64-bit hash of `parts` (FNV-1a over each part and its length), for the
/// fingerprints of [`FnCodec`] keys.
///
/// ```
/// use tower_heal::idempotency::fingerprint;
///
/// assert_eq!(fingerprint(&[b"POST", b"/orders"]), fingerprint(&[b"POST", b"/orders"]));
/// assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
/// ```
#[must_use]
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut h = Fnv::new();
    for part in parts {
        h.field(part);
    }
    h.finish()
}

/// A codec from closures, for services that are not HTTP.
///
/// - `key(&request)`: `Some((key, fingerprint))` for an idempotent request, `None` to pass;
/// - `encode(&response)`: the bytes to store, `None` for a failure (not stored);
/// - `decode(&bytes)`: the response again, `None` if the bytes are not understood.
///
/// A reused key with another fingerprint is answered with the family's
/// [`Rejected`](crate::Rejected) (`LayerKind::Heal`). Keys are not scoped for you: where
/// callers share the service, put the caller's identity in the key (or its hash), so one
/// caller's key never replays another's answer.
#[derive(Clone, Debug)]
pub struct FnCodec<K, E, D> {
    key: K,
    encode: E,
    decode: D,
}

impl<K, E, D> FnCodec<K, E, D> {
    /// A codec from the three closures.
    pub const fn new(key: K, encode: E, decode: D) -> Self {
        Self {
            key,
            encode,
            decode,
        }
    }
}

impl<K, E, D, Req, Res> IdempotencyCodec<Req, Res> for FnCodec<K, E, D>
where
    K: Fn(&Req) -> Option<(String, u64)>,
    E: Fn(&Res) -> Option<Vec<u8>>,
    D: Fn(&[u8]) -> Option<Res>,
{
    type Response = Res;
    type Prepare = Ready<Prepared<Req, Res>>;

    fn prepare(&self, request: Req) -> Self::Prepare {
        ready(match (self.key)(&request) {
            Some((key, fingerprint)) => Prepared::Keyed {
                request,
                key,
                fingerprint,
            },
            None => Prepared::Pass(request),
        })
    }

    fn pass(&self, response: Res) -> Res {
        response
    }

    fn capture(&self, response: Res, slot: StoreSlot) -> Res {
        if let Some(bytes) = (self.encode)(&response) {
            slot.store(bytes);
        }
        response
    }

    fn replay(&self, stored: &[u8]) -> Option<Res> {
        (self.decode)(stored)
    }

    fn mismatch(&self) -> Option<Res> {
        None
    }
}

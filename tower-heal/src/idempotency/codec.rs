//! How a request is keyed and a response stored: the codec trait and the closure codec.

use std::future::{Future, Ready, ready};

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

/// A response, and the bytes to store for it (`None`: not stored, such as a failure).
#[derive(Debug)]
pub struct Captured<Res> {
    /// The response, handed to the caller.
    pub response: Res,
    /// What to store, if the response is to be replayed to duplicates.
    pub stored: Option<Vec<u8>>,
}

/// Keys requests and stores responses for an [`IdempotencyLayer`](crate::IdempotencyLayer).
///
/// [`HttpCodec`](crate::idempotency::HttpCodec) reads the `Idempotency-Key` header;
/// [`FnCodec`] takes closures, for services that are not HTTP.
pub trait IdempotencyCodec<Req, Res> {
    /// Reads the key and fingerprint (an HTTP codec buffers the request body to hash it).
    type Prepare: Future<Output = Prepared<Req, Res>>;
    /// Encodes a completed response.
    type Capture: Future<Output = Captured<Res>>;

    /// Starts reading `request`.
    fn prepare(&self, request: Req) -> Self::Prepare;

    /// Starts encoding `response`; a failure is returned with nothing to store.
    fn capture(&self, response: Res) -> Self::Capture;

    /// A response from stored bytes; `None` if they cannot be decoded (they are then ignored).
    fn replay(&self, stored: &[u8]) -> Option<Res>;

    /// The answer to a key reused with another request (HTTP: 422); `None` answers with the
    /// family's [`Rejected`](crate::Rejected) in the layer's answer mode.
    fn mismatch(&self) -> Option<Res>;
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
/// [`Rejected`](crate::Rejected) (`LayerKind::Heal`).
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
    type Prepare = Ready<Prepared<Req, Res>>;
    type Capture = Ready<Captured<Res>>;

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

    fn capture(&self, response: Res) -> Self::Capture {
        let stored = (self.encode)(&response);
        ready(Captured { response, stored })
    }

    fn replay(&self, stored: &[u8]) -> Option<Res> {
        (self.decode)(stored)
    }

    fn mismatch(&self) -> Option<Res> {
        None
    }
}

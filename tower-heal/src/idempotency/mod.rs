//! Server-side idempotency keys: a duplicate request gets the stored response of the first
//! completed call, and concurrent duplicates wait for it instead of running the handler again.
//!
//! See [`IdempotencyLayer`]. The responses live in a [`ResultStore`](crate::store::ResultStore).
//! Keys are scoped to the caller, responses are never buffered beyond `max_response_bytes`
//! (HTTP bodies stream through `IdempotentBody`), and a codec stores through the
//! [`StoreSlot`] it is handed with the first call's response.

mod builder;
mod codec;
mod flight;
mod future;
#[cfg(feature = "http")]
mod http;
mod layer;
mod service;
mod slot;

pub use builder::IdempotencyBuilder;
pub use codec::{FnCodec, IdempotencyCodec, Prepared, fingerprint};
pub use future::ResponseFuture;
#[cfg(feature = "http")]
pub use http::{HttpCodec, IdempotentBody, MAX_KEY_LEN, PrepareFuture, REPLAYED_HEADER};
pub use layer::IdempotencyLayer;
pub use service::Idempotency;
pub use slot::StoreSlot;

//! Server-side idempotency keys: a duplicate request gets the stored response of the first
//! completed call, and concurrent duplicates wait for it instead of running the handler again.
//!
//! See [`IdempotencyLayer`]. The responses live in a [`ResultStore`](crate::store::ResultStore).

mod codec;
mod flight;
mod future;
#[cfg(feature = "http")]
mod http;
mod layer;
mod service;

pub use codec::{Captured, FnCodec, IdempotencyCodec, Prepared, fingerprint};
pub use future::ResponseFuture;
#[cfg(feature = "http")]
pub use http::{CaptureFuture, HttpCodec, MAX_KEY_LEN, PrepareFuture, REPLAYED_HEADER};
pub use layer::{IdempotencyBuilder, IdempotencyLayer};
pub use service::Idempotency;

//! Per-key breakers: one breaker per key of the request, a cap on keys, idle eviction.
//!
//! `registry` holds the key map; `layer`, `service`, `future` and `handle` are the per-key
//! layer's parts, each depending on the registry only (no cycle).

mod future;
mod handle;
mod layer;
mod registry;
mod service;

pub use future::KeyedResponseFuture;
pub use handle::KeyedCircuitBreakerHandle;
pub use layer::KeyedCircuitBreakerLayer;
pub use service::KeyedCircuitBreaker;

use registry::{Keys, Registry};

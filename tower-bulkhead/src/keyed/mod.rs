//! Per-key compartments: one compartment per key of the request, a cap on keys, idle
//! eviction, an overflow policy.
//!
//! `registry` holds the key map; `layer`, `service` and `handle` depend on it only (no
//! cycle). The response future is the single compartment's (`crate::future`).

mod handle;
mod layer;
mod registry;
mod service;

pub use handle::KeyedBulkheadHandle;
pub use layer::KeyedBulkheadLayer;
pub use service::KeyedBulkhead;

use registry::{Keys, Registry};

//! Hedging: a copy of a slow request, the first good answer wins.

pub(crate) mod future;
pub(crate) mod latency;
pub(crate) mod layer;
pub(crate) mod service;
pub(crate) mod state;

pub use future::HedgeFuture;
pub use layer::{HedgeBuilder, HedgeLayer};
pub use service::Hedge;

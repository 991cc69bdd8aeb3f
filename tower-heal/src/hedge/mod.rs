//! Hedging: a copy of a slow request, the first good answer wins.

mod builder;
pub(crate) mod future;
pub(crate) mod latency;
pub(crate) mod layer;
pub(crate) mod service;
pub(crate) mod state;

pub use builder::HedgeBuilder;
pub use future::HedgeFuture;
pub use layer::HedgeLayer;
pub use service::Hedge;

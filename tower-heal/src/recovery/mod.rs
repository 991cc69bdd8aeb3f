//! Automatic recovery: watch the success rate; when it degrades, run a hook or rebuild the
//! inner service, with a growing hold-off, and escalate when recoveries do not help.
//!
//! See [`RecoveryLayer`].

mod builder;
mod config;
mod error;
mod future;
mod health;
mod layer;
mod service;

pub use builder::RecoveryBuilder;
pub use config::{DuringRebuild, MAX_DURATION, RecoveryConfig};
pub use error::ConfigError;
pub use future::ResponseFuture;
pub use health::Escalation;
pub use layer::RecoveryLayer;
pub use service::Recovery;

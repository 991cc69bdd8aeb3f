//! Fault injection for tower services, and chaos experiments that say whether your breakers,
//! bulkheads and retries really hold.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without injection (or HTTP) compiled in, parts of the decision machinery go unused.
#![cfg_attr(not(all(feature = "inject", feature = "http")), allow(dead_code))]

mod answer;
mod builder;
mod config;
mod core;
mod decide;
mod error;
pub mod experiment;
mod fault;
#[cfg(feature = "inject")]
pub mod future;
mod guard;
mod handle;
#[cfg(feature = "http")]
mod http;
mod layer;
pub mod metrics;
pub mod profiles;
#[cfg(feature = "inject")]
mod service;

pub use answer::ChaosAnswer;
pub use builder::{
    ChaosBuilder, DEFAULT_GUARD_ERROR_RATE, DEFAULT_GUARD_MINIMUM_CALLS, DEFAULT_GUARD_WINDOW,
};
pub use config::{ChaosConfig, FaultConfig, GuardConfig, LatencyConfig, ScheduleConfig};
pub use core::MAX_FAULTS;
pub use error::{ConfigError, LayerKind, MAX_DURATION, Reason, Rejected};
pub use fault::{Fault, FaultKind, Latency, Schedule};
pub use handle::{ChaosHandle, ChaosStats, FaultStats};
#[cfg(feature = "http")]
pub use http::{BodyCutOff, ChaosBody};
pub use layer::ChaosLayer;
pub use profiles::FaultProfile;
#[cfg(feature = "inject")]
pub use service::Chaos;

pub use tower_outcome::{BoxError, BoxErrorAnswer, find_rejected};
#[cfg(feature = "http")]
pub use tower_outcome::{GrpcAnswer, HttpAnswer};

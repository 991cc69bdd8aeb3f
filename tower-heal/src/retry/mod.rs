//! Retry: the layer, its service and future, classes, policies and configuration.

pub(crate) mod builder;
pub(crate) mod class;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod future;
pub(crate) mod layer;
pub(crate) mod policy;
pub(crate) mod service;
pub(crate) mod state;

pub use builder::RetryBuilder;
pub use class::{Class, ClassifyRetry, DefaultClasses, Failure, FnClasses, Hint, error_failure};
#[cfg(feature = "http")]
pub use class::{GrpcClasses, HttpClasses};
pub use config::{BudgetConfig, MAX_RETRIES, PolicyConfig, RetryConfig, ThrottleConfig};
pub use error::{ConfigError, MAX_DURATION};
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::{AnyRequest, AnyRequestWithDeadline, ClassPolicy, Deadline, RetryGate, RetryIf};
#[cfg(feature = "http")]
pub use policy::{GrpcGate, IdempotentMethods};
pub use service::Retry;
pub use state::RetryEvent;

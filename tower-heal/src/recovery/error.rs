//! The recovery layer's configuration error.

use std::fmt;

/// A recovery configuration the layer cannot run with. The message names the field.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A rate that must lie in (0, 1] does not.
    Rate {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A count that must be at least 1 is 0.
    Count {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given.
        value: u32,
    },
    /// A duration that must be positive and at most 7 days is not.
    Duration {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given, in seconds.
        seconds: f64,
    },
    /// A maximum is below its starting value.
    Order {
        /// The maximum.
        field: &'static str,
        /// What it must not be below.
        below: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rate { field, value } => {
                write!(f, "{field} must be a rate in (0, 1], got {value}")
            }
            Self::Count { field, value } => write!(f, "{field} must be at least 1, got {value}"),
            Self::Duration { field, seconds } => write!(
                f,
                "{field} must be a positive number of seconds, at most 604800 (7 days), got {seconds}"
            ),
            Self::Order { field, below } => write!(f, "{field} must not be below {below}"),
        }
    }
}

impl std::error::Error for ConfigError {}

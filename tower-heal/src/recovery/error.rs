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

impl ConfigError {
    /// The error as the family's [`FieldError`](tower_outcome::FieldError) (field path, value,
    /// what was expected), so errors of several layers' configurations can be reported the
    /// same way; `None` for an error that is not about one value (two settings out of order).
    #[must_use]
    pub fn field_error(&self) -> Option<tower_outcome::FieldError> {
        use tower_outcome::FieldError;
        match self {
            Self::Rate { field, value } => Some(FieldError::new(
                *field,
                value.to_string(),
                "a rate in (0, 1]",
            )),
            Self::Count { field, value } => {
                Some(FieldError::new(*field, value.to_string(), "at least 1"))
            }
            Self::Duration { field, seconds } => Some(FieldError::new(
                *field,
                seconds.to_string(),
                "a positive number of seconds, at most 604800 (7 days)",
            )),
            Self::Order { .. } => None,
        }
    }
}

impl std::error::Error for ConfigError {}

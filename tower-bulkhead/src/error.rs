//! Errors of the bulkhead: the family's [`Rejected`] and this crate's [`ConfigError`].

use std::fmt;

pub use tower_outcome::{LayerKind, Reason, Rejected};

/// A configuration the bulkhead cannot run with, found when a layer is built or a handle
/// changes a limit. The message names the field and the value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count that must be at least 1 (and at most `max`) is out of range.
    Count {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A duration that must be a finite number of seconds in range is not.
    Duration {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given, in seconds.
        seconds: f64,
        /// Whether zero is allowed (`max_wait_seconds`, `retry_after_seconds`).
        zero_allowed: bool,
    },
    /// A setting needs another one that is missing.
    Missing {
        /// The field that was set.
        field: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// A per-key setting was given to a layer that has no such key type, or a key is invalid.
    InvalidKey {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The key given.
        key: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count { field, value, max } => {
                write!(f, "{field} must be between 1 and {max}, got {value}")
            }
            Self::Duration {
                field,
                seconds,
                zero_allowed: true,
            } => write!(
                f,
                "{field} must be a number of seconds between 0 and 604800 (7 days), got {seconds}"
            ),
            Self::Duration { field, seconds, .. } => write!(
                f,
                "{field} must be a positive number of seconds, at most 604800 (7 days), got {seconds}"
            ),
            Self::Missing { field, needs } => write!(f, "{field} needs {needs}"),
            Self::InvalidKey { field, key } => write!(f, "{field} has an invalid key {key:?}"),
        }
    }
}

impl ConfigError {
    /// The error as the family's [`FieldError`](tower_outcome::FieldError) (field path, value,
    /// what was expected), so errors of several layers' configurations can be reported the
    /// same way; `None` for an error that is not about one value (a missing companion setting).
    #[must_use]
    pub fn field_error(&self) -> Option<tower_outcome::FieldError> {
        use tower_outcome::FieldError;
        match self {
            Self::Count { field, value, max } => Some(FieldError::new(
                *field,
                value.to_string(),
                format!("between 1 and {max}"),
            )),
            Self::Duration {
                field,
                seconds,
                zero_allowed,
            } => Some(FieldError::new(
                *field,
                seconds.to_string(),
                if *zero_allowed {
                    "a number of seconds between 0 and 604800 (7 days)"
                } else {
                    "a positive number of seconds, at most 604800 (7 days)"
                },
            )),
            Self::InvalidKey { field, key } => {
                Some(FieldError::new(*field, format!("{key:?}"), "a valid key"))
            }
            Self::Missing { .. } => None,
        }
    }
}

impl std::error::Error for ConfigError {}

//! Errors of the breaker: the family's [`Rejected`] and this crate's [`ConfigError`].

use std::fmt;

pub use tower_outcome::{LayerKind, Reason, Rejected};

/// A configuration the breaker cannot run with, found when a layer is built or a handle
/// changes a threshold. The message names the field and the value.
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
    /// A rate that must lie in (0, 1] (above 0, at most 1) does not.
    Rate {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A duration that must be positive and at most [`MAX_DURATION`](crate::MAX_DURATION) is not.
    Duration {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given, in seconds.
        seconds: f64,
    },
    /// A setting needs another one that is missing.
    Missing {
        /// The field that was set.
        field: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// A named profile was asked for that the configuration does not have.
    UnknownProfile(String),
    /// A value of a named profile is invalid.
    InProfile {
        /// The profile's name.
        profile: String,
        /// What is wrong with it.
        error: Box<ConfigError>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count { field, value, max } => {
                write!(f, "{field} must be between 1 and {max}, got {value}")
            }
            Self::Rate { field, value } => {
                write!(
                    f,
                    "{field} must be a rate above 0 and at most 1, got {value}"
                )
            }
            Self::Duration { field, seconds } => {
                write!(
                    f,
                    "{field} must be a positive number of seconds, at most 604800 (7 days), got {seconds}"
                )
            }
            Self::Missing { field, needs } => write!(f, "{field} needs {needs}"),
            Self::UnknownProfile(name) => write!(f, "no circuit breaker profile named {name:?}"),
            Self::InProfile { profile, error } => {
                write!(f, "in circuit breaker profile {profile:?}: {error}")
            }
        }
    }
}

impl ConfigError {
    /// The error as the family's [`FieldError`](tower_outcome::FieldError) (field path, value,
    /// what was expected), so errors of several layers' configurations can be reported the
    /// same way; `None` for an error that is not about one value (a missing companion setting, an unknown profile).
    #[must_use]
    pub fn field_error(&self) -> Option<tower_outcome::FieldError> {
        use tower_outcome::FieldError;
        match self {
            Self::Count { field, value, max } => Some(FieldError::new(
                *field,
                value.to_string(),
                format!("between 1 and {max}"),
            )),
            Self::Rate { field, value } => Some(FieldError::new(
                *field,
                value.to_string(),
                "a rate above 0 and at most 1",
            )),
            Self::Duration { field, seconds } => Some(FieldError::new(
                *field,
                seconds.to_string(),
                "a positive number of seconds, at most 604800 (7 days)",
            )),
            Self::InProfile { profile, error } => error.field_error().map(|e| e.under(profile)),
            Self::Missing { .. } | Self::UnknownProfile(_) => None,
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InProfile { error, .. } => Some(&**error),
            _ => None,
        }
    }
}

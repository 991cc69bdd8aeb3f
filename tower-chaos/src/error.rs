//! Errors of the chaos layer: the family's [`Rejected`] and this crate's [`ConfigError`].

use std::fmt;

pub use tower_outcome::{LayerKind, Reason, Rejected};

/// A fault, layer, profile or suite the chaos layer cannot run with, found when it is built,
/// parsed, or changed through the handle. The message names the field (with the fault's or
/// experiment's name in it, such as `faults.http_503.rate`) and the value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A rate that must lie in 0..=1 does not.
    Rate {
        /// The field.
        field: String,
        /// The value given.
        value: f64,
    },
    /// A duration that must be positive (or ordered) and at most 7 days is not.
    Duration {
        /// The field.
        field: String,
        /// The value given, in seconds.
        seconds: f64,
    },
    /// A count that must be at least 1 is not.
    Count {
        /// The field.
        field: String,
        /// The value given.
        value: u64,
    },
    /// A required value is missing.
    Missing {
        /// The field.
        field: String,
        /// What is needed.
        needs: &'static str,
    },
    /// A value is out of its domain for another reason.
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// Two faults of one layer (or two experiments of a suite) share a name.
    Duplicate {
        /// The field.
        field: String,
        /// The name given twice.
        name: String,
    },
    /// A handle or a profile named a fault the layer does not have.
    UnknownFault(String),
    /// A suite named a profile that does not exist.
    UnknownProfile(String),
    /// A suite or profile file that does not parse; the message gives the line, the column and
    /// the field the parser was in.
    Parse(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rate { field, value } => {
                write!(f, "{field} must be a rate between 0 and 1, got {value}")
            }
            Self::Duration { field, seconds } => write!(
                f,
                "{field} must be a positive number of seconds, at most 604800 (7 days), got {seconds}"
            ),
            Self::Count { field, value } => write!(f, "{field} must be at least 1, got {value}"),
            Self::Missing { field, needs } => write!(f, "{field} is missing: {needs}"),
            Self::Invalid { field, reason } => write!(f, "{field} is invalid: {reason}"),
            Self::Duplicate { field, name } => {
                write!(f, "{field}: the name {name:?} is used twice")
            }
            Self::UnknownFault(name) => write!(f, "no fault named {name:?}"),
            Self::UnknownProfile(name) => write!(f, "no fault profile named {name:?}"),
            Self::Parse(message) => write!(f, "cannot parse: {message}"),
        }
    }
}

impl ConfigError {
    /// The error as the family's [`FieldError`](tower_outcome::FieldError) (field path, value,
    /// what was expected), so errors of several layers' configurations can be reported the
    /// same way; `None` for an error that is not about one value (a missing setting, an unknown name, text that does not parse).
    #[must_use]
    pub fn field_error(&self) -> Option<tower_outcome::FieldError> {
        use tower_outcome::FieldError;
        match self {
            Self::Rate { field, value } => Some(FieldError::new(
                field.as_str(),
                value.to_string(),
                "a rate between 0 and 1",
            )),
            Self::Duration { field, seconds } => Some(FieldError::new(
                field.as_str(),
                seconds.to_string(),
                "a positive number of seconds, at most 604800 (7 days)",
            )),
            Self::Count { field, value } => Some(FieldError::new(
                field.as_str(),
                value.to_string(),
                "at least 1",
            )),
            Self::Invalid { field, reason } => {
                Some(FieldError::new(field.as_str(), reason.as_str(), "valid"))
            }
            Self::Duplicate { field, name } => Some(FieldError::new(
                field.as_str(),
                format!("{name:?}"),
                "a name used once",
            )),
            Self::Missing { .. }
            | Self::UnknownFault(_)
            | Self::UnknownProfile(_)
            | Self::Parse(_) => None,
        }
    }
}

impl std::error::Error for ConfigError {}

/// The longest duration any setting takes (7 days).
pub use tower_outcome::MAX_DURATION;

pub(crate) fn check_rate(field: impl FnOnce() -> String, value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Rate {
            field: field(),
            value,
        })
    }
}

pub(crate) fn check_duration(
    field: impl FnOnce() -> String,
    value: std::time::Duration,
    allow_zero: bool,
) -> Result<std::time::Duration, ConfigError> {
    if (allow_zero || !value.is_zero()) && value <= MAX_DURATION {
        Ok(value)
    } else {
        Err(ConfigError::Duration {
            field: field(),
            seconds: value.as_secs_f64(),
        })
    }
}

pub(crate) fn seconds(
    field: impl FnOnce() -> String,
    value: f64,
) -> Result<std::time::Duration, ConfigError> {
    match std::time::Duration::try_from_secs_f64(value) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(ConfigError::Duration {
            field: field(),
            seconds: value,
        }),
    }
}

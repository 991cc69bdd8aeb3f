//! Errors of the retry layer's configuration.

use std::fmt;

/// A retry configuration the layer cannot run with, found when the layer is built. The message
/// names the field (and the class, for a per-class policy) and the value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count above its maximum.
    Count {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A duration that is zero where it must be positive, or longer than 7 days.
    Duration {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given, in milliseconds.
        millis: u128,
    },
    /// A number outside its range (a multiplier below 1, a ratio that is not positive, a
    /// jitter factor outside 0..=1, or not a finite number).
    Number {
        /// The field, as named in the configuration.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The range allowed, in words.
        range: &'static str,
    },
    /// A jitter mode that is not one of `none`, `full`, `equal`, `decorrelated`,
    /// `proportional(f)`.
    Jitter(String),
    /// A setting needs another one that is missing.
    Missing {
        /// The field that was set.
        field: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// A per-class policy (under `retry_policies`) is invalid.
    Class {
        /// The class name, as written in the configuration.
        class: String,
        /// What is wrong with it.
        error: Box<ConfigError>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count { field, value, max } => {
                write!(f, "{field} must be at most {max}, got {value}")
            }
            Self::Duration { field, millis } => write!(
                f,
                "{field} must be a positive duration of at most 7 days, got {millis} ms"
            ),
            Self::Number {
                field,
                value,
                range,
            } => write!(f, "{field} must be {range}, got {value}"),
            Self::Jitter(name) => write!(
                f,
                "jitter must be a bool or one of none, full, equal, decorrelated, proportional(f), got {name:?}"
            ),
            Self::Missing { field, needs } => write!(f, "{field} needs {needs}"),
            Self::Class { class, error } => write!(f, "retry_policies.{class}: {error}"),
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
                format!("at most {max}"),
            )),
            Self::Duration { field, millis } => Some(FieldError::new(
                *field,
                format!("{millis} ms"),
                "a positive duration of at most 7 days",
            )),
            Self::Number {
                field,
                value,
                range,
            } => Some(FieldError::new(*field, value.to_string(), *range)),
            Self::Jitter(name) => Some(FieldError::new(
                "jitter",
                format!("{name:?}"),
                "a bool or one of none, full, equal, decorrelated, proportional(f)",
            )),
            Self::Class { class, error } => error
                .field_error()
                .map(|e| e.under(&format!("retry_policies.{class}"))),
            Self::Missing { .. } => None,
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Class { error, .. } => Some(&**error),
            _ => None,
        }
    }
}

/// The longest duration a setting accepts: 7 days.
pub use tower_outcome::MAX_DURATION;

pub(crate) fn check_duration(
    field: &'static str,
    value: std::time::Duration,
    allow_zero: bool,
) -> Result<(), ConfigError> {
    if value > MAX_DURATION || (!allow_zero && value.is_zero()) {
        Err(ConfigError::Duration {
            field,
            millis: value.as_millis(),
        })
    } else {
        Ok(())
    }
}

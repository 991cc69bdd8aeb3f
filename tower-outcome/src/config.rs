//! What the family's configurations share: the duration bound and the error naming a field.

use std::fmt;
use std::time::Duration;

/// The longest duration any setting of the family takes (7 days): a wait, a window, a
/// `retry_after` or a back-off. Every crate's configuration checks durations against it, and
/// arithmetic on nanosecond clocks stays exact below it.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);

/// One invalid configuration value: where it is, what it was, what was expected.
///
/// Every crate's `ConfigError` can give its error in this shape (`field_error()`), so a
/// program that reads several layers' configurations reports them the same way.
///
/// ```
/// use tower_outcome::FieldError;
///
/// let error = FieldError::new("bulkheads.research.max_concurrent", "0", "between 1 and 16777216");
/// assert_eq!(error.field(), "bulkheads.research.max_concurrent");
/// assert_eq!(error.to_string(), "bulkheads.research.max_concurrent must be between 1 and 16777216, got 0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldError {
    field: String,
    value: String,
    expected: String,
}

impl FieldError {
    /// An error for the field at `field` (a path such as `faults[0].rate`), which was `value`
    /// where `expected` was expected (a phrase that reads after "must be").
    #[must_use]
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: value.into(),
            expected: expected.into(),
        }
    }

    /// The field's path, as named in the configuration.
    #[must_use]
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The value given, as text.
    #[must_use]
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What was expected, as a phrase that reads after "must be".
    #[must_use]
    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// The same error for a field nested under `prefix` (`prefix.field`).
    #[must_use]
    pub fn under(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} must be {}, got {}",
            self.field, self.expected, self.value
        )
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_and_reads_as_one_sentence() {
        let e = FieldError::new("rate", "1.5", "a rate between 0 and 1").under("faults[0]");
        assert_eq!(e.field(), "faults[0].rate");
        assert_eq!(e.value(), "1.5");
        assert_eq!(e.expected(), "a rate between 0 and 1");
        assert_eq!(
            e.to_string(),
            "faults[0].rate must be a rate between 0 and 1, got 1.5"
        );
    }

    #[test]
    fn the_bound_is_seven_days() {
        assert_eq!(MAX_DURATION.as_secs(), 604_800);
    }
}

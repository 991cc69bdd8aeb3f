//! What each dependency of a handler answered.

use super::{Degradable, DegradationLevel};

/// Collects, in a handler that calls several dependencies, what each of them answered, for
/// an answer that says `full` or lists the `degraded_components` and the worst level.
///
/// With the `serde` feature it serializes as
/// `{"status": "degraded", "level": 1, "degraded_components": ["metrics"]}`.
///
/// ```
/// use tower_heal::{DegradationLevel, DegradationReport, Degraded, Degradable, Marked};
///
/// let metrics = {
///     let mut m = Marked::new("cached metrics");
///     m.mark_degraded(Degraded::new("metrics", DegradationLevel::Slight), false);
///     m
/// };
/// let logs: Result<Marked<&str>, std::io::Error> = Err(std::io::Error::other("down"));
///
/// let mut report = DegradationReport::new();
/// report.observe("metrics", &metrics);
/// report.observe_result("logs", &logs);
/// report.observe("alerts", &Marked::new("3 alerts"));
/// assert_eq!(report.status(), "degraded");
/// assert_eq!(report.degraded_components(), ["metrics", "logs"]);
/// assert_eq!(report.level(), DegradationLevel::Failed);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DegradationReport {
    components: Vec<(String, DegradationLevel)>,
}

impl DegradationReport {
    /// An empty report (status `full`).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            components: Vec::new(),
        }
    }

    /// Records that `component` answered at `level`.
    pub fn record(&mut self, component: impl Into<String>, level: DegradationLevel) {
        self.components.push((component.into(), level));
    }

    /// Records `component`'s answer: its [`Degraded`](crate::Degraded) level, or full.
    pub fn observe<R: Degradable>(&mut self, component: impl Into<String>, response: &R) {
        let level = response
            .degraded()
            .map_or(DegradationLevel::Full, |d| d.level());
        self.record(component, level);
    }

    /// Records `component`'s result: an error is level 4 (failed).
    pub fn observe_result<R: Degradable, E>(
        &mut self,
        component: impl Into<String>,
        result: &Result<R, E>,
    ) {
        match result {
            Ok(response) => self.observe(component, response),
            Err(_) => self.record(component, DegradationLevel::Failed),
        }
    }

    /// The worst level recorded (full when nothing degraded).
    #[must_use]
    pub fn level(&self) -> DegradationLevel {
        self.components
            .iter()
            .map(|(_, level)| *level)
            .max()
            .unwrap_or(DegradationLevel::Full)
    }

    /// `"full"` when every component answered in full, else `"degraded"`.
    #[must_use]
    pub fn status(&self) -> &'static str {
        if self.level() == DegradationLevel::Full {
            "full"
        } else {
            "degraded"
        }
    }

    /// The components that did not answer in full, in the order recorded.
    #[must_use]
    pub fn degraded_components(&self) -> Vec<&str> {
        self.components
            .iter()
            .filter(|(_, level)| *level != DegradationLevel::Full)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Every component recorded with its level.
    #[must_use]
    pub fn components(&self) -> &[(String, DegradationLevel)] {
        &self.components
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for DegradationReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("DegradationReport", 3)?;
        s.serialize_field("status", self.status())?;
        s.serialize_field("level", &self.level().as_u8())?;
        s.serialize_field("degraded_components", &self.degraded_components())?;
        s.end()
    }
}

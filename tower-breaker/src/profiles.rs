//! Named breaker configurations: a profile per name, built into a layer or a builder.

use std::collections::BTreeMap;

use crate::{CircuitBreakerBuilder, CircuitBreakerConfig, CircuitBreakerLayer, ConfigError};

/// Named breaker configurations, as in `{"circuit_breakers": {"default": {...}, "critical_services": {...}}}`.
///
/// Deserialize the map under your own top-level key, then build a layer per profile
/// ([`layer`](Self::layer)), or a builder to choose the classifier and answer mode yourself
/// ([`builder`](Self::builder)); a profile without a `name` takes its key as the name. An
/// error in a profile, from JSON or from its values, names the profile.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use tower_breaker::CircuitBreakerProfiles;
///
/// #[derive(serde::Deserialize)]
/// struct Settings {
///     circuit_breakers: CircuitBreakerProfiles,
/// }
///
/// let settings: Settings = serde_json::from_str(r#"{"circuit_breakers": {
///     "default": {"failure_threshold": 5, "timeout_seconds": 60},
///     "critical_services": {"failure_threshold": 3, "success_threshold": 2, "timeout_seconds": 30}
/// }}"#).unwrap();
/// let critical = settings.circuit_breakers.layer("critical_services").unwrap();
/// assert_eq!(critical.handle().name(), "critical_services");
/// assert!(settings.circuit_breakers.layer("missing").is_err());
///
/// // An axum route: answer 503 and count 5xx answers as failures.
/// let reports = settings.circuit_breakers.builder("default").unwrap().http().build().unwrap();
/// assert_eq!(reports.name(), "default");
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CircuitBreakerProfiles {
    /// The profiles by name.
    pub profiles: BTreeMap<String, CircuitBreakerConfig>,
}

impl CircuitBreakerProfiles {
    /// The profile `name`, with its name filled in from the key when it has none of its own.
    ///
    /// # Errors
    /// [`ConfigError::UnknownProfile`] when there is no such profile.
    pub fn get(&self, name: &str) -> Result<CircuitBreakerConfig, ConfigError> {
        let mut config = self
            .profiles
            .get(name)
            .cloned()
            .ok_or_else(|| ConfigError::UnknownProfile(name.to_owned()))?;
        if config.name.is_empty() {
            name.clone_into(&mut config.name);
        }
        Ok(config)
    }

    /// Builds a layer from the profile `name` (default classifier and answer mode).
    ///
    /// # Errors
    /// [`ConfigError::UnknownProfile`], or [`ConfigError::InProfile`] with what the profile's
    /// values violate.
    pub fn layer(&self, name: &str) -> Result<CircuitBreakerLayer, ConfigError> {
        self.builder(name)?.build()
    }

    /// A builder holding the profile `name`, its values checked: set the classifier, the answer
    /// mode (`.http()`, `.grpc()`) or a listener, then build a layer or a per-key layer.
    ///
    /// # Errors
    /// [`ConfigError::UnknownProfile`], or [`ConfigError::InProfile`] with what the profile's
    /// values violate.
    pub fn builder(&self, name: &str) -> Result<CircuitBreakerBuilder, ConfigError> {
        let config = self.get(name)?;
        config.validate().map_err(|error| ConfigError::InProfile {
            profile: name.to_owned(),
            error: Box::new(error),
        })?;
        Ok(CircuitBreakerLayer::builder().config(config))
    }
}

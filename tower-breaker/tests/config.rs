//! Configuration from our users' JSON, and invalid configuration as typed errors.
#![cfg(feature = "serde")]

use std::time::Duration;

use serde::Deserialize;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{
    CircuitBreakerConfig, CircuitBreakerLayer, CircuitBreakerProfiles, ConfigError, State,
    WindowConfig,
};

#[derive(Deserialize)]
struct One {
    circuit_breaker: CircuitBreakerConfig,
}

#[derive(Deserialize)]
struct Many {
    circuit_breakers: CircuitBreakerProfiles,
}

#[tokio::test(start_paused = true)]
async fn the_users_single_breaker_shape() {
    let json = r#"{"circuit_breaker": {"name": "mcp_filesystem", "failure_threshold": 5, "reset_timeout_seconds": 60, "half_open_max_calls": 1}}"#;
    let config = serde_json::from_str::<One>(json).unwrap().circuit_breaker;
    assert_eq!(config.name, "mcp_filesystem");
    assert_eq!(config.failure_threshold, Some(5));
    assert_eq!(config.reset_timeout_seconds, 60.0);
    assert_eq!(config.minimum_calls, 20, "unset fields keep their defaults");

    let layer = CircuitBreakerLayer::from_config(config).unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("down")) });
    for _ in 0..5 {
        assert!(svc.ready().await.unwrap().call(()).await.is_err());
    }
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.open_remaining(), Some(Duration::from_secs(60)));
}

#[test]
fn named_profiles() {
    let json = r#"{"circuit_breakers": {
        "default": {"failure_threshold": 5, "success_threshold": 1, "timeout_seconds": 60},
        "critical_services": {"failure_threshold": 3, "success_threshold": 2, "timeout_seconds": 30, "half_open_max_calls": 2},
        "non_critical": {"failure_threshold": 10, "success_threshold": 1, "timeout_seconds": 120}
    }}"#;
    let profiles = serde_json::from_str::<Many>(json).unwrap().circuit_breakers;
    assert_eq!(profiles.profiles.len(), 3);
    let critical = profiles.get("critical_services").unwrap();
    assert_eq!(critical.name, "critical_services");
    assert_eq!(critical.failure_threshold, Some(3));
    assert_eq!(critical.success_threshold, 2);
    assert_eq!(
        critical.reset_timeout_seconds, 30.0,
        "timeout_seconds is reset_timeout_seconds"
    );
    assert_eq!(
        profiles.get("non_critical").unwrap().reset_timeout_seconds,
        120.0
    );
    assert_eq!(profiles.layer("default").unwrap().name(), "default");
    assert_eq!(
        profiles.layer("nope").unwrap_err(),
        ConfigError::UnknownProfile("nope".to_owned())
    );
}

#[test]
fn windows_in_json() {
    let config: CircuitBreakerConfig = serde_json::from_str(
        r#"{"failure_threshold": null, "failure_rate_threshold": 0.5, "window": {"type": "time", "seconds": 30}}"#,
    )
    .unwrap();
    assert_eq!(config.failure_threshold, None);
    assert_eq!(
        config.window,
        WindowConfig::Time {
            seconds: 30.0,
            buckets: 10
        }
    );
    let _layer = CircuitBreakerLayer::from_config(config).unwrap();

    let config: CircuitBreakerConfig = serde_json::from_str(
        r#"{"failure_rate_threshold": 0.25, "window": {"type": "count", "size": 50}}"#,
    )
    .unwrap();
    assert_eq!(config.window, WindowConfig::Count { size: 50 });
}

#[test]
fn invalid_values_are_typed_errors_when_the_layer_is_built() {
    let cases = [
        (
            r#"{"failure_threshold": 0}"#,
            "failure_threshold must be between 1 and 4294967295, got 0",
        ),
        (
            r#"{"failure_rate_threshold": 1.5}"#,
            "failure_rate_threshold must be a rate above 0 and at most 1, got 1.5",
        ),
        (
            r#"{"failure_rate_threshold": -0.5}"#,
            "failure_rate_threshold must be a rate above 0 and at most 1, got -0.5",
        ),
        (
            r#"{"failure_rate_threshold": 0.5, "window": {"type": "count", "size": 0}}"#,
            "window.size must be between 1 and 10000, got 0",
        ),
        (
            r#"{"reset_timeout_seconds": 0}"#,
            "reset_timeout_seconds must be a positive number of seconds, at most 604800 (7 days), got 0",
        ),
        (
            r#"{"timeout_seconds": -5}"#,
            "reset_timeout_seconds must be a positive number of seconds, at most 604800 (7 days), got -5",
        ),
        (
            r#"{"half_open_max_calls": 0}"#,
            "half_open_max_calls must be between 1 and 65535, got 0",
        ),
        (
            r#"{"success_threshold": 0}"#,
            "success_threshold must be between 1 and 65535, got 0",
        ),
        (
            r#"{"max_keys": 0}"#,
            "max_keys must be between 1 and 4294967295, got 0",
        ),
    ];
    for (json, message) in cases {
        let config: CircuitBreakerConfig = serde_json::from_str(json).unwrap();
        let err = CircuitBreakerLayer::from_config(config).unwrap_err();
        assert_eq!(err.to_string(), message, "{json}");
    }
}

#[test]
fn unknown_fields_and_wrong_types_are_rejected() {
    let err =
        serde_json::from_str::<CircuitBreakerConfig>(r#"{"failure_treshold": 5}"#).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `failure_treshold`"),
        "{err}"
    );
    let err =
        serde_json::from_str::<CircuitBreakerConfig>(r#"{"failure_threshold": -1}"#).unwrap_err();
    assert!(err.to_string().contains("invalid value"), "{err}");
}

#[test]
fn a_config_round_trips() {
    let config = CircuitBreakerConfig {
        name: "x".into(),
        failure_rate_threshold: Some(0.3),
        ..CircuitBreakerConfig::default()
    };
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<CircuitBreakerConfig>(&json).unwrap(),
        config
    );
}

#[test]
fn a_value_error_reads_the_same_as_the_familys_field_error() {
    let err = CircuitBreakerLayer::builder()
        .failure_rate_threshold(1.5)
        .build()
        .unwrap_err();
    let field = err.field_error().expect("about one value");
    assert_eq!(field.field(), "failure_rate_threshold");
    assert_eq!(field.value(), "1.5");
    assert_eq!(field.to_string(), err.to_string());
    let err = CircuitBreakerLayer::builder()
        .count_window(0)
        .build()
        .unwrap_err();
    assert_eq!(err.field_error().unwrap().to_string(), err.to_string());
}

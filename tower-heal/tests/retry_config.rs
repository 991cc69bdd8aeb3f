//! Configuration in our users' JSON shape.
#![cfg(feature = "serde")]

mod support;

use std::time::Duration;

use tower::ServiceBuilder;
use tower_heal::{RetryConfig, RetryLayer};

use support::{Http, Script, call, status, with};

const COURSE: &str = r#"{"retry_policies": {"network_error": {"max_retries": 5, "backoff": "exponential", "initial_delay_ms": 1000, "max_delay_ms": 30000, "jitter": true}, "rate_limit_429": {"max_retries": 3, "backoff": "fixed", "delay_ms": 60000}, "validation_error": {"max_retries": 0}}}"#;

#[test]
fn the_course_configuration_parses_and_builds() {
    let config: RetryConfig = serde_json::from_str(COURSE).unwrap();
    assert_eq!(config.retry_policies.len(), 3);
    assert_eq!(config.retry_policies["network_error"].max_retries, Some(5));
    let _layer = RetryLayer::from_config(config).unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_course_configuration_drives_the_classes() {
    let config: RetryConfig = serde_json::from_str(COURSE).unwrap();
    let layer = RetryLayer::builder()
        .http_client()
        .config(config)
        .max_retry_after(Duration::from_secs(120))
        .build()
        .unwrap();
    // rate_limit_429: fixed 60 s, 3 retries, no jitter.
    let script = Script::new([status(429)]);
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Http(script.clone()));
    assert_eq!(
        call(&mut svc, http::Request::new(()))
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(script.gaps_ms(), [60_000, 60_000, 60_000]);
    // validation_error: never.
    let script = Script::new([status(400)]);
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Http(script.clone()));
    let _ = call(&mut svc, http::Request::new(())).await;
    assert_eq!(script.count(), 1);
    // A server's Retry-After still wins over the class's fixed delay.
    let script = Script::new([with(429, "retry-after", "2"), status(200)]);
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(Http(script.clone()));
    let _ = call(&mut svc, http::Request::new(())).await;
    assert_eq!(script.gaps_ms(), [2000]);
}

#[test]
fn jitter_is_a_bool_or_a_mode_name() {
    for (json, ok) in [
        (r#"{"jitter": true}"#, true),
        (r#"{"jitter": false}"#, true),
        (r#"{"jitter": "decorrelated"}"#, true),
        (r#"{"jitter": "proportional(0.25)"}"#, true),
        (r#"{"jitter": "proportional(3)"}"#, false),
        (r#"{"jitter": "sometimes"}"#, false),
        (r#"{"jitter": 3}"#, false),
    ] {
        assert_eq!(
            serde_json::from_str::<RetryConfig>(json).is_ok(),
            ok,
            "{json}"
        );
    }
}

#[test]
fn invalid_configuration_is_a_typed_error_at_build_time() {
    let config: RetryConfig =
        serde_json::from_str(r#"{"retry_policies": {"network_error": {"multiplier": 0.5}}}"#)
            .unwrap();
    let err = RetryLayer::from_config(config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "retry_policies.network_error: multiplier must be a number between 1 and 100, got 0.5"
    );
    let config: RetryConfig = serde_json::from_str(r#"{"budget": {"ratio": -1}}"#).unwrap();
    assert!(RetryLayer::from_config(config).is_err());
    // A misspelt field is refused by the parser.
    assert!(serde_json::from_str::<RetryConfig>(r#"{"max_retry": 3}"#).is_err());
}

#[test]
fn backoff_type_and_plural_class_names_are_read_too() {
    let config: RetryConfig = serde_json::from_str(
        r#"{"retry_policies": {"network_errors": {"max_retries": 5, "backoff_type": "exponential", "initial_delay_ms": 1000}},
            "throttle": {"max_tokens": 10, "token_ratio": 0.1}}"#,
    )
    .unwrap();
    let _layer = RetryLayer::from_config(config).unwrap();
}

#[test]
fn a_value_error_reads_the_same_as_the_familys_field_error() {
    let err = RetryLayer::builder().multiplier(0.5).build().unwrap_err();
    let field = err.field_error().expect("about one value");
    assert_eq!((field.field(), field.value()), ("multiplier", "0.5"));
    assert_eq!(field.to_string(), err.to_string());
    let err = tower_heal::RecoveryConfig {
        success_rate_threshold: 1.5,
        ..tower_heal::RecoveryConfig::default()
    }
    .validate()
    .unwrap_err();
    let field = err.field_error().expect("about one value");
    assert_eq!(
        (field.field(), field.value()),
        ("success_rate_threshold", "1.5")
    );
    assert_eq!(field.to_string(), err.to_string());
}

//! What a user reads: error messages, transition lines, profiles built any way.
#![cfg(all(feature = "serde", feature = "http"))]

use std::error::Error as _;
use std::sync::{Arc, Mutex};

use http::Request;
use serde::Deserialize;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{
    CircuitBreakerConfig, CircuitBreakerLayer, CircuitBreakerProfiles, ConfigError, FnClassifier,
    Outcome, TransitionReason,
};

#[derive(Deserialize)]
struct Many {
    circuit_breakers: CircuitBreakerProfiles,
}

fn profiles(json: &str) -> Result<CircuitBreakerProfiles, serde_json::Error> {
    serde_json::from_str::<Many>(json).map(|m| m.circuit_breakers)
}

#[test]
fn a_rate_of_zero_states_the_valid_range() {
    let err = CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.0)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failure_rate_threshold must be a rate above 0 and at most 1, got 0"
    );
    let ok = CircuitBreakerLayer::builder()
        .failure_rate_threshold(1.0)
        .build();
    assert!(ok.is_ok(), "1 is in range");
}

#[test]
fn giving_both_timeout_names_is_an_error_naming_both() {
    let err = serde_json::from_str::<CircuitBreakerConfig>(
        r#"{"reset_timeout_seconds": 30, "timeout_seconds": 60}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("reset_timeout_seconds"), "{err}");
    assert!(err.contains("timeout_seconds is another name"), "{err}");
    // Either one alone is fine.
    for json in [
        r#"{"reset_timeout_seconds": 30}"#,
        r#"{"timeout_seconds": 30}"#,
    ] {
        let config: CircuitBreakerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.reset_timeout_seconds, 30.0);
    }
}

#[test]
fn a_null_failure_threshold_turns_the_rule_off_and_an_absent_one_keeps_the_default() {
    let off: CircuitBreakerConfig =
        serde_json::from_str(r#"{"failure_threshold": null, "failure_rate_threshold": 0.5}"#)
            .unwrap();
    assert_eq!(off.failure_threshold, None);
    let default: CircuitBreakerConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(default, CircuitBreakerConfig::default());
}

#[test]
fn an_invalid_value_in_a_profile_names_the_profile() {
    let profiles =
        profiles(r#"{"circuit_breakers": {"critical_services": {"failure_threshold": 0}}}"#)
            .unwrap();
    let err = profiles.layer("critical_services").unwrap_err();
    assert_eq!(
        err.to_string(),
        "in circuit breaker profile \"critical_services\": failure_threshold must be between 1 and 4294967295, got 0"
    );
    assert!(
        matches!(err, ConfigError::InProfile { ref profile, .. } if profile == "critical_services")
    );
    assert!(err.source().is_some());
    assert!(profiles.builder("critical_services").is_err());
}

#[test]
fn a_json_error_inside_a_profile_names_the_profile() {
    let err =
        profiles(r#"{"circuit_breakers": {"default": {}, "payments": {"failure_treshold": 3}}}"#)
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("circuit breaker profile \"payments\""),
        "{err}"
    );
    assert!(err.contains("failure_treshold"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn profiles_build_with_any_classifier_and_answer_mode() {
    let profiles =
        profiles(r#"{"circuit_breakers": {"reports": {"failure_threshold": 2}}}"#).unwrap();

    // `.http()` with the status classifier it implies.
    let layer = profiles.builder("reports").unwrap().http().build().unwrap();
    assert_eq!(layer.name(), "reports");
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(502)
                    .body(String::new())
                    .unwrap(),
            )
        });
    for _ in 0..2 {
        svc.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }
    assert_eq!(handle.state(), tower_breaker::State::Open);

    // A classifier of your own, and a per-key layer.
    let classifier = FnClassifier::new(
        |r: Result<&u32, &(dyn std::error::Error + 'static)>| match r {
            Ok(0) => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        },
    );
    let keyed = profiles
        .builder("reports")
        .unwrap()
        .classifier(classifier)
        .build_keyed::<u32, _>(|n: &u32| *n % 2);
    assert!(keyed.is_ok());
}

#[tokio::test(start_paused = true)]
async fn transitions_and_reasons_read_as_sentences() {
    assert_eq!(
        TransitionReason::ConsecutiveFailures.to_string(),
        "consecutive failures reached failure_threshold"
    );
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    let layer = CircuitBreakerLayer::builder()
        .name("inventory")
        .failure_threshold(1)
        .on_transition(move |t| seen.lock().unwrap().push(t.to_string()))
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("down")) });
    assert!(svc.ready().await.unwrap().call(()).await.is_err());
    handle.reset();
    assert_eq!(
        *lines.lock().unwrap(),
        [
            "circuit breaker \"inventory\" closed -> open: consecutive failures reached failure_threshold",
            "circuit breaker \"inventory\" open -> closed: set through a handle",
        ]
    );
}

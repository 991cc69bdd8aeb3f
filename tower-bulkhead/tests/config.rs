//! Configuration: our users' JSON shape, typed errors naming the field, never a panic.
#![cfg(feature = "serde")]

use std::time::Duration;

use tower_bulkhead::{
    BulkheadConfig, BulkheadLayer, ConfigError, KeyedBulkheadConfig, KeyedBulkheadLayer, Overflow,
};

#[test]
fn the_course_shape_reads_as_per_agent_compartments() {
    let config: KeyedBulkheadConfig = serde_json::from_str(
        r#"{"bulkheads": {
            "research_agent": {"max_concurrent": 4, "token_budget": 1000, "max_wait_seconds": 2},
            "writing_agent": {"max_concurrent": 2, "token_budget": 500,
                              "refill_tokens": 10000, "refill_period_seconds": 60}
        }}"#,
    )
    .unwrap();
    let research = &config.bulkheads["research_agent"];
    assert_eq!(research.max_concurrent, 4);
    assert_eq!(research.token_budget, Some(1000));
    assert_eq!(research.max_wait_seconds, 2.0);
    let writing = &config.bulkheads["writing_agent"];
    assert_eq!(writing.refill_tokens, Some(10_000));
    assert_eq!(config.max_keys, 1000);
    assert_eq!(config.overflow, Overflow::Shared);
    let layer = KeyedBulkheadLayer::from_config(&config, |agent: &String| agent.clone()).unwrap();
    assert_eq!(layer.handle().keys(), 0);
}

#[test]
fn a_single_compartment_reads_from_json() {
    let config: BulkheadConfig = serde_json::from_str(
        r#"{"name": "llm", "max_concurrent": 8, "refill_tokens": 100000,
            "refill_period_seconds": 60, "burst_tokens": 150000, "retry_after_seconds": 5}"#,
    )
    .unwrap();
    let layer = BulkheadLayer::from_config(config).unwrap();
    let handle = layer.handle();
    assert_eq!(layer.name(), "llm");
    assert_eq!(handle.max_concurrent(), 8);
    assert_eq!(handle.rate_limits(), Some((100_000, 150_000)));
    assert_eq!(handle.token_budget(), None);
}

#[test]
fn unknown_fields_are_rejected_naming_the_field() {
    let err = serde_json::from_str::<BulkheadConfig>(r#"{"max_concurent": 4}"#).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `max_concurent`"),
        "{err}"
    );
    let err =
        serde_json::from_str::<KeyedBulkheadConfig>(r#"{"bulkheads": {"a": {"token_budjet": 5}}}"#)
            .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `token_budjet`"),
        "{err}"
    );
    let err = serde_json::from_str::<BulkheadConfig>(r#"{"max_concurrent": -1}"#).unwrap_err();
    assert!(err.to_string().contains("invalid value"), "{err}");
    let err = serde_json::from_str::<KeyedBulkheadConfig>(r#"{"overflow": "drop"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown variant `drop`"), "{err}");
}

fn build(json: &str) -> ConfigError {
    let config: BulkheadConfig = serde_json::from_str(json).unwrap();
    BulkheadLayer::from_config(config).unwrap_err()
}

#[test]
fn nonsense_values_are_a_config_error_naming_the_field() {
    let cases = [
        (
            r#"{"max_concurrent": 0}"#,
            "max_concurrent must be between 1 and 16777216, got 0",
        ),
        (
            r#"{"max_waiters": 0}"#,
            "max_waiters must be between 1 and 16777216, got 0",
        ),
        (
            r#"{"token_budget": 0}"#,
            "token_budget must be between 1 and 2147483647, got 0",
        ),
        (
            r#"{"token_budget": 5000000000}"#,
            "token_budget must be between 1 and 2147483647, got 5000000000",
        ),
        (
            r#"{"max_wait_seconds": -2}"#,
            "max_wait_seconds must be a number of seconds between 0 and 604800 (7 days), got -2",
        ),
        (
            r#"{"max_wait_seconds": 1e12}"#,
            "max_wait_seconds must be a number of seconds between 0 and 604800 (7 days), got 1000000000000",
        ),
        (
            r#"{"refill_tokens": 10, "refill_period_seconds": 0}"#,
            "refill_period_seconds must be a positive number of seconds, at most 604800 (7 days), got 0",
        ),
        (
            r#"{"refill_tokens": 10, "refill_period_seconds": 0.0001}"#,
            "refill_period_seconds must be a positive number of seconds, at most 604800 (7 days), got 0.0001",
        ),
        (
            r#"{"refill_period_seconds": 60}"#,
            "refill_period_seconds needs refill_tokens",
        ),
        (
            r#"{"burst_tokens": 60}"#,
            "burst_tokens needs refill_tokens",
        ),
        (
            r#"{"refill_tokens": 0}"#,
            "refill_tokens must be between 1 and 2147483647, got 0",
        ),
    ];
    for (json, message) in cases {
        assert_eq!(build(json).to_string(), message, "{json}");
    }
    let keyed: KeyedBulkheadConfig =
        serde_json::from_str(r#"{"bulkheads": {"a": {"max_concurrent": 0}}}"#).unwrap();
    let err = KeyedBulkheadLayer::from_config(&keyed, |s: &String| s.clone()).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Count {
            field: "max_concurrent",
            ..
        }
    ));
    let keyed: KeyedBulkheadConfig = serde_json::from_str(r#"{"max_keys": 0}"#).unwrap();
    assert!(keyed.validate().is_err());
    let keyed: KeyedBulkheadConfig =
        serde_json::from_str(r#"{"bulkheads": {"not-a-number": {}}}"#).unwrap();
    let err = KeyedBulkheadLayer::from_config(&keyed, |n: &u64| *n).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bulkheads has an invalid key \"not-a-number\""
    );
}

#[test]
fn a_config_round_trips() {
    let config = BulkheadConfig {
        name: "x".into(),
        max_concurrent: 3,
        max_wait_seconds: 1.5,
        token_budget: Some(10),
        refill_tokens: Some(5),
        refill_period_seconds: Some(2.0),
        ..BulkheadConfig::default()
    };
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<BulkheadConfig>(&json).unwrap(),
        config
    );
}

#[test]
fn handles_validate_live_changes() {
    let layer = BulkheadLayer::builder().build().unwrap();
    let handle = layer.handle();
    assert!(handle.set_max_concurrent(0).is_err());
    assert!(matches!(
        handle.set_token_budget(10),
        Err(ConfigError::Missing {
            field: "token_budget",
            ..
        })
    ));
    assert!(handle.set_refill(10, 10).is_err());
    handle.set_max_wait(Duration::from_secs(1)).unwrap();
    assert_eq!(handle.max_concurrent(), 25);
}

#[test]
fn a_value_error_reads_the_same_as_the_familys_field_error() {
    let err = BulkheadLayer::builder()
        .max_concurrent(0)
        .build()
        .unwrap_err();
    let field = err.field_error().expect("about one value");
    assert_eq!((field.field(), field.value()), ("max_concurrent", "0"));
    assert_eq!(field.to_string(), err.to_string());
    let err = BulkheadLayer::builder()
        .max_wait(Duration::from_secs(8 * 86_400))
        .build()
        .unwrap_err();
    assert_eq!(err.field_error().unwrap().to_string(), err.to_string());
}

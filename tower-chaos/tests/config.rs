//! Configuration: fault profiles and suites from JSON; invalid ones are typed errors naming
//! the field.
#![cfg(all(feature = "serde", feature = "http"))]

use tower_chaos::experiment::SuiteConfig;
use tower_chaos::{ChaosConfig, ChaosLayer, ConfigError, FaultKind};

fn layer_err(json: &str) -> ConfigError {
    ChaosLayer::<u64, u64>::from_config(&ChaosConfig::from_json(json).unwrap()).unwrap_err()
}

#[test]
fn a_config_builds_the_layer_it_describes() {
    let config = ChaosConfig::from_json(
        r#"{
        "name": "payments-chaos", "seed": 3, "armed": true, "max_active_faults": 4,
        "faults": [
            {"name": "slow", "rate": 0.25, "latency": {"p50_ms": 200, "p99_ms": 2000}},
            {"rate": 0.1, "error": "connection reset", "schedule": {"first_calls": 10}},
            {"rate": 0.5, "hang": true, "schedule": {"from_seconds": 5, "until_seconds": 10}}
        ],
        "profiles": [{"profile": "ai_response_timeout", "rate": 0.05, "deadline_seconds": 60}],
        "guard": {"window_seconds": 10, "error_rate": 0.3}
    }"#,
    )
    .unwrap();
    let layer = ChaosLayer::<u64, u64>::from_config(&config).unwrap();
    let stats = layer.handle().stats();
    assert!(stats.armed);
    let faults: Vec<(&str, FaultKind, f64)> = stats
        .faults
        .iter()
        .map(|f| (f.name.as_str(), f.kind, f.rate))
        .collect();
    assert_eq!(
        faults,
        [
            ("slow", FaultKind::Latency, 0.25),
            ("error", FaultKind::Error, 0.1),
            ("hang", FaultKind::Hang, 0.5),
            ("ai_response_timeout", FaultKind::Latency, 0.05),
        ]
    );
}

#[test]
fn invalid_configs_are_typed_errors_naming_the_field() {
    assert_eq!(
        layer_err(r#"{"faults": [{"abort": true}]}"#),
        ConfigError::Missing {
            field: "faults[0].rate".to_owned(),
            needs: "every fault needs an explicit rate"
        }
    );
    assert_eq!(
        layer_err(r#"{"faults": [{"rate": 0.1, "abort": true}, {"rate": -0.5, "hang": true}]}"#)
            .to_string(),
        "faults[1].rate must be a rate between 0 and 1, got -0.5"
    );
    assert!(matches!(
        layer_err(r#"{"faults": [{"rate": 0.1}]}"#),
        ConfigError::Invalid { field, .. } if field == "faults[0]"
    ));
    assert!(matches!(
        layer_err(r#"{"faults": [{"rate": 0.1, "latency": {"ms": 5, "p50_ms": 3}}]}"#),
        ConfigError::Invalid { field, .. } if field == "faults[0].latency"
    ));
    assert!(matches!(
        layer_err(r#"{"faults": [{"rate": 0.1, "latency": {"low_ms": 50, "high_ms": 10}}]}"#),
        ConfigError::Invalid { field, .. } if field == "faults.latency.latency.high"
    ));
    assert!(matches!(
        layer_err(r#"{"faults": [{"rate": 0.1, "latency": {"ms": -5}}]}"#),
        ConfigError::Duration { field, .. } if field == "faults[0].latency.ms"
    ));
    assert!(matches!(
        layer_err(r#"{"faults": [{"rate": 0.1, "abort": true}, {"rate": 0.2, "abort": true}]}"#),
        ConfigError::Duplicate { name, .. } if name == "abort"
    ));
    assert!(matches!(
        layer_err(r#"{"faults": [{"rate": 0.1, "abort": true, "schedule": {"every": 0}}]}"#),
        ConfigError::Count { field, .. } if field == "faults.abort.schedule.every"
    ));
    assert!(matches!(
        layer_err(r#"{"max_active_faults": 0}"#),
        ConfigError::Count { field, .. } if field == "max_active_faults"
    ));
    assert!(matches!(
        layer_err(r#"{"guard": {"error_rate": 0}}"#),
        ConfigError::Rate { field, .. } if field == "guard.error_rate"
    ));
    assert!(matches!(
        layer_err(r#"{"faults": [{"rate": 0.1, "http_status": 503}]}"#),
        ConfigError::Invalid { field, .. } if field == "faults[0]"
    ));
    assert!(matches!(
        layer_err(r#"{"profiles": [{"profile": "api_rate_limit", "rate": 0.1, "retry_after_seconds": 5}]}"#),
        ConfigError::Invalid { field, .. } if field == "profile"
    ));
}

#[test]
fn unknown_fields_and_garbage_are_parse_errors_not_panics() {
    let typo = ChaosConfig::from_json(r#"{"faults": [{"rte": 0.1, "abort": true}]}"#).unwrap_err();
    assert!(typo.to_string().contains("unknown field `rte`"), "{typo}");
    let garbage = ChaosConfig::from_json(r#"{"seed": "seven"}"#).unwrap_err();
    assert!(matches!(garbage, ConfigError::Parse(_)));
    assert!(ChaosConfig::from_json("not json").is_err());
    let profile =
        ChaosConfig::from_json(r#"{"profiles": [{"profile": "meteor_strike", "rate": 1}]}"#);
    assert!(profile.unwrap_err().to_string().contains("meteor_strike"));
}

#[test]
fn http_profiles_build_an_http_layer() {
    type Body = http_body_util::Full<bytes::Bytes>;
    let config = ChaosConfig::from_json(
        r#"{"profiles": [
            {"profile": "dependency_unavailable", "rate": 0.01},
            {"profile": "api_rate_limit", "rate": 0.2, "retry_after_seconds": 30},
            {"profile": "malformed_response", "rate": 0.05},
            {"profile": "partial_failure", "rate": 1.0, "upstream": "search.internal"},
            {"profile": "resource_exhaustion", "rate": 0.02, "header": "x-tokens-used", "tokens": 2000000}
        ],
        "faults": [{"rate": 0.1, "grpc_status": 14, "grpc_message": "unavailable"}]}"#,
    )
    .unwrap();
    let layer = config.http_layer::<(), Body>().unwrap();
    let names: Vec<String> = layer
        .handle()
        .stats()
        .faults
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names,
        [
            "grpc_14",
            "dependency_unavailable",
            "api_rate_limit",
            "malformed_response",
            "partial_failure",
            "resource_exhaustion"
        ]
    );
    let bad_header = ChaosConfig::from_json(
        r#"{"profiles": [{"profile": "resource_exhaustion", "rate": 0.1, "header": "bad header", "tokens": 1}]}"#,
    )
    .unwrap();
    assert!(matches!(
        bad_header.http_layer::<(), Body>().unwrap_err(),
        ConfigError::Invalid { field, .. } if field == "resource_exhaustion.header"
    ));
}

#[test]
fn a_suite_file_reads_in_the_courses_shape() {
    let suite = SuiteConfig::from_json(
        r#"{"experiments": [
        {
            "name": "MCP Server Failure",
            "hypothesis": "When the filesystem MCP server becomes unavailable, the agent detects it within 10 s, retries 3 times and fails gracefully.",
            "steady_state": {"calls": 20, "min_success_rate": 1.0, "max_p99_seconds": 10},
            "method": "Return error from mock server",
            "scope": "filesystem MCP calls",
            "fault_profile": {"profile": "dependency_unavailable", "rate": 1.0},
            "duration_seconds": 60,
            "expectations": [
                {"behavior": "detection_time", "max_seconds": 10},
                {"behavior": "retries_attempted", "equals": 3},
                {"behavior": "graceful_failure", "weight": 2}
            ],
            "stop_on_failure": true,
            "rollback": ["Restore MCP config", "Verify connectivity restored"]
        },
        {
            "name": "AI Response Timeout",
            "fault_profile": {"profile": "ai_response_timeout", "rate": 1.0, "deadline_seconds": 60},
            "calls": 50,
            "expectations": [{"behavior": "p99_latency", "max_seconds": 65}]
        }
    ]}"#,
    )
    .unwrap();
    let experiments = suite.experiments().unwrap();
    assert_eq!(experiments.len(), 2);
    assert_eq!(suite.experiments[0].faults::<u64, u64>().unwrap().len(), 1);
    assert_eq!(
        suite.experiments[1].faults::<u64, u64>().unwrap()[0].name(),
        "ai_response_timeout"
    );
}

#[test]
fn invalid_suites_name_the_experiment_and_field() {
    let bad_rate = SuiteConfig::from_json(
        r#"{"experiments": [{"name": "a", "expectations": [{"behavior": "success_rate", "min": 95}]}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        bad_rate.to_string(),
        "experiments.a.expectations[0].min must be a rate between 0 and 1, got 95"
    );
    let both = SuiteConfig::from_json(
        r#"{"experiments": [{"name": "a", "calls": 5, "duration_seconds": 5}]}"#,
    )
    .unwrap_err();
    assert!(matches!(both, ConfigError::Invalid { field, .. } if field == "experiments.a.calls"));
    let twice =
        SuiteConfig::from_json(r#"{"experiments": [{"name": "a"}, {"name": "a"}]}"#).unwrap_err();
    assert!(matches!(twice, ConfigError::Duplicate { .. }));
    let unnamed = SuiteConfig::from_json(r#"{"experiments": [{}]}"#).unwrap_err();
    assert!(matches!(unnamed, ConfigError::Missing { .. }));
    let unknown = SuiteConfig::from_json(
        r#"{"experiments": [{"name": "a", "expectations": [{"behavior": "vibes"}]}]}"#,
    )
    .unwrap_err();
    assert!(unknown.to_string().contains("vibes"));
}

#[test]
fn a_value_error_reads_the_same_as_the_familys_field_error() {
    let err = layer_err(r#"{"faults": [{"rate": 1.5, "abort": true}]}"#);
    let field = err.field_error().expect("about one value");
    assert_eq!((field.field(), field.value()), ("faults[0].rate", "1.5"));
    assert_eq!(field.to_string(), err.to_string());
}

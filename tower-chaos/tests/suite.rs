//! Suite files are checked whole (faults included) and carry what reproduces a run.
#![cfg(all(feature = "serde", feature = "inject"))]

use tower::ServiceBuilder;
use tower_chaos::ConfigError;
use tower_chaos::experiment::{Runner, SuiteConfig};

fn suite_with(experiment: &str) -> Result<SuiteConfig, ConfigError> {
    SuiteConfig::from_json(&format!(
        r#"{{"experiments": [{{"name": "x", {experiment}}}]}}"#
    ))
}

fn field_of(err: &ConfigError) -> &str {
    match err {
        ConfigError::Rate { field, .. }
        | ConfigError::Duration { field, .. }
        | ConfigError::Count { field, .. }
        | ConfigError::Missing { field, .. }
        | ConfigError::Invalid { field, .. }
        | ConfigError::Duplicate { field, .. } => field,
        other => panic!("no field in {other:?}"),
    }
}

#[test]
fn a_suite_rejects_what_cannot_run_naming_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#""faults": [{"error": "boom", "rate": 1.5}]"#,
            "experiments.x.faults[0].rate",
        ),
        (
            r#""faults": [{"error": "boom", "rate": -0.1}]"#,
            "experiments.x.faults[0].rate",
        ),
        (
            r#""fault_profile": {"profile": "dependency_unavailable", "rate": 2}"#,
            "experiments.x.fault_profile.rate",
        ),
        (
            r#""faults": [{"abort": true, "hang": true, "rate": 0.1}]"#,
            "experiments.x.faults[0]",
        ),
        (
            r#""faults": [{"latency": {"low_ms": 500, "high_ms": 100}, "rate": 0.1}]"#,
            "experiments.x.faults[0].latency.low_ms",
        ),
        (
            r#""faults": [{"http_status": 200, "rate": 0.1}]"#,
            "experiments.x.faults[0].http_status",
        ),
        (
            r#""faults": [{"http_status": 302, "rate": 0.1}]"#,
            "experiments.x.faults[0].http_status",
        ),
        (
            r#""faults": [{"error": "boom", "rate": 1, "schedule": {"first_calls": 0}}]"#,
            "experiments.x.faults[0].schedule.first_calls",
        ),
        (
            r#""steady_state": {"calls": 0}"#,
            "experiments.x.steady_state.calls",
        ),
        (r#""calls": 0"#, "experiments.x.calls"),
        (r#""duration_seconds": 0"#, "experiments.x.duration_seconds"),
        (
            r#""recovery_successes": 0"#,
            "experiments.x.recovery_successes",
        ),
    ];
    for (experiment, field) in cases {
        let err = suite_with(experiment).expect_err(experiment);
        assert_eq!(field_of(&err), *field, "{experiment}: {err}");
    }
    assert!(matches!(
        suite_with(r#""steady_state": {"calls": 0}"#).unwrap_err(),
        ConfigError::Count { value: 0, .. }
    ));
    // What is valid stays valid.
    suite_with(
        r#""faults": [{"http_status": 503, "rate": 0.1}, {"latency": {"low_ms": 100, "high_ms": 100}, "rate": 1}], "calls": 5"#,
    )
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_suite_file_alone_reproduces_a_run() {
    let json = r#"{
        "layer": "inventory-chaos",
        "seed": 2026,
        "experiments": [{
            "name": "flaky inventory",
            "steady_state": {"calls": 5, "min_success_rate": 1.0},
            "faults": [{"error": "connection reset", "rate": 0.3}],
            "calls": 40,
            "expectations": [{"behavior": "success_rate", "min": 0.9}]
        }]
    }"#;
    let run = || async {
        let suite = SuiteConfig::from_json(json).unwrap();
        assert_eq!(
            (suite.layer.as_str(), suite.seed),
            ("inventory-chaos", 2026)
        );
        let layer = suite.layer::<u64, u64>("flaky inventory").unwrap();
        let handle = layer.handle();
        assert_eq!(handle.name(), "inventory-chaos");
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|n: u64| async move { Ok::<_, std::io::Error>(n) });
        let experiment = suite.experiments().unwrap().remove(0);
        Runner::new(svc, handle, |n| n)
            .run(&experiment.date("Tue, 01 Dec 2026 09:00:00 GMT"))
            .await
            .to_markdown()
    };
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    assert!(
        a.contains("- **Chaos layer:** `inventory-chaos` (seed 2026); faults injected: `error` × "),
        "{a}"
    );
    let round_trip: SuiteConfig = serde_json::from_str(
        &serde_json::to_string(&SuiteConfig::from_json(json).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(round_trip.seed, 2026);
    assert!(matches!(
        SuiteConfig::from_json(json)
            .unwrap()
            .layer::<u64, u64>("nope"),
        Err(ConfigError::Invalid { .. })
    ));
}

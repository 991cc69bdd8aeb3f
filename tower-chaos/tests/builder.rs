//! The builder checks every fault and setting: typed errors naming the field, never a panic.
#![cfg(all(feature = "inject", feature = "http"))]

use std::time::Duration;

use tower_chaos::{ChaosLayer, ConfigError, Fault, Latency, Schedule};

fn err(fault: Fault<u64, u64>) -> ConfigError {
    ChaosLayer::<u64, u64>::builder()
        .fault(fault)
        .build()
        .unwrap_err()
}

#[test]
fn every_bad_value_is_a_typed_error_naming_its_field() {
    assert!(
        matches!(err(Fault::abort()), ConfigError::Missing { field, .. } if field == "faults.abort.rate")
    );
    assert!(
        matches!(err(Fault::abort().rate(1.01)), ConfigError::Rate { field, .. } if field == "faults.abort.rate")
    );
    assert!(matches!(
        err(Fault::abort().rate(f64::NAN)),
        ConfigError::Rate { .. }
    ));
    assert_eq!(
        err(Fault::hang().rate(0.1).retry_after(Duration::from_secs(1))).to_string(),
        "faults.hang.retry_after is invalid: retry_after applies to http_status and grpc_status faults"
    );
    assert!(matches!(
        err(Fault::latency(Latency::Uniform { low: Duration::from_secs(2), high: Duration::from_secs(1) }).rate(0.1)),
        ConfigError::Invalid { field, .. } if field == "faults.latency.latency.high"
    ));
    assert!(matches!(
        err(Fault::latency(Latency::LogNormal { p50: Duration::ZERO, p99: Duration::from_secs(1) }).rate(0.1)),
        ConfigError::Duration { field, .. } if field == "faults.latency.latency.p50"
    ));
    assert!(matches!(
        err(Fault::latency(Latency::Fixed(Duration::from_secs(8 * 86_400))).rate(0.1)),
        ConfigError::Duration { .. }
    ));
    assert!(matches!(
        err(Fault::abort().rate(0.1).schedule(Schedule::AfterArming { from: Duration::from_secs(5), until: Duration::from_secs(5) })),
        ConfigError::Invalid { field, .. } if field == "faults.abort.schedule"
    ));
    let now = tokio::time::Instant::now();
    assert!(matches!(
        err(Fault::abort()
            .rate(0.1)
            .schedule(Schedule::Between(now, now))),
        ConfigError::Invalid { .. }
    ));
    let grpc = ChaosLayer::<(), http::Response<()>>::builder()
        .fault(Fault::grpc_status(17, "no such code").rate(0.1))
        .build()
        .unwrap_err();
    assert!(matches!(grpc, ConfigError::Invalid { field, .. } if field == "faults.grpc_17.code"));
    let twice = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::abort().rate(0.1))
        .fault(Fault::error(|| "x".into()).named("abort").rate(0.1))
        .build()
        .unwrap_err();
    assert!(matches!(twice, ConfigError::Duplicate { name, .. } if name == "abort"));
    let mut many = ChaosLayer::<u64, u64>::builder();
    for i in 0..65 {
        many = many.fault(Fault::abort().named(format!("f{i}")).rate(0.1));
    }
    assert!(
        matches!(many.build().unwrap_err(), ConfigError::Invalid { field, .. } if field == "faults")
    );
    let guard = ChaosLayer::<u64, u64>::builder()
        .guard(Duration::from_millis(1), 0.5, 10)
        .build()
        .unwrap_err();
    assert!(
        matches!(guard, ConfigError::Duration { field, .. } if field == "guard.window_seconds")
    );
}

#[test]
fn a_rate_of_zero_is_allowed_and_never_fires() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .fault(Fault::abort().rate(0.0))
        .armed(true)
        .build()
        .unwrap();
    assert_eq!(layer.handle().stats().faults[0].rate, 0.0);
}

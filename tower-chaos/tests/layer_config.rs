//! A layer's rollback and guard settings read from JSON.
#![cfg(all(feature = "serde", feature = "inject"))]

use tower_chaos::{ChaosConfig, ChaosLayer, ConfigError};

#[tokio::test(start_paused = true)]
async fn a_file_sets_auto_disarm_after_and_the_latency_guard() {
    use tower::{Layer, ServiceExt};
    let config = ChaosConfig::from_json(
        r#"{"armed": true, "auto_disarm_after_seconds": 30,
            "faults": [{"rate": 1.0, "error": "down"}]}"#,
    )
    .unwrap();
    let layer = ChaosLayer::<u64, u64>::from_config(&config).unwrap();
    let handle = layer.handle();
    let svc = layer.layer(tower::service_fn(|n: u64| async move {
        Ok::<_, std::convert::Infallible>(n)
    }));
    assert!(svc.clone().oneshot(1).await.is_err());
    tokio::time::advance(std::time::Duration::from_secs(30)).await;
    assert_eq!(svc.oneshot(1).await.unwrap(), 1);
    assert!(!handle.is_armed());

    let bad = ChaosConfig::from_json(r#"{"auto_disarm_after_seconds": -1}"#).unwrap();
    assert_eq!(
        ChaosLayer::<u64, u64>::from_config(&bad).unwrap_err(),
        ConfigError::Duration {
            field: "auto_disarm_after_seconds".to_owned(),
            seconds: -1.0
        }
    );
    let bad = ChaosConfig::from_json(r#"{"guard": {"latency_p99_ms": 0}}"#).unwrap();
    assert!(
        ChaosLayer::<u64, u64>::from_config(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("guard.latency_p99_ms")
    );
}

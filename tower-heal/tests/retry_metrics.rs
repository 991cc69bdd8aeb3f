//! Metrics and tracing events of the retry layer.

mod support;

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceBuilder;
use tower_heal::{Backoff, RetryBudget, RetryLayer};

use support::{Flaky, Script, call};

#[test]
fn attempts_retries_backoff_and_refusals_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let layer = RetryLayer::builder()
                .name("inventory")
                .max_retries(2)
                .backoff(Backoff::fixed(Duration::from_millis(500)))
                .budget(
                    RetryBudget::new()
                        .ratio(0.0)
                        .min_per_second(0)
                        .ttl(Duration::from_secs(1)),
                )
                .build()
                .unwrap();
            let mut refused = ServiceBuilder::new()
                .layer(layer)
                .service(Flaky(Script::new([Err("down")])));
            let _ = call(&mut refused, ()).await;

            let layer = RetryLayer::builder()
                .name("inventory")
                .max_retries(2)
                .backoff(Backoff::fixed(Duration::from_millis(500)))
                .build()
                .unwrap();
            let mut svc = ServiceBuilder::new()
                .layer(layer)
                .service(Flaky(Script::new([Err("down"), Ok(1)])));
            call(&mut svc, ()).await.unwrap();
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, label: (&str, &str)| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == label.0 && l.value() == label.1)
            })
            .map(|(_, _, _, value)| value)
    };
    assert_eq!(
        find("heal_attempts_total", ("outcome", "failure")),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        find("heal_attempts_total", ("outcome", "success")),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find("heal_retries_total", ("class", "network_error")),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find("heal_retries_refused_total", ("reason", "budget")),
        Some(&DebugValue::Counter(1))
    );
    match find("heal_backoff_seconds", ("retry", "inventory")) {
        Some(DebugValue::Histogram(values)) => assert_eq!(values.len(), 1),
        other => panic!("{other:?}"),
    }
}

//! Metrics and tracing events of the retry layer.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceBuilder;
use tower_heal::{Backoff, Jitter, RetryBudget, RetryLayer};

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

/// Collects formatted tracing output.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_retry_emits_a_tracing_event_saying_what_failed_and_how_long_it_waits() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let layer = RetryLayer::builder()
                .max_retries(2)
                .initial_delay(Duration::from_secs(2))
                .jitter(Jitter::None)
                .build()
                .unwrap();
            let mut svc = ServiceBuilder::new()
                .layer(layer)
                .service(Flaky(Script::new([Err("down")])));
            let _ = call(&mut svc, ()).await;
        });
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("attempt 1/3 failed: network_error; waiting 2000 ms"),
        "{text}"
    );
    assert!(text.contains("attempt 2/3 failed: network_error; waiting 4000 ms"));
    assert!(text.contains("attempt 3 failed: network_error; not retried: max_retries reached"));
}

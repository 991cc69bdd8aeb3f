//! Metrics: names, labels (the layer's name and the reason, never a key), values.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use support::{Gate, settle};
use tower::ServiceExt;
use tower_bulkhead::BulkheadLayer;
use tower_layer::Layer;

/// `name{label=value,...}` → values, for every metric in one snapshot.
fn snapshot(recorder: &DebuggingRecorder) -> BTreeMap<String, Vec<f64>> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let values = match value {
                DebugValue::Counter(n) => vec![n as f64],
                DebugValue::Gauge(g) => vec![g.into_inner()],
                DebugValue::Histogram(h) => h.into_iter().map(|v| v.into_inner()).collect(),
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), values)
        })
        .collect()
}

fn run(recorder: &DebuggingRecorder, steps: impl AsyncFnOnce()) {
    metrics::with_local_recorder(recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(steps());
    });
}

#[test]
fn gauges_counters_and_the_wait_histogram_carry_the_layer_name_and_reason() {
    let recorder = DebuggingRecorder::new();
    run(&recorder, async || {
        let gate = Gate::new();
        let layer = BulkheadLayer::builder()
            .name("llm")
            .max_concurrent(1)
            .token_budget(100)
            .max_wait(Duration::from_secs(1))
            .cost(|cost: &u64| *cost)
            .build()
            .unwrap();
        let handle = layer.handle();
        let svc = layer.layer(gate.service());
        let _held = tokio::spawn(svc.clone().oneshot(40));
        settle().await;
        // Waits for the in-flight budget, then times out.
        assert!(svc.clone().oneshot(100).await.is_err());
        // Can never fit.
        assert!(svc.clone().oneshot(500).await.is_err());
        handle.set_max_wait(Duration::ZERO).unwrap();
        assert!(svc.clone().oneshot(10).await.is_err());
        let values = snapshot(&recorder);
        let get = |k: &str| {
            values
                .get(k)
                .cloned()
                .unwrap_or_else(|| panic!("{k}: {values:?}"))
        };
        assert_eq!(get("bulkhead_in_flight{bulkhead=llm}"), [1.0]);
        assert_eq!(get("bulkhead_tokens_in_use{bulkhead=llm}"), [40.0]);
        assert_eq!(
            get("bulkhead_rejected_total{bulkhead=llm,reason=wait_timed_out}"),
            [1.0]
        );
        assert_eq!(
            get("bulkhead_rejected_total{bulkhead=llm,reason=cost_exceeds_capacity}"),
            [1.0]
        );
        assert_eq!(
            get("bulkhead_rejected_total{bulkhead=llm,reason=bulkhead_full}"),
            [1.0]
        );
        assert_eq!(
            get("bulkhead_rejected_total{bulkhead=llm,reason=budget_exhausted}"),
            [0.0]
        );
        assert_eq!(get("bulkhead_wait_seconds{bulkhead=llm}"), [1.0]);
        gate.finish(1);
    });
}

#[test]
fn per_key_metrics_are_summed_over_keys_and_never_labelled_by_key() {
    let recorder = DebuggingRecorder::new();
    run(&recorder, async || {
        let gate = Gate::new();
        let layer = BulkheadLayer::builder()
            .name("tenants")
            .build_keyed(|n: &u64| *n)
            .unwrap();
        let svc = layer.layer(gate.service());
        for n in 0..3 {
            tokio::spawn(svc.clone().oneshot(n));
        }
        settle().await;
        let values = snapshot(&recorder);
        assert_eq!(values["bulkhead_in_flight{bulkhead=tenants}"], [3.0]);
        assert_eq!(values["bulkhead_keys{bulkhead=tenants}"], [3.0]);
        assert!(values.keys().all(|k| !k.contains("key=")), "{values:?}");
        gate.finish(3);
    });
}

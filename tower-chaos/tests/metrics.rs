//! Metrics: `chaos_injected_total{fault}`, `chaos_armed`, overflow and guard trips.
#![cfg(feature = "inject")]

mod support;

use std::collections::BTreeMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use support::{Echo, call};
use tower::Layer;
use tower_chaos::{ChaosLayer, Fault, Schedule};

/// `name{label=value,...}` → value, for every metric in one snapshot.
fn snapshot(recorder: &DebuggingRecorder) -> BTreeMap<String, f64> {
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
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => f64::NAN,
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

#[test]
fn injected_faults_are_counted_by_fault_and_armed_is_a_gauge() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let layer = ChaosLayer::<u64, u64>::builder()
                .name("db")
                .fault(
                    Fault::error(|| "x".into())
                        .rate(1.0)
                        .schedule(Schedule::FirstCalls(3)),
                )
                .fault(Fault::abort().rate(1.0).schedule(Schedule::EveryKth(10)))
                .build()
                .unwrap();
            let handle = layer.handle();
            let mut svc = layer.layer(Echo::default());
            let before = snapshot(&recorder);
            assert_eq!(before["chaos_armed{chaos=db}"], 0.0);
            handle.arm();
            for n in 0..20 {
                let _ = call(&mut svc, n).await;
            }
            let values = snapshot(&recorder);
            assert_eq!(values["chaos_armed{chaos=db}"], 1.0);
            assert_eq!(values["chaos_injected_total{chaos=db,fault=error}"], 3.0);
            assert_eq!(values["chaos_injected_total{chaos=db,fault=abort}"], 2.0);
            handle.disarm();
            assert_eq!(snapshot(&recorder)["chaos_armed{chaos=db}"], 0.0);
        });
    });
}

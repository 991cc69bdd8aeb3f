//! Tracing events on rejection, on a wait that times out, and on eviction.
//!
//! Alone in its own test binary: `tracing` caches each callsite's interest process-wide.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Gate, settle};
use tower::ServiceExt;
use tower_bulkhead::BulkheadLayer;
use tower_layer::Layer;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);
struct Fields(Vec<String>);
impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{}={value}", field.name()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push(format!("{}={value}", field.name()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert(0, format!("{value:?}"));
        } else {
            self.0.push(format!("{}={value:?}", field.name()));
        }
    }
}
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(format!(
            "{} {}",
            event.metadata().level(),
            fields.0.join(" ")
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn rejections_timeouts_and_evictions_are_tracing_events() {
    let collect = Collect::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(collect.clone()));
    let gate = Gate::new();
    let layer = BulkheadLayer::builder()
        .name("agents")
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .max_keys(1)
        .build_keyed(|n: &u64| n / 10)
        .unwrap();
    let svc = layer.layer(gate.service());
    let _held = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    assert!(svc.clone().oneshot(2).await.is_err()); // waits 1 s, times out
    gate.finish(1);
    settle().await;
    gate.finish(1);
    svc.clone().oneshot(30).await.unwrap(); // key 3 evicts key 0
    let lines = collect.0.lock().unwrap().clone();
    assert_eq!(
        lines,
        vec![
            "INFO bulkhead wait timed out bulkhead=agents key=0 reason=wait_timed_out",
            "DEBUG bulkhead evicted keys bulkhead=agents evicted=1 live=0 cause=full",
        ]
    );
    // An immediate rejection.
    let rejecting = BulkheadLayer::builder()
        .name("full")
        .max_concurrent(1)
        .build()
        .unwrap();
    let svc = rejecting.layer(gate.service());
    let _held = tokio::spawn(svc.clone().oneshot(1));
    settle().await;
    assert!(svc.clone().oneshot(2).await.is_err());
    let lines = collect.0.lock().unwrap().clone();
    assert_eq!(
        lines.last().unwrap(),
        "DEBUG bulkhead rejected a call bulkhead=full reason=bulkhead_full"
    );
    gate.finish(1);
}

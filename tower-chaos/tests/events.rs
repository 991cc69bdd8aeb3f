//! Every injected fault is a `tracing` event marked as chaos.
//!
//! Alone in its own test binary: `tracing` caches each callsite's interest process-wide.
#![cfg(feature = "inject")]

mod support;

use std::sync::{Arc, Mutex};

use support::{Echo, call};
use tower::Layer;
use tower_chaos::{ChaosLayer, Fault, Schedule};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);
struct Fields(Vec<String>);
impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{}={value}", field.name()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push(format!("{}={value}", field.name()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push(format!("{}={value}", field.name()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push(format!("{value:?}"));
        }
    }
}
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(format!(
            "{} {} {}",
            event.metadata().target(),
            event.metadata().level(),
            fields.0.join(" ")
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn every_injected_fault_is_a_tracing_event_marked_as_chaos() {
    let collect = Collect::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(collect.clone()));
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("traced")
        .fault(
            Fault::error(|| "x".into())
                .rate(1.0)
                .schedule(Schedule::EveryKth(2)),
        )
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo::default());
    for n in 0..4 {
        let _ = call(&mut svc, n).await;
    }
    let lines = collect.0.lock().unwrap().clone();
    assert_eq!(
        lines,
        vec![
            "tower_chaos INFO chaos: armed chaos=true layer=traced",
            "tower_chaos INFO chaos: injected a fault chaos=true dry_run=false layer=traced fault=error kind=error seq=1",
            "tower_chaos INFO chaos: injected a fault chaos=true dry_run=false layer=traced fault=error kind=error seq=3",
        ]
    );
}

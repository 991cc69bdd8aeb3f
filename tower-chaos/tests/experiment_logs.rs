//! A run collects the chaos events for its report and still forwards every event to the
//! subscriber in place.
//!
//! Alone in its own test binary: `tracing` caches each callsite's interest process-wide.
#![cfg(feature = "inject")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::ServiceBuilder;
use tower_chaos::experiment::{Expectation, Experiment, Load, Runner};
use tower_chaos::{ChaosLayer, Fault, Latency};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Clone, Default)]
struct Targets(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Targets {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        self.0
            .lock()
            .unwrap()
            .push(event.metadata().target().to_owned());
    }
}

#[tokio::test(start_paused = true)]
async fn the_run_keeps_chaos_events_and_forwards_every_event() {
    let seen = Targets::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(seen.clone()));
    let layer = ChaosLayer::<u64, u64>::builder()
        .name("logged")
        .fault(Fault::latency(Latency::Fixed(Duration::from_millis(5))).rate(1.0))
        .no_guard()
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|n: u64| async move {
            tracing::info!(target: "app", n, "dependency called");
            Ok::<_, std::io::Error>(n)
        });
    let experiment = Experiment::new("logged")
        .load(Load::Calls(4))
        .expect(Expectation::graceful_failure());
    let report = Runner::new(svc, handle, |n| n).run(&experiment).await;

    let logs = report.logs();
    assert_eq!(logs.by_message["chaos: injected a fault"], 4);
    assert_eq!(logs.total, 6, "armed, 4 injected, disarmed: {logs:?}");
    assert!(logs.lines.iter().all(|l| l.message.starts_with("chaos: ")));
    assert!(logs.lines[1].fields.contains("fault=latency"), "{logs:?}");
    let seen = seen.0.lock().unwrap();
    assert_eq!(seen.iter().filter(|t| *t == "tower_chaos").count(), 6);
    // 20 steady-state calls, 4 injected, 5 recovery.
    assert_eq!(seen.iter().filter(|t| *t == "app").count(), 29);
    let md = report.to_markdown();
    assert!(
        md.contains("### Logs Captured\n```text\n6 chaos events"),
        "{md}"
    );
}

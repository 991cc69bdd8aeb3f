//! Every transition is a `tracing` event.
//!
//! Alone in its own test binary: `tracing` caches each callsite's interest process-wide, and a
//! test on another thread reaching the same callsite while this one installs its subscriber
//! could leave the callsite disabled for it.

mod support;

use std::time::Duration;

use support::{fail, succeed};
use tokio::time::advance;
use tower_breaker::CircuitBreakerLayer;
use tower_test::mock;

#[tokio::test(start_paused = true)]
async fn every_transition_is_a_tracing_event() {
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<String>>>);
    struct Fields(Vec<String>);
    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
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
                "{} {}",
                event.metadata().level(),
                fields.0.join(" ")
            ));
        }
    }

    let collect = Collect::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(collect.clone()));
    let layer = CircuitBreakerLayer::builder()
        .name("traced")
        .failure_threshold(1)
        .build()
        .unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    fail(&mut svc, &mut handle).await;
    advance(Duration::from_secs(60)).await;
    succeed(&mut svc, &mut handle).await;

    let lines = collect.0.lock().unwrap().clone();
    assert_eq!(
        lines,
        vec![
            "WARN circuit breaker state changed breaker=traced from=closed to=open reason=consecutive_failures",
            "INFO circuit breaker state changed breaker=traced from=open to=half_open reason=reset_timeout_elapsed",
            "INFO circuit breaker state changed breaker=traced from=half_open to=closed reason=probes_succeeded",
        ]
    );
}

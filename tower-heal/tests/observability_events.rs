//! Every fallback, recovery, escalation, replay and resume is a `tracing` event.
//!
//! Alone in its own test binary, with one test: `tracing` caches each callsite's interest
//! process-wide.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};
use tower_heal::{
    BoxError, DegradationLevel, FallbackLayer, IdempotencyLayer, Marked, RecoveryLayer,
};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", event.metadata().level(), message.0));
    }
}

#[tokio::test(start_paused = true)]
async fn every_healing_action_is_a_tracing_event() {
    let collect = Collect::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(collect.clone()));

    let fallback = FallbackLayer::new(
        "search",
        DegradationLevel::Slight,
        service_fn(|_: u32| async { Ok::<_, BoxError>(Marked::new(0u32)) }),
    );
    let mut svc = fallback.layer(service_fn(|_: u32| async {
        Err::<Marked<u32>, BoxError>("down".into())
    }));
    svc.ready().await.unwrap().call(1).await.unwrap();

    let recovery = RecoveryLayer::builder()
        .max_attempts(1)
        .holdoff(Duration::from_secs(1), Duration::from_secs(1))
        .hook(|| async { Ok::<_, BoxError>(()) })
        .unwrap();
    let mut svc = recovery.layer(service_fn(|_: u32| async {
        Err::<u32, BoxError>("down".into())
    }));
    for _ in 0..2 {
        for _ in 0..5 {
            let _ = svc.ready().await.unwrap().call(1).await;
        }
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_secs(2)).await;
    }

    let idem = IdempotencyLayer::from_fn(
        |_: &u32| Some(("k".to_owned(), 0)),
        |res: &u32| Some(res.to_le_bytes().to_vec()),
        |b: &[u8]| Some(u32::from_le_bytes(b.try_into().ok()?)),
    )
    .build();
    let mut svc = idem.layer(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    for _ in 0..2 {
        svc.ready().await.unwrap().call(1).await.unwrap();
    }

    #[cfg(feature = "checkpoint")]
    {
        let store = Arc::new(tower_heal::store::MemoryStore::default());
        for _ in 0..2 {
            let mut wf = tower_heal::checkpoint::Workflow::open(store.clone(), "wf");
            wf.step("one", || async { Ok::<_, BoxError>(1u8) })
                .await
                .unwrap();
        }
    }

    let events = collect.0.lock().unwrap().clone();
    let has = |needle: &str| events.iter().any(|e| e.contains(needle));
    assert!(has("INFO fallback answered"), "{events:#?}");
    assert!(has("WARN health degraded; recovery started"), "{events:#?}");
    assert!(has("INFO recovery complete"), "{events:#?}");
    assert!(has("ERROR recovery escalated"), "{events:#?}");
    assert!(
        has("INFO idempotent replay of the stored response"),
        "{events:#?}"
    );
    #[cfg(feature = "checkpoint")]
    assert!(
        has("INFO workflow resumed from its checkpoint"),
        "{events:#?}"
    );
}

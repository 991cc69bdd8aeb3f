//! Metrics of fallback, recovery, idempotency and checkpoints: names and labels.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_heal::{
    BoxError, DegradationLevel, FallbackLayer, IdempotencyLayer, Marked, RecoveryLayer,
};

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

fn run(recorder: &DebuggingRecorder, test: impl AsyncFnOnce()) {
    metrics::with_local_recorder(recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(test());
    });
}

#[test]
fn fallbacks_count_by_level_and_the_gauge_follows_the_latest_answer() {
    let recorder = DebuggingRecorder::new();
    run(&recorder, async || {
        let up = Arc::new(AtomicBool::new(false));
        let u = up.clone();
        let primary = service_fn(move |_: u32| {
            let up = u.load(Ordering::SeqCst);
            async move {
                if up {
                    Ok(Marked::new("live"))
                } else {
                    Err(BoxError::from("down"))
                }
            }
        });
        let down = service_fn(|_: u32| async { Err::<Marked<&str>, BoxError>("down".into()) });
        let chain = FallbackLayer::builder("search")
            .chain(DegradationLevel::Slight, down)
            .then(
                DegradationLevel::Minimal,
                service_fn(|_: u32| async { Ok::<_, BoxError>(Marked::new("static")) }),
            )
            .build();
        let mut svc = ServiceBuilder::new().layer(chain).service(primary);
        svc.ready().await.unwrap().call(1).await.unwrap();
        let values = snapshot(&recorder);
        assert_eq!(
            values["heal_fallbacks_total{component=search,level=3}"],
            1.0
        );
        assert_eq!(values["heal_degradation_level{component=search}"], 3.0);
        up.store(true, Ordering::SeqCst);
        svc.ready().await.unwrap().call(1).await.unwrap();
        assert_eq!(
            snapshot(&recorder)["heal_degradation_level{component=search}"],
            0.0
        );

        // Nothing answers: level 4, counted once (by the last stage).
        let all_down = FallbackLayer::builder("logs")
            .chain(
                DegradationLevel::Slight,
                service_fn(|_: u32| async { Err::<Marked<&str>, BoxError>("down".into()) }),
            )
            .then(
                DegradationLevel::Minimal,
                service_fn(|_: u32| async { Err::<Marked<&str>, BoxError>("down".into()) }),
            )
            .build();
        let mut svc = ServiceBuilder::new()
            .layer(all_down)
            .service(service_fn(|_: u32| async {
                Err::<Marked<&str>, BoxError>("down".into())
            }));
        assert!(svc.ready().await.unwrap().call(1).await.is_err());
        let values = snapshot(&recorder);
        assert_eq!(values["heal_fallbacks_total{component=logs,level=4}"], 1.0);
        assert_eq!(values["heal_degradation_level{component=logs}"], 4.0);
    });
}

#[test]
fn recoveries_and_escalations_are_counted() {
    let recorder = DebuggingRecorder::new();
    run(&recorder, async || {
        let layer = RecoveryLayer::builder()
            .name("db")
            .max_attempts(1)
            .holdoff(Duration::from_secs(1), Duration::from_secs(1))
            .hook(|| async { Ok::<_, BoxError>(()) })
            .unwrap();
        let mut svc = layer.layer(service_fn(|_: u32| async {
            Err::<u32, BoxError>("down".into())
        }));
        for _ in 0..3 {
            for _ in 0..5 {
                let _ = svc.ready().await.unwrap().call(1).await;
            }
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            tokio::time::advance(Duration::from_secs(2)).await;
        }
        let values = snapshot(&recorder);
        assert!(values["heal_recoveries_total{component=db,result=success}"] >= 2.0);
        assert_eq!(values["heal_escalations_total{component=db}"], 1.0);
    });
}

#[test]
fn idempotent_replays_are_counted() {
    let recorder = DebuggingRecorder::new();
    run(&recorder, async || {
        let layer = IdempotencyLayer::from_fn(
            |req: &u32| Some((req.to_string(), 0)),
            |res: &u32| Some(res.to_le_bytes().to_vec()),
            |b: &[u8]| Some(u32::from_le_bytes(b.try_into().ok()?)),
        )
        .build();
        let mut svc = layer.layer(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
        for _ in 0..3 {
            svc.ready().await.unwrap().call(9).await.unwrap();
        }
        assert_eq!(snapshot(&recorder)["heal_idempotent_replays_total{}"], 2.0);
    });
}

#[cfg(feature = "checkpoint")]
#[test]
fn checkpoint_resumes_are_counted() {
    use tower_heal::checkpoint::Workflow;
    use tower_heal::store::MemoryStore;
    let recorder = DebuggingRecorder::new();
    run(&recorder, async || {
        let store = Arc::new(MemoryStore::default());
        for _ in 0..3 {
            let mut wf = Workflow::open(store.clone(), "wf");
            wf.step("one", || async { Ok::<_, BoxError>(1u8) })
                .await
                .unwrap();
            wf.step("two", || async { Ok::<_, BoxError>(2u8) })
                .await
                .unwrap();
        }
        // Two reruns, each counted once however many steps it skipped.
        assert_eq!(snapshot(&recorder)["heal_checkpoint_resumes_total{}"], 2.0);
    });
}

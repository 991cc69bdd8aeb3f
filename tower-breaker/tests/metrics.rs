//! Metrics: names, labels, and the one-hot state gauge.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use support::{fail, succeed};
use tokio::time::advance;
use tower_breaker::CircuitBreakerLayer;
use tower_test::mock;

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

fn run(recorder: &DebuggingRecorder, steps: impl AsyncFnOnce(&CircuitBreakerLayer)) {
    metrics::with_local_recorder(recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            // Handles bind to the recorder current when the layer is built.
            let layer = CircuitBreakerLayer::builder()
                .name("db")
                .failure_threshold(2)
                .build()
                .unwrap();
            steps(&layer).await;
        });
    });
}

fn states(values: &BTreeMap<String, f64>) -> Vec<(&str, f64)> {
    values
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("breaker_state{breaker=db,state=")
                .map(|s| (s.trim_end_matches('}'), *v))
        })
        .collect()
}

#[test]
fn exactly_one_state_reads_one_after_a_full_cycle() {
    let recorder = DebuggingRecorder::new();
    run(&recorder, async |layer| {
        let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer.clone());
        succeed(&mut svc, &mut handle).await;
        fail(&mut svc, &mut handle).await;
        fail(&mut svc, &mut handle).await; // closed -> open
        let _ = support::call(&mut svc, &mut handle, true).await; // rejected
        advance(Duration::from_secs(60)).await;
        succeed(&mut svc, &mut handle).await; // open -> half_open -> closed
    });
    let values = snapshot(&recorder);
    let states = states(&values);
    assert_eq!(states.len(), 6, "every state has a series: {states:?}");
    let ones: Vec<_> = states
        .iter()
        .filter(|(_, v)| *v == 1.0)
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(ones, vec!["closed"], "{states:?}");
    assert!(states.iter().all(|(_, v)| *v == 0.0 || *v == 1.0));

    for (series, expected) in [
        (
            "breaker_transitions_total{breaker=db,from=closed,to=open}",
            1.0,
        ),
        (
            "breaker_transitions_total{breaker=db,from=open,to=half_open}",
            1.0,
        ),
        (
            "breaker_transitions_total{breaker=db,from=half_open,to=closed}",
            1.0,
        ),
        ("breaker_calls_total{breaker=db,outcome=success}", 2.0),
        ("breaker_calls_total{breaker=db,outcome=failure}", 2.0),
        ("breaker_calls_total{breaker=db,outcome=rejected}", 1.0),
        ("breaker_calls_total{breaker=db,outcome=ignored}", 0.0),
    ] {
        assert_eq!(
            values.get(series),
            Some(&expected),
            "{series} in {values:#?}"
        );
    }
}

#[test]
fn open_reads_one_while_open() {
    let recorder = DebuggingRecorder::new();
    run(&recorder, async |layer| {
        let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer.clone());
        fail(&mut svc, &mut handle).await;
        fail(&mut svc, &mut handle).await;
    });
    let values = snapshot(&recorder);
    let ones: Vec<_> = states(&values)
        .into_iter()
        .filter(|(_, v)| *v == 1.0)
        .collect();
    assert_eq!(ones, vec![("open", 1.0)]);
}

/// The `breaker` labels of the state series in `values`.
fn state_breakers(values: &BTreeMap<String, f64>) -> std::collections::BTreeSet<String> {
    values
        .keys()
        .filter_map(|k| k.strip_prefix("breaker_state{breaker="))
        .map(|rest| rest.split(",state=").next().unwrap().to_owned())
        .collect()
}

#[test]
fn two_unnamed_breakers_never_share_a_state_series() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let a = CircuitBreakerLayer::builder()
                .failure_threshold(1)
                .build()
                .unwrap();
            let b = CircuitBreakerLayer::builder().build().unwrap();
            assert_ne!(a.name(), b.name());
            let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(a.clone());
            fail(&mut svc, &mut handle).await;
            assert_eq!(a.handle().state(), tower_breaker::State::Open);
            assert_eq!(b.handle().state(), tower_breaker::State::Closed);
        });
    });
    let values = snapshot(&recorder);
    let breakers = state_breakers(&values);
    assert_eq!(breakers.len(), 2, "{breakers:?}");
    for breaker in &breakers {
        let ones = values
            .iter()
            .filter(|(k, v)| {
                k.starts_with(&format!("breaker_state{{breaker={breaker},")) && **v == 1.0
            })
            .count();
        assert_eq!(ones, 1, "{breaker}: one-hot in {values:#?}");
    }
}

#[test]
fn a_profile_named_default_keeps_its_name() {
    let mut profiles = tower_breaker::CircuitBreakerProfiles::default();
    let explicit = tower_breaker::CircuitBreakerConfig {
        name: "default".to_owned(),
        ..Default::default()
    };
    profiles.profiles.insert("payments".to_owned(), explicit);
    profiles.profiles.insert(
        "search".to_owned(),
        tower_breaker::CircuitBreakerConfig::default(),
    );
    assert_eq!(profiles.layer("payments").unwrap().name(), "default");
    assert_eq!(
        profiles.layer("search").unwrap().name(),
        "search",
        "unnamed: the key"
    );
}

/// A state read reports a due transition without making it: no listener call, no log line, no
/// metric until the next call.
#[test]
fn a_state_read_changes_nothing() {
    let recorder = DebuggingRecorder::new();
    let events = support::Events::default();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let layer = CircuitBreakerLayer::builder()
                .name("db")
                .failure_threshold(1)
                .on_transition(events.listener())
                .build()
                .unwrap();
            let breaker = layer.handle();
            let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer.clone());
            fail(&mut svc, &mut handle).await;
            events.take();
            advance(Duration::from_secs(60)).await;
            for _ in 0..3 {
                assert_eq!(breaker.state(), tower_breaker::State::HalfOpen);
            }
            assert_eq!(events.take(), vec![], "a read made no transition");
            let values = snapshot(&recorder);
            assert_eq!(
                states(&values)
                    .into_iter()
                    .filter(|(_, v)| *v == 1.0)
                    .collect::<Vec<_>>(),
                vec![("open", 1.0)],
                "the gauge shows the state the breaker is in until the next call"
            );
            assert_eq!(
                values.get("breaker_transitions_total{breaker=db,from=open,to=half_open}"),
                None
            );
            // The next call makes the transition, and the gauge follows.
            succeed(&mut svc, &mut handle).await;
            assert_eq!(
                events.take(),
                vec![
                    (
                        tower_breaker::State::Open,
                        tower_breaker::State::HalfOpen,
                        tower_breaker::TransitionReason::ResetTimeoutElapsed
                    ),
                    (
                        tower_breaker::State::HalfOpen,
                        tower_breaker::State::Closed,
                        tower_breaker::TransitionReason::ProbesSucceeded
                    ),
                ]
            );
        });
    });
    let values = snapshot(&recorder);
    assert_eq!(
        values.get("breaker_transitions_total{breaker=db,from=open,to=half_open}"),
        Some(&1.0)
    );
}

/// Forcing the state the breaker is already in counts no transition.
#[test]
fn no_transition_is_counted_when_the_state_does_not_change() {
    let recorder = DebuggingRecorder::new();
    run(&recorder, async |layer| {
        let handle = layer.handle();
        handle.reset();
        handle.force_open();
        handle.force_open();
    });
    let values = snapshot(&recorder);
    let transitions: Vec<_> = values
        .iter()
        .filter(|(k, v)| k.starts_with("breaker_transitions_total") && **v > 0.0)
        .collect();
    assert_eq!(
        transitions,
        vec![(
            &"breaker_transitions_total{breaker=db,from=closed,to=forced_open}".to_owned(),
            &1.0
        )]
    );
}

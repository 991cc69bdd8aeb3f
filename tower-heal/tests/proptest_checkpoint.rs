//! Property test of checkpointed workflows: whatever the crash points (the workflow dropped
//! between steps, a step failing, a step's future dropped half-way), rerunning until the
//! workflow completes gives the same final result as one uninterrupted run; every step that
//! returned its result ran to completion exactly once; each step sees the result of the step
//! before it; and a completed workflow leaves no checkpoint behind.
#![cfg(feature = "checkpoint")]

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};

use proptest::prelude::*;
use tower_heal::checkpoint::{Workflow, WorkflowError};
use tower_heal::store::MemoryStore;

/// How a run ends early.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// The process dies before step `i` starts (after step `i - 1` returned).
    Before(usize),
    /// Step `i` fails (nothing is recorded) and the run gives up.
    Fails(usize),
    /// Step `i`'s future is dropped at its first await (a timeout, a crash mid-step).
    Dropped(usize),
}

impl Crash {
    const fn at(self) -> usize {
        match self {
            Self::Before(i) | Self::Fails(i) | Self::Dropped(i) => i,
        }
    }
}

/// The value step `i` computes from the value before it.
fn next(previous: u64, i: usize) -> u64 {
    previous
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(i as u64 * 2 + 1)
}

fn reference(seed: u64, steps: usize) -> Vec<u64> {
    let mut values = Vec::with_capacity(steps);
    let mut value = seed;
    for i in 0..steps {
        value = next(value, i);
        values.push(value);
    }
    values
}

/// One run of the workflow: returns the values the steps returned, up to the crash.
async fn run(
    store: &Arc<MemoryStore>,
    seed: u64,
    steps: usize,
    crash: Option<Crash>,
    completions: &Arc<Vec<AtomicU32>>,
) -> Option<Vec<u64>> {
    let mut wf = Workflow::open(store.clone(), "wf");
    let mut seen = Vec::new();
    let mut previous = seed;
    for i in 0..steps {
        let name = format!("step-{i}");
        let body = {
            let completions = completions.clone();
            let fail = matches!(crash, Some(Crash::Fails(j)) if j == i);
            move || async move {
                tokio::task::yield_now().await;
                if fail {
                    return Err(std::io::Error::other("step failed"));
                }
                completions[i].fetch_add(1, Ordering::SeqCst);
                Ok(next(previous, i))
            }
        };
        match crash {
            Some(Crash::Before(j)) if j == i => return None,
            Some(Crash::Dropped(j)) if j == i => {
                let mut step = pin!(wf.step(&name, body));
                let mut cx = Context::from_waker(Waker::noop());
                // A step that completed before is answered at once, from the store.
                if let Poll::Ready(result) = step.as_mut().poll(&mut cx) {
                    let value = result.unwrap();
                    seen.push(value);
                    previous = value;
                    continue;
                }
                return None;
            }
            _ => {}
        }
        match wf.step(&name, body).await {
            Ok(value) => {
                seen.push(value);
                previous = value;
            }
            Err(WorkflowError::Step { .. }) => return None,
            Err(other) => panic!("checkpoint error: {other}"),
        }
    }
    wf.complete().unwrap();
    Some(seen)
}

fn crash(steps: usize) -> impl Strategy<Value = Crash> {
    (0..steps, 0u8..3).prop_map(|(i, kind)| match kind {
        0 => Crash::Before(i),
        1 => Crash::Fails(i),
        _ => Crash::Dropped(i),
    })
}

fn case() -> impl Strategy<Value = (u64, usize, Vec<Crash>)> {
    (any::<u64>(), 1usize..8).prop_flat_map(|(seed, steps)| {
        (
            Just(seed),
            Just(steps),
            proptest::collection::vec(crash(steps), 0..6),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_crash_point_resumes_to_the_uninterrupted_result((seed, steps, crashes) in case()) {
        let expected = reference(seed, steps);
        let store = Arc::new(MemoryStore::default());
        let completions: Arc<Vec<AtomicU32>> = Arc::new((0..steps).map(|_| AtomicU32::new(0)).collect());
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut finished = None;
        for crash in &crashes {
            // A crash planned at a step that completed in an earlier run does not happen:
            // the step is answered from its checkpoint, and the run may complete.
            finished = runtime.block_on(run(&store, seed, steps, Some(*crash), &completions));
            if finished.is_some() {
                break;
            }
            for i in 0..crash.at() {
                prop_assert_eq!(completions[i].load(Ordering::SeqCst), 1, "step {} ran once", i);
            }
        }
        if finished.is_none() {
            finished = runtime.block_on(run(&store, seed, steps, None, &completions));
        }
        prop_assert_eq!(finished.as_ref(), Some(&expected));
        for (i, done) in completions.iter().enumerate() {
            prop_assert_eq!(done.load(Ordering::SeqCst), 1, "step {} completed once", i);
        }
        prop_assert!(store.is_empty(), "a completed workflow leaves no checkpoint");
    }
}

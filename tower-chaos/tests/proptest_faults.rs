//! Property tests of the injection decisions: the observed rate of a fault over many calls is
//! its configured rate (within 5σ of a binomial), a seed fixes which calls are faulted, and
//! schedules and predicates fault exactly the calls a reference model of `Schedule` picks.
#![cfg(feature = "inject")]

mod support;

use std::time::Duration;

use proptest::prelude::*;
use support::{Echo, call};
use tokio::time::Instant;
use tower::Layer;
use tower_chaos::{ChaosLayer, Fault, Schedule};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// The calls in `0..n` that failed through one error fault.
async fn faulted(
    rate: f64,
    seed: u64,
    schedule: Schedule,
    modulo: u64,
    n: u64,
    step: Duration,
) -> Option<(Vec<u64>, u64)> {
    let layer = ChaosLayer::<u64, u64>::builder()
        .seed(seed)
        .fault(
            Fault::error(|| "injected".into())
                .rate(rate)
                .schedule(schedule)
                .when(move |r: &u64| r.is_multiple_of(modulo)),
        )
        .no_guard()
        .armed(true)
        .build()
        .ok()?;
    let handle = layer.handle();
    let mut svc = layer.layer(Echo::default());
    let mut failed = Vec::new();
    for i in 0..n {
        if call(&mut svc, i).await.is_err() {
            failed.push(i);
        }
        tokio::time::advance(step).await;
    }
    let injected = handle.stats().fault("error").unwrap().injected;
    Some((failed, injected))
}

/// A schedule, described relative to the start of the run so a reference can judge it.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Always,
    FirstCalls(u64),
    EveryKth(u64),
    /// `Between(start + from, start + until)`.
    Between(u64, u64),
    AfterArming(u64, u64),
}

impl Plan {
    fn schedule(self, start: Instant, step: Duration) -> Schedule {
        let at = |k: u64| step * u32::try_from(k).unwrap();
        match self {
            Self::Always => Schedule::Always,
            Self::FirstCalls(n) => Schedule::FirstCalls(n),
            Self::EveryKth(k) => Schedule::EveryKth(k),
            Self::Between(a, b) => Schedule::Between(start + at(a), start + at(b)),
            Self::AfterArming(a, b) => Schedule::AfterArming {
                from: at(a),
                until: at(b),
            },
        }
    }

    /// Whether the layer accepts it: a window must not end before it starts, `k` is at
    /// least 1.
    fn valid(self) -> bool {
        match self {
            Self::EveryKth(k) => k > 0,
            Self::Between(a, b) | Self::AfterArming(a, b) => a < b,
            _ => true,
        }
    }

    /// Whether call `i` (made `i` steps after the start) is in the schedule.
    fn fires(self, i: u64) -> bool {
        match self {
            Self::Always => true,
            Self::FirstCalls(n) => i < n,
            Self::EveryKth(k) => (i + 1).is_multiple_of(k),
            Self::Between(a, b) | Self::AfterArming(a, b) => a <= i && i < b,
        }
    }
}

fn plan() -> impl Strategy<Value = Plan> {
    prop_oneof![
        Just(Plan::Always),
        (0u64..50).prop_map(Plan::FirstCalls),
        (0u64..10).prop_map(Plan::EveryKth),
        (0u64..50, 0u64..50).prop_map(|(a, b)| Plan::Between(a, b)),
        (0u64..50, 0u64..50).prop_map(|(a, b)| Plan::AfterArming(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Over 4 000 calls the number faulted is within 5σ of `n·p`; the layer's count agrees.
    #[test]
    fn the_observed_rate_is_the_configured_rate(rate in 0.0f64..=1.0, seed in any::<u64>()) {
        const N: u64 = 4_000;
        let (failed, injected) =
            runtime().block_on(faulted(rate, seed, Schedule::Always, 1, N, Duration::ZERO)).unwrap();
        let observed = failed.len() as f64;
        let sigma = (N as f64 * rate * (1.0 - rate)).sqrt();
        prop_assert!(
            (observed - N as f64 * rate).abs() <= 5.0 * sigma + 1e-9,
            "{} faulted at rate {}", observed, rate
        );
        prop_assert_eq!(injected, failed.len() as u64);
        if rate == 0.0 {
            prop_assert!(failed.is_empty());
        }
    }

    /// The same seed faults the same calls.
    #[test]
    fn a_seed_fixes_the_faulted_calls(rate in 0.0f64..=1.0, seed in any::<u64>()) {
        let run = || runtime().block_on(faulted(rate, seed, Schedule::Always, 1, 300, Duration::ZERO)).unwrap().0;
        prop_assert_eq!(run(), run());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// An always-firing fault on a schedule and a predicate faults exactly the calls the
    /// reference picks (and an empty window or `EveryKth(0)` is refused when the layer is
    /// built): in the schedule (counted over every call) and matching the predicate.
    #[test]
    fn schedules_fault_exactly_the_calls_the_reference_picks(
        plan in plan(),
        modulo in 1u64..4,
        step_ms in 1u64..2_000,
        seed in any::<u64>(),
    ) {
        let step = Duration::from_millis(step_ms);
        let run = runtime().block_on(async {
            let schedule = plan.schedule(Instant::now(), step);
            faulted(1.0, seed, schedule, modulo, 60, step).await
        });
        prop_assert_eq!(run.is_some(), plan.valid(), "accepted?");
        let Some((failed, injected)) = run else { return Ok(()) };
        let expected: Vec<u64> = (0..60).filter(|&i| plan.fires(i) && i.is_multiple_of(modulo)).collect();
        prop_assert_eq!(&failed, &expected);
        prop_assert_eq!(injected, expected.len() as u64);
    }
}

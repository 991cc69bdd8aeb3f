//! Property tests: the breaker against a reference model over random sequences of outcomes,
//! clock moves, state reads, handle operations and cancellations.
//!
//! The model is the rules of the consecutive and count-window trip rules written the plain way,
//! one call at a time: consecutive failures open the circuit; a failure rate over the last N
//! calls, once at least `minimum_calls` are in the window, opens it; the reset timeout lets a
//! probe through; `success_threshold` successful probes close it with a clean window; a failed
//! probe re-opens it. A call dropped after it was admitted is ignored (records nothing) and
//! frees its probe slot. `force_open` rejects everything until `reset`; `disable` lets
//! everything through and records nothing; `reset` closes with clean counts.
//!
//! Every step compares what the breaker did (called the inner service or not), its state,
//! its consecutive-failure count and its window totals with the model's.

mod support;

use std::collections::VecDeque;
use std::task::Poll;
use std::time::Duration;

use proptest::prelude::*;
use tower_breaker::{CircuitBreakerLayer, State};
use tower_test::mock;

#[derive(Debug, Clone, Copy)]
enum Model {
    Closed { run: u32 },
    Open { left: Duration },
    HalfOpen { successes: u32 },
    Forced,
    Disabled,
}

#[derive(Debug, Clone, Copy)]
struct Rules {
    threshold: Option<u32>,
    reset: Duration,
    success_threshold: u32,
    /// `(rate, window size, minimum calls)`.
    rate: Option<(f64, usize, usize)>,
}

struct Reference {
    rules: Rules,
    state: Model,
    window: VecDeque<bool>,
}

impl Reference {
    fn new(rules: Rules) -> Self {
        Self {
            rules,
            state: Model::Closed { run: 0 },
            window: VecDeque::new(),
        }
    }

    /// Whether a call is let through now (moving an expired open circuit to half-open).
    fn admits(&mut self) -> bool {
        if let Model::Open { left } = self.state
            && left.is_zero()
        {
            self.state = Model::HalfOpen { successes: 0 };
        }
        !matches!(self.state, Model::Open { .. } | Model::Forced)
    }

    fn record(&mut self, ok: bool) {
        match &mut self.state {
            Model::Closed { run } => {
                *run = if ok { 0 } else { *run + 1 };
                let consecutive = self.rules.threshold.is_some_and(|t| *run >= t);
                let mut rate_trip = false;
                if let Some((rate, size, minimum)) = self.rules.rate {
                    self.window.push_back(!ok);
                    if self.window.len() > size {
                        self.window.pop_front();
                    }
                    let failures = self.window.iter().filter(|f| **f).count();
                    rate_trip = self.window.len() >= minimum.min(size)
                        && failures as f64 / self.window.len() as f64 >= rate;
                }
                if consecutive || rate_trip {
                    self.open();
                }
            }
            Model::HalfOpen { successes } => {
                if ok {
                    *successes += 1;
                    if *successes >= self.rules.success_threshold {
                        self.close();
                    }
                } else {
                    self.open();
                }
            }
            Model::Disabled => {}
            Model::Open { .. } | Model::Forced => unreachable!("no call is admitted"),
        }
    }

    fn open(&mut self) {
        self.state = Model::Open {
            left: self.rules.reset,
        };
    }

    fn close(&mut self) {
        self.state = Model::Closed { run: 0 };
        self.window.clear();
    }

    fn advance(&mut self, by: Duration) {
        if let Model::Open { left } = &mut self.state {
            *left = left.saturating_sub(by);
        }
    }

    fn state(&self) -> State {
        match self.state {
            Model::Closed { .. } => State::Closed,
            Model::Open { left } if left.is_zero() => State::HalfOpen,
            Model::Open { .. } => State::Open,
            Model::HalfOpen { .. } => State::HalfOpen,
            Model::Forced => State::ForcedOpen,
            Model::Disabled => State::Disabled,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A call answered by the inner service with success (`true`) or failure.
    Call(bool),
    /// A call dropped after the inner service received it, before it answered.
    Cancel,
    /// A call dropped before its first poll.
    DropUnpolled,
    Advance(u64),
    ForceOpen,
    Disable,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => any::<bool>().prop_map(Op::Call),
        2 => Just(Op::Cancel),
        1 => Just(Op::DropUnpolled),
        3 => (1u64..=40).prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

fn rules() -> impl Strategy<Value = Rules> {
    let consecutive = (1u32..=5, 1u64..=60, 1u32..=3).prop_map(|(t, reset, s)| Rules {
        threshold: Some(t),
        reset: Duration::from_secs(reset),
        success_threshold: s,
        rate: None,
    });
    let window = (
        prop_oneof![Just(None), (2u32..=6).prop_map(Some)],
        1u64..=60,
        1u32..=3,
        prop_oneof![Just(0.25), Just(0.5), Just(0.75), Just(1.0)],
        2usize..=12,
        1usize..=12,
    )
        .prop_map(|(threshold, reset, s, rate, size, minimum)| Rules {
            threshold,
            reset: Duration::from_secs(reset),
            success_threshold: s,
            rate: Some((rate, size, minimum)),
        });
    prop_oneof![consecutive, window]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

async fn check(rules: Rules, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut builder = CircuitBreakerLayer::builder()
        .failure_threshold(rules.threshold)
        .reset_timeout(rules.reset)
        .success_threshold(rules.success_threshold);
    if let Some((rate, size, minimum)) = rules.rate {
        builder = builder
            .failure_rate_threshold(rate)
            .count_window(size as u32)
            .minimum_calls(minimum as u32);
    }
    let layer = builder.build().unwrap();
    let breaker = layer.handle();
    let (mut svc, mut handle) = mock::spawn_layer::<u32, u32, _>(layer);
    let mut model = Reference::new(rules);

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Call(ok) => {
                let expected = model.admits();
                let (_, reached) = support::call(&mut svc, &mut handle, ok).await;
                prop_assert_eq!(reached, expected, "step {}: admitted?", step);
                if reached {
                    model.record(ok);
                }
            }
            Op::Cancel => {
                let expected = model.admits();
                support::ready(&mut svc);
                let mut fut = tokio_test::task::spawn(svc.call(1));
                let reached = match fut.poll() {
                    Poll::Ready(_) => false,
                    Poll::Pending => {
                        let (_, send) = handle.next_request().await.expect("request reached");
                        drop(fut);
                        drop(send);
                        true
                    }
                };
                prop_assert_eq!(reached, expected, "step {}: cancelled call admitted?", step);
            }
            Op::DropUnpolled => {
                support::ready(&mut svc);
                drop(svc.call(1));
                // An unpolled call may or may not have reached the mock; whatever reached it
                // is answered by nobody. The model: a call admitted then dropped records
                // nothing, so only the admission (and half-open move) is modelled.
                let _ = model.admits();
                while let Poll::Ready(Some(_)) = handle.poll_request() {}
            }
            Op::Advance(secs) => {
                let by = Duration::from_secs(secs);
                tokio::time::advance(by).await;
                model.advance(by);
            }
            Op::ForceOpen => {
                breaker.force_open();
                model.state = Model::Forced;
            }
            Op::Disable => {
                breaker.disable();
                model.state = Model::Disabled;
            }
            Op::Reset => {
                breaker.reset();
                model.close();
            }
        }
        prop_assert_eq!(breaker.state(), model.state(), "step {}: state", step);
        if let Model::Closed { run } = model.state {
            if rules.threshold.is_some() {
                prop_assert_eq!(breaker.consecutive_failures(), run, "step {}: run", step);
            }
            if rules.rate.is_some() {
                let (calls, failures, _) = breaker.window_totals().expect("a window");
                let expected_failures = model.window.iter().filter(|f| **f).count() as u32;
                prop_assert_eq!(
                    (calls, failures),
                    (model.window.len() as u32, expected_failures),
                    "step {}: window totals",
                    step
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_the_reference_model(
        rules in rules(),
        ops in proptest::collection::vec(op(), 1..160),
    ) {
        runtime().block_on(check(rules, ops))?;
    }
}

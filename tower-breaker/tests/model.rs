//! The breaker against a reference model, over seeded random sequences of calls and clock moves.
//!
//! The model is the rules of DESIGN.md §3 written the plain way (one call at a time): consecutive
//! failures open the circuit, the reset timeout lets probes through, `success_threshold`
//! successful probes close it, a failed probe re-opens it, and a rate rule over the last N calls
//! with a minimum. Every step compares what the breaker did (called the inner service or not)
//! and its state with the model's.

mod support;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::advance;
use tower_breaker::{CircuitBreakerLayer, State};
use tower_test::mock;

#[derive(Debug)]
enum Model {
    Closed { run: u32 },
    Open { left: Duration },
    HalfOpen { successes: u32 },
}

struct Rules {
    threshold: u32,
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
    /// Whether a call is let through now.
    fn admits(&mut self) -> bool {
        if let Model::Open { left } = self.state
            && left.is_zero()
        {
            self.state = Model::HalfOpen { successes: 0 };
        }
        !matches!(self.state, Model::Open { .. })
    }

    fn record(&mut self, ok: bool) {
        match &mut self.state {
            Model::Closed { run } => {
                *run = if ok { 0 } else { *run + 1 };
                let consecutive = *run >= self.rules.threshold;
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
                        self.state = Model::Closed { run: 0 };
                        self.window.clear();
                    }
                } else {
                    self.open();
                }
            }
            Model::Open { .. } => unreachable!("no call is admitted while open"),
        }
    }

    fn open(&mut self) {
        self.state = Model::Open {
            left: self.rules.reset,
        };
    }

    fn advance(&mut self, by: Duration) {
        if let Model::Open { left } = &mut self.state {
            *left = left.saturating_sub(by);
        }
    }

    fn state(&mut self) -> State {
        match self.state {
            Model::Closed { .. } => State::Closed,
            Model::Open { left } if left.is_zero() => State::HalfOpen,
            Model::Open { .. } => State::Open,
            Model::HalfOpen { .. } => State::HalfOpen,
        }
    }
}

async fn check(seed: u64, rules: Rules, steps: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
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
    let mut model = Reference {
        rules,
        state: Model::Closed { run: 0 },
        window: VecDeque::new(),
    };
    let failure_odds = rng.u32(1..=9);

    for step in 0..steps {
        if rng.u32(0..10) < 2 {
            let by = Duration::from_secs(rng.u64(1..=40));
            advance(by).await;
            model.advance(by);
        } else {
            let ok = rng.u32(0..10) >= failure_odds;
            let expected = model.admits();
            let (_, reached) = support::call(&mut svc, &mut handle, ok).await;
            assert_eq!(reached, expected, "seed {seed}, step {step}: admitted?");
            if reached {
                model.record(ok);
            }
        }
        assert_eq!(
            breaker.state(),
            model.state(),
            "seed {seed}, step {step}: state"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn consecutive_rule_matches_the_model() {
    for seed in 0..40 {
        let rules = Rules {
            threshold: 3,
            reset: Duration::from_secs(60),
            success_threshold: 2,
            rate: None,
        };
        check(seed, rules, 300).await;
    }
}

#[tokio::test(start_paused = true)]
async fn rate_rule_matches_the_model() {
    for seed in 100..140 {
        let rules = Rules {
            threshold: 1_000,
            reset: Duration::from_secs(30),
            success_threshold: 1,
            rate: Some((0.5, 10, 6)),
        };
        check(seed, rules, 300).await;
    }
}

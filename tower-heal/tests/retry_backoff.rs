//! Back-off and jitter: formulas, bounds and means, seeds.

use std::time::Duration;

use tower_heal::{Backoff, Jitter};

const SAMPLES: usize = 10_000;

/// Samples `delay(n)` with a seeded generator; returns (min, max, mean) in seconds.
fn sample(backoff: Backoff, n: u32, previous: Duration) -> (f64, f64, f64) {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut min = f64::MAX;
    let mut max = 0f64;
    let mut sum = 0f64;
    for _ in 0..SAMPLES {
        let d = backoff.delay(n, previous, &mut rng).as_secs_f64();
        min = min.min(d);
        max = max.max(d);
        sum += d;
    }
    (min, max, sum / SAMPLES as f64)
}

fn within_5_percent(mean: f64, expected: f64) {
    assert!(
        (mean - expected).abs() <= 0.05 * expected,
        "mean {mean} not within 5 % of {expected}"
    );
}

fn exponential(jitter: Jitter) -> Backoff {
    Backoff::exponential(Duration::from_secs(1))
        .max_delay(Duration::from_secs(30))
        .jitter(jitter)
}

#[test]
fn exponential_without_jitter_is_1_2_4_seconds() {
    let b = exponential(Jitter::None);
    let mut rng = fastrand::Rng::with_seed(1);
    let delays: Vec<_> = (0..3)
        .map(|n| b.delay(n, Duration::ZERO, &mut rng))
        .collect();
    assert_eq!(
        delays,
        [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
}

#[test]
fn full_jitter_stays_in_0_to_d_with_mean_d_over_2() {
    // d = 4 s (n = 2)
    let (min, max, mean) = sample(exponential(Jitter::Full), 2, Duration::ZERO);
    assert!(min >= 0.0 && max <= 4.0, "{min}..{max}");
    within_5_percent(mean, 2.0);
}

#[test]
fn equal_jitter_stays_in_d_over_2_to_d_with_mean_3d_over_4() {
    let (min, max, mean) = sample(exponential(Jitter::Equal), 2, Duration::ZERO);
    assert!(min >= 2.0 && max <= 4.0, "{min}..{max}");
    within_5_percent(mean, 3.0);
}

#[test]
fn decorrelated_jitter_stays_in_base_to_3_prev_with_its_mean() {
    // U(base = 1 s, 3 × previous = 6 s), under the 30 s cap: mean 3.5 s.
    let (min, max, mean) = sample(exponential(Jitter::Decorrelated), 2, Duration::from_secs(2));
    assert!(min >= 1.0 && max <= 6.0, "{min}..{max}");
    within_5_percent(mean, 3.5);
}

#[test]
fn decorrelated_jitter_is_capped_by_max_delay() {
    let (min, max, _) = sample(
        exponential(Jitter::Decorrelated),
        9,
        Duration::from_secs(25),
    );
    assert!(min >= 1.0 && max <= 30.0, "{min}..{max}");
}

#[test]
fn proportional_jitter_stays_within_f_of_d_with_mean_d() {
    let (min, max, mean) = sample(exponential(Jitter::Proportional(0.2)), 2, Duration::ZERO);
    assert!(min >= 3.2 && max <= 4.8, "{min}..{max}");
    within_5_percent(mean, 4.0);
}

#[test]
fn no_jitter_is_exactly_the_formula() {
    let (min, max, mean) = sample(exponential(Jitter::None), 2, Duration::ZERO);
    assert_eq!((min, max, mean), (4.0, 4.0, 4.0));
}

#[test]
fn the_same_seed_gives_the_same_delays_another_seed_others() {
    let b = exponential(Jitter::Full);
    let draw = |seed| {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..5)
            .map(|n| b.delay(n, Duration::ZERO, &mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(42), draw(42));
    assert_ne!(draw(42), draw(43));
}

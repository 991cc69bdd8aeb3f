//! loom models of the retry budget (run by `.ci/run` with `--cfg loom`).
//!
//! Every interleaving (within the preemption bound) of callers depositing and withdrawing at
//! once is explored. Invariants checked:
//! - `Ratio`: never more withdrawals granted than the deposits pay for (no reserve here); no
//!   deposit or withdrawal is lost (the slots sum to what was deposited less what was
//!   granted); a deposit's look at the clock and a withdrawal's rotation, racing, leave the
//!   same sum.
//! - `Tokens` (the gRPC throttle): tokens stay within `0..=max` whatever the order of
//!   successes and failures, and a failure always takes its token.
//!
//! The ttl is an hour, so no slot ends while a model runs and every look at the (real) clock
//! takes the same branch: loom needs each run of a model to be deterministic.

use loom::sync::Arc;
use loom::thread;

use super::*;

fn sum(ratio: &Ratio) -> i64 {
    ratio.slots.iter().map(|s| s.load(Ordering::SeqCst)).sum()
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

#[test]
fn loom_ratio_deposits_and_withdrawals_never_overdraw_or_get_lost() {
    model(|| {
        // Two deposits of half a retry pay for exactly one.
        let config = RetryBudget::new()
            .ratio(0.5)
            .min_per_second(0)
            .ttl(Duration::from_secs(3600));
        let ratio = Arc::new(Ratio::new(config));
        let depositor = {
            let ratio = ratio.clone();
            thread::spawn(move || {
                ratio.deposit();
                ratio.deposit();
            })
        };
        let withdrawer = {
            let ratio = ratio.clone();
            thread::spawn(move || ratio.withdraw())
        };
        let mine = ratio.withdraw();
        depositor.join().unwrap();
        let theirs = withdrawer.join().unwrap();
        let granted = i64::from(mine) + i64::from(theirs);
        assert!(granted <= 1, "two retries granted for one paid");
        assert_eq!(sum(&ratio), 2 * ratio.deposit - granted * UNIT);
        // Once both deposits are in, a withdrawal sees them.
        if granted == 0 {
            assert!(ratio.withdraw(), "the deposits were lost");
        }
    });
}

#[test]
fn loom_ratio_concurrent_deposits_all_count() {
    model(|| {
        let config = RetryBudget::new()
            .ratio(1.0)
            .min_per_second(0)
            .ttl(Duration::from_secs(3600));
        let ratio = Arc::new(Ratio::new(config));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let ratio = ratio.clone();
                thread::spawn(move || ratio.deposit())
            })
            .collect();
        ratio.deposit();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sum(&ratio), 3 * UNIT);
    });
}

#[test]
fn loom_throttle_tokens_stay_in_range() {
    model(|| {
        let tokens = Arc::new(Tokens::new(Throttle::new(2, 0.5)));
        let max = tokens.max;
        let failing = {
            let tokens = tokens.clone();
            thread::spawn(move || {
                tokens.failure();
                tokens.failure();
            })
        };
        tokens.success();
        let allowed = tokens.allows();
        failing.join().unwrap();
        let left = tokens.tokens.load(Ordering::SeqCst);
        assert!(left <= max);
        // Two failures took 2 000 of 2 000; the success gave back at most 500.
        assert!(left <= 500, "{left}");
        let _ = allowed;
    });
}

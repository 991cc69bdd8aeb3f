//! A decaying latency histogram, for hedging after a percentile of recent latencies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Four buckets per power of two of microseconds: about 19 % wide, 1 µs to ~2 h.
const BUCKETS: usize = 128;
/// Below this many samples the percentile is not trusted: the `max` delay is used.
const MIN_SAMPLES: u64 = 20;
/// The cached percentile is recomputed every this many samples.
const RECOMPUTE_EVERY: u64 = 64;
/// Every this many samples all counts are halved, so old latencies fade.
const DECAY_EVERY: u64 = 4096;

#[derive(Debug)]
pub(crate) struct Latency {
    percentile: f64,
    min: Duration,
    max: Duration,
    buckets: [AtomicU64; BUCKETS],
    samples: AtomicU64,
    /// The current hedge delay in nanoseconds.
    cached: AtomicU64,
}

fn bucket(d: Duration) -> usize {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    let log = 63 - us.leading_zeros() as usize;
    let sub = if log >= 2 {
        ((us >> (log - 2)) & 3) as usize
    } else {
        0
    };
    (log * 4 + sub).min(BUCKETS - 1)
}

/// The upper edge of a bucket.
fn upper(index: usize) -> Duration {
    let log = index / 4;
    let sub = (index % 4) as u64;
    let us = if log >= 2 {
        (4 + sub + 1) << (log - 2)
    } else {
        (1u64 << log) + 1
    };
    Duration::from_micros(us)
}

impl Latency {
    pub(crate) fn new(percentile: f64, min: Duration, max: Duration) -> Self {
        Self {
            percentile,
            min,
            max,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            samples: AtomicU64::new(0),
            cached: AtomicU64::new(u64::try_from(max.as_nanos()).unwrap_or(u64::MAX)),
        }
    }

    pub(crate) fn delay(&self) -> Duration {
        Duration::from_nanos(self.cached.load(Ordering::Relaxed))
    }

    pub(crate) fn record(&self, latency: Duration) {
        self.buckets[bucket(latency)].fetch_add(1, Ordering::Relaxed);
        let n = self.samples.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(DECAY_EVERY) {
            for b in &self.buckets {
                let _ = b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c / 2));
            }
        }
        if n >= MIN_SAMPLES && (n.is_multiple_of(RECOMPUTE_EVERY) || n == MIN_SAMPLES) {
            self.recompute();
        }
    }

    fn recompute(&self) {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return;
        }
        let rank = (self.percentile / 100.0 * total as f64).ceil() as u64;
        let mut seen = 0;
        let mut at = self.max;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank.max(1) {
                at = upper(index);
                break;
            }
        }
        let delay = at.clamp(self.min, self.max);
        self.cached.store(
            u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values() {
        for us in [1u64, 2, 3, 7, 100, 1_000, 123_456, 10_000_000] {
            let d = Duration::from_micros(us);
            assert!(upper(bucket(d)) >= d, "{us}");
        }
    }

    #[test]
    fn the_p90_of_a_spread_tracks_it() {
        let latency = Latency::new(90.0, Duration::from_millis(1), Duration::from_secs(1));
        assert_eq!(
            latency.delay(),
            Duration::from_secs(1),
            "max until enough samples"
        );
        for i in 0..1000u64 {
            latency.record(Duration::from_millis(10 + i % 100));
        }
        let d = latency.delay();
        assert!(
            d >= Duration::from_millis(95) && d <= Duration::from_millis(125),
            "{d:?}"
        );
    }
}

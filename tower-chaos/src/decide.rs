//! Decisions as pure functions of (seed, fault, request number): no shared random stream.
//!
//! A shared generator hands out numbers in the order tasks happen to ask for them, so the set
//! of faulted requests would change with the interleaving. Hashing the request's own number
//! (or key) with the fault's identity and the seed gives each (fault, request) pair one fixed
//! draw, whatever the worker count.

use std::time::Duration;

/// splitmix64's output function: a bijective mix with good avalanche.
#[inline]
pub(crate) const fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The draw of `fault` (its salt) for request `n` under `seed`; `stream` separates the
/// several draws one decision may need (fire or not, then the latency sample).
#[inline]
#[cfg(test)]
pub(crate) const fn draw(seed: u64, salt: u64, n: u64, stream: u64) -> u64 {
    let key = fault_key(seed, salt);
    if stream == 0 {
        fire_draw(n, key)
    } else {
        with_fault(request_hash(n), key, stream)
    }
}

/// A fault's key: its salt mixed with the seed, computed once per layer.
pub(crate) const fn fault_key(seed: u64, salt: u64) -> u64 {
    splitmix64(seed ^ splitmix64(salt))
}

/// Whether fault `key` fires for request `n`: the one draw every armed call makes per fault.
/// One splitmix64 (a bijective mix with full avalanche) of the request number and the
/// fault's key, which already carries the seed: a pure function of (seed, fault, n).
#[inline]
/// The draw is 63 bits, so that rate 1 (threshold 2^63) fires with a plain `<`.
pub(crate) const fn fire_draw(n: u64, key: u64) -> u64 {
    splitmix64(n ^ key) >> 1
}

/// A request number's hash, for the further draws of a fault that fired (latency samples).
#[inline]
pub(crate) const fn request_hash(n: u64) -> u64 {
    splitmix64(n)
}

/// A further draw of one fault for one request (`stream` 1 and 2: the latency sample),
/// independent of the fire draw. Together: a pure function of (seed, fault, n).
#[inline]
pub(crate) const fn with_fault(request: u64, fault: u64, stream: u64) -> u64 {
    splitmix64(request ^ fault ^ stream.wrapping_mul(0xA24B_AED4_963E_E407))
}

/// A fault's salt: FNV-1a of its name, so adding a fault leaves the others' decisions as they were.
pub(crate) const fn salt(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut hash = 0xCBF2_9CE4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        i += 1;
    }
    hash
}

/// 2^63: the number of fire draws, and the threshold of rate 1.
const SCALE: f64 = 9_223_372_036_854_775_808.0;

/// The threshold a fire draw (63 bits) is compared with: a draw below it fires. Rate 1.0 is
/// 2^63 (every draw), rate 0 is 0 (none).
pub(crate) fn threshold(rate: f64) -> u64 {
    if rate >= 1.0 {
        1 << 63
    } else if rate <= 0.0 {
        0
    } else {
        // 2^63 × rate, exact to 2^-53.
        (rate * SCALE) as u64
    }
}

/// The rate a threshold stands for.
pub(crate) fn rate_of(threshold: u64) -> f64 {
    if threshold >= 1 << 63 {
        1.0
    } else {
        threshold as f64 / SCALE
    }
}

/// Whether a fire draw fires under `threshold`: one compare.
#[inline]
pub(crate) const fn fires(draw: u64, threshold: u64) -> bool {
    draw < threshold
}

/// A uniform draw in [0, 1), from the top 53 bits.
#[inline]
pub(crate) fn unit(draw: u64) -> f64 {
    (draw >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874_040_841;

/// A latency distribution, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Dist {
    Fixed(Duration),
    Uniform {
        low: Duration,
        high: Duration,
    },
    /// ln(delay) ~ N(mu, sigma²), capped at `cap`.
    LogNormal {
        mu: f64,
        sigma: f64,
        cap: Duration,
    },
}

impl Dist {
    pub(crate) fn log_normal(p50: Duration, p99: Duration) -> Self {
        let mu = p50.as_secs_f64().ln();
        let sigma = (p99.as_secs_f64().ln() - mu) / Z99;
        // The tail beyond 10 × p99 is cut: a sample of hours would only stall a test.
        let cap = p99.saturating_mul(10);
        Self::LogNormal { mu, sigma, cap }
    }

    /// The delay for draws `a` and `b` (two independent streams).
    pub(crate) fn sample(&self, a: u64, b: u64) -> Duration {
        match *self {
            Self::Fixed(d) => d,
            Self::Uniform { low, high } => {
                let span = (high - low).as_nanos() as f64;
                low + Duration::from_nanos((unit(a) * span) as u64)
            }
            Self::LogNormal { mu, sigma, cap } => {
                // Box-Muller; 1 - u keeps the logarithm finite.
                let u1 = 1.0 - unit(a);
                let u2 = unit(b);
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let secs = (mu + sigma * z).exp();
                Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_pure() {
        assert_eq!(draw(7, salt("a"), 42, 0), draw(7, salt("a"), 42, 0));
        assert_ne!(draw(7, salt("a"), 42, 0), draw(7, salt("b"), 42, 0));
        assert_ne!(draw(7, salt("a"), 42, 0), draw(8, salt("a"), 42, 0));
        assert_ne!(draw(7, salt("a"), 42, 0), draw(7, salt("a"), 42, 1));
    }

    #[test]
    fn thresholds_round_trip() {
        assert!(fires(u64::MAX >> 1, threshold(1.0)));
        assert!(!fires(0, threshold(0.0)));
        assert!(fires(0, threshold(1e-15)));
        assert!((rate_of(threshold(0.25)) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn log_normal_quantiles() {
        let dist = Dist::log_normal(Duration::from_millis(200), Duration::from_secs(2));
        let mut samples: Vec<Duration> = (0..20_000)
            .map(|n| dist.sample(draw(1, 2, n, 1), draw(1, 2, n, 2)))
            .collect();
        samples.sort();
        let p50 = samples[10_000].as_secs_f64();
        let p99 = samples[19_800].as_secs_f64();
        assert!((p50 - 0.2).abs() < 0.02, "p50 {p50}");
        assert!((p99 - 2.0).abs() < 0.3, "p99 {p99}");
    }

    #[test]
    fn uniform_stays_in_range() {
        let dist = Dist::Uniform {
            low: Duration::from_millis(10),
            high: Duration::from_millis(20),
        };
        for n in 0..1000 {
            let d = dist.sample(draw(3, 4, n, 1), 0);
            assert!(d >= Duration::from_millis(10) && d < Duration::from_millis(20));
        }
    }
}

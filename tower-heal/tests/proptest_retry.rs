//! Property tests of the back-off, the jitter modes and the retry's bounds.
//!
//! - every jitter mode keeps each delay within its documented bounds, and a seed fixes the
//!   sequence;
//! - jitter names read back as the mode they name;
//! - without jitter, the retry sleeps exactly the reference back-off (`min(max_delay,
//!   initial × multiplier^n)`), stops after `max_retries`, and never starts a back-off that
//!   would take the total slept past `max_total_delay` or a request's [`Deadline`];
//! - with any jitter, the total slept stays within `max_total_delay` and the deadline;
//! - a gRPC retry carries the time left as its `grpc-timeout`, read against a reference
//!   parser of the `grpc-timeout` grammar, and no header value makes the retry panic.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use proptest::prelude::*;
use support::{Flaky, Script};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_heal::{AnyRequestWithDeadline, Backoff, Deadline, Jitter, RetryLayer};

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
        (0.0f64..=1.0).prop_map(Jitter::Proportional),
    ]
}

fn ms(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_millis)
}

/// A valid exponential back-off: initial ≤ max, multiplier in 1..=100.
fn exponential() -> impl Strategy<Value = Backoff> {
    (ms(1..=5_000), 0u64..=60_000, 1.0f64..=100.0, jitter()).prop_map(|(initial, extra, m, j)| {
        Backoff::exponential(initial)
            .max_delay(initial + Duration::from_millis(extra))
            .multiplier(m)
            .jitter(j)
    })
}

/// One nanosecond of slack for the float arithmetic of the jitter.
const NS: Duration = Duration::from_nanos(1);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Each mode keeps its bounds; the cap on one delay is never passed.
    #[test]
    fn jitter_stays_within_its_bounds(
        initial in ms(1..=5_000),
        extra in 0u64..=60_000,
        multiplier in 1.0f64..=100.0,
        jitter in jitter(),
        n in 0u32..40,
        previous in ms(0..=120_000),
        seed in any::<u64>(),
    ) {
        let max = initial + Duration::from_millis(extra);
        let backoff = Backoff::exponential(initial).max_delay(max).multiplier(multiplier).jitter(jitter);
        let base = backoff.base_delay(n);
        prop_assert!(base <= max);
        prop_assert!(n == 0 || backoff.base_delay(n - 1) <= base, "the base delay never shrinks");
        let mut rng = fastrand::Rng::with_seed(seed);
        let d = backoff.delay(n, previous, &mut rng);
        prop_assert!(d <= max, "{:?} past the cap {:?}", d, max);
        match jitter {
            Jitter::None => prop_assert_eq!(d, base),
            Jitter::Full => prop_assert!(d <= base + NS),
            Jitter::Equal => prop_assert!(d + NS >= base / 2 && d <= base + NS),
            Jitter::Decorrelated => {
                let high = (previous * 3).max(initial).min(max);
                prop_assert!(d + NS >= initial.min(max) && d <= high + NS, "{:?} outside {:?}..{:?}", d, initial, high);
            }
            Jitter::Proportional(f) => {
                let low = base.as_secs_f64() * (1.0 - f);
                let high = (base.as_secs_f64() * (1.0 + f)).min(max.as_secs_f64());
                let s = d.as_secs_f64();
                prop_assert!(s >= low - 1e-9 && s <= high + 1e-9, "{} outside {}..{}", s, low, high);
            }
        }
    }

    /// The same seed gives the same sequence of delays.
    #[test]
    fn a_seed_fixes_the_sequence(backoff in exponential(), seed in any::<u64>()) {
        let run = || {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut previous = Duration::ZERO;
            (0..12).map(|n| {
                previous = backoff.delay(n, previous, &mut rng);
                previous
            }).collect::<Vec<_>>()
        };
        prop_assert_eq!(run(), run());
    }

    /// A jitter's configuration name reads back as the same mode.
    #[test]
    fn jitter_names_round_trip(jitter in jitter()) {
        prop_assert_eq!(jitter.name().parse::<Jitter>().unwrap(), jitter);
    }
}

/// How the retry is bounded in one case.
#[derive(Debug, Clone)]
struct Bounds {
    backoff: Backoff,
    max_retries: u32,
    max_total: Option<Duration>,
    deadline: Option<Duration>,
    seed: u64,
}

fn bounds() -> impl Strategy<Value = Bounds> {
    (
        exponential(),
        0u32..=8,
        proptest::option::of(ms(0..=30_000)),
        proptest::option::of(ms(0..=30_000)),
        any::<u64>(),
    )
        .prop_map(|(backoff, max_retries, max_total, deadline, seed)| Bounds {
            backoff,
            max_retries,
            max_total,
            deadline,
            seed,
        })
}

/// Runs one always-failing call through the retry; returns the gaps between attempts.
async fn run(bounds: &Bounds) -> Vec<Duration> {
    let mut builder = RetryLayer::builder()
        .backoff(bounds.backoff)
        .max_retries(bounds.max_retries)
        .seed(bounds.seed)
        .no_budget();
    if let Some(max) = bounds.max_total {
        builder = builder.max_total_delay(max);
    }
    let script = Script::new([Err("down")]);
    let mut svc = ServiceBuilder::new()
        .layer(builder.gate(AnyRequestWithDeadline).build().unwrap())
        .service(Flaky(script.clone()));
    let mut request = http::Request::new(());
    if let Some(deadline) = bounds.deadline {
        request.extensions_mut().insert(Deadline::after(deadline));
    }
    let start = Instant::now();
    let result = svc.ready().await.unwrap().call(request).await;
    assert!(result.is_err(), "every attempt fails");
    let gaps = script.gaps();
    assert_eq!(
        gaps.iter().sum::<Duration>(),
        start.elapsed(),
        "returned after the last attempt"
    );
    gaps
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever the jitter: at most `max_retries` retries, the total slept within
    /// `max_total_delay` and the deadline, each delay within the cap.
    #[test]
    fn the_retry_keeps_its_bounds(bounds in bounds()) {
        let gaps = runtime().block_on(run(&bounds));
        prop_assert!(gaps.len() <= bounds.max_retries as usize);
        let total: Duration = gaps.iter().sum();
        if let Some(max) = bounds.max_total {
            prop_assert!(total <= max, "slept {:?} past max_total_delay {:?}", total, max);
        }
        if let Some(deadline) = bounds.deadline {
            prop_assert!(total <= deadline, "slept {:?} past the deadline {:?}", total, deadline);
        }
        for gap in &gaps {
            prop_assert!(*gap <= bounds.backoff.base_delay(u32::MAX).max(Duration::from_millis(5_000)) + Duration::from_millis(1));
        }
    }

    /// Without jitter the retry sleeps exactly the reference back-off and stops at the first
    /// back-off that would pass a bound.
    #[test]
    fn without_jitter_the_retry_sleeps_the_reference_back_off(mut bounds in bounds()) {
        bounds.backoff = bounds.backoff.jitter(Jitter::None);
        let gaps = runtime().block_on(run(&bounds));
        let limit = match (bounds.max_total, bounds.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut expected = Vec::new();
        let mut total = Duration::ZERO;
        for n in 0..bounds.max_retries {
            let delay = bounds.backoff.base_delay(n);
            if limit.is_some_and(|limit| total + delay > limit) {
                break;
            }
            total += delay;
            expected.push(delay);
        }
        // tokio's timer has millisecond resolution: compare in whole milliseconds, rounded up.
        let up = |d: &Duration| d.as_nanos().div_ceil(1_000_000);
        prop_assert_eq!(
            gaps.iter().map(up).collect::<Vec<_>>(),
            expected.iter().map(up).collect::<Vec<_>>()
        );
    }
}

/// A gRPC backend: the first attempt answers `UNAVAILABLE` with a zero pushback, the next
/// `OK`; records every attempt's `grpc-timeout`.
#[derive(Clone, Default)]
struct Grpc {
    seen: Arc<Mutex<Vec<Option<http::HeaderValue>>>>,
}

impl<B> Service<http::Request<B>> for Grpc {
    type Response = http::Response<()>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut seen = self.seen.lock().unwrap();
        seen.push(req.headers().get("grpc-timeout").cloned());
        let status = if seen.len() == 1 { "14" } else { "0" };
        let res = http::Response::builder()
            .header("grpc-status", status)
            .header("grpc-retry-pushback-ms", "0")
            .body(())
            .unwrap();
        Box::pin(async move { Ok(res) })
    }
}

type Req = http::Request<http_body_util::Empty<bytes::Bytes>>;

/// The reference reading of the `grpc-timeout` grammar: 1 to 8 ASCII digits and a unit.
fn reference_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).unwrap().parse().unwrap();
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

fn grpc_timeout_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            1u64..=99_999_999,
            prop_oneof![
                Just(b'H'),
                Just(b'M'),
                Just(b'S'),
                Just(b'm'),
                Just(b'u'),
                Just(b'n')
            ]
        )
            .prop_map(|(n, unit)| {
                let mut v = n.to_string().into_bytes();
                v.push(unit);
                v
            }),
        proptest::collection::vec(
            prop_oneof![
                (b'0'..=b'9'),
                Just(b'S'),
                Just(b'm'),
                Just(b'-'),
                Just(b' '),
                Just(b'x')
            ],
            0..12
        ),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A retry's `grpc-timeout` is the time left (at most the original, short of it by less
    /// than the unit written); an unreadable one changes nothing and panics nothing.
    #[test]
    fn a_grpc_retry_carries_the_time_left(bytes in grpc_timeout_bytes()) {
        let Ok(value) = http::HeaderValue::from_bytes(&bytes) else { return Ok(()) };
        let backend = Grpc::default();
        let layer = RetryLayer::builder().grpc_client().idempotent_method("/p.S/M").seed(1).no_budget().build().unwrap();
        let mut svc = ServiceBuilder::new().layer(layer).service(backend.clone());
        let mut req = http::Request::post("/p.S/M")
            .header("content-type", "application/grpc")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        req.headers_mut().insert("grpc-timeout", value.clone());
        let res = runtime().block_on(async { ServiceExt::<Req>::ready(&mut svc).await.unwrap().call(req).await }).unwrap();
        let seen = backend.seen.lock().unwrap().clone();
        prop_assert_eq!(seen[0].as_ref(), Some(&value), "the first attempt is sent as it came");
        match reference_timeout(value.as_bytes()) {
            Some(timeout) if !timeout.is_zero() => {
                prop_assert_eq!(seen.len(), 2, "a zero pushback fits in any deadline");
                prop_assert_eq!(res.headers()["grpc-status"].as_bytes(), b"0");
                let carried = seen[1].as_ref().expect("the retry carries a grpc-timeout");
                let left = reference_timeout(carried.as_bytes()).expect("a valid grpc-timeout");
                prop_assert!(left <= timeout, "{:?} carried for {:?}", left, timeout);
                let unit = match carried.as_bytes().last() {
                    Some(b'u') => Duration::from_micros(1),
                    Some(b'm') => Duration::from_millis(1),
                    Some(b'S') => Duration::from_secs(1),
                    Some(b'M') => Duration::from_secs(60),
                    _ => Duration::from_secs(3600),
                };
                prop_assert!(timeout - left < unit, "{:?} carried for {:?}", carried, timeout);
            }
            _ => {}
        }
    }
}

/// Found by `a_grpc_retry_carries_the_time_left` (seen failing before the fix): a
/// `grpc-timeout` past 99 999 999 seconds was carried by the retry as `99999999S`, a shorter
/// deadline than the caller's; it is now written in minutes or hours.
#[test]
fn a_grpc_timeout_in_hours_is_carried_in_a_unit_that_holds_it() {
    let backend = Grpc::default();
    let layer = RetryLayer::builder()
        .grpc_client()
        .idempotent_method("/p.S/M")
        .seed(1)
        .no_budget()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(backend.clone());
    let req: Req = http::Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .header("grpc-timeout", "27778H")
        .body(http_body_util::Empty::new())
        .unwrap();
    runtime()
        .block_on(async {
            ServiceExt::<Req>::ready(&mut svc)
                .await
                .unwrap()
                .call(req)
                .await
        })
        .unwrap();
    let seen = backend.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].as_ref().unwrap(), "1666680M");
}

//! Property tests of the header readers and writers: `Retry-After` (delta-seconds and
//! HTTP-date), `grpc-retry-pushback-ms` and `grpc-status`. Written values read back as what was
//! written (clamped to the maximum), and no input, however malformed, panics or reads as a
//! value outside its range.

use std::time::{Duration, SystemTime};

use http::HeaderValue;
use proptest::prelude::*;
use tower_outcome::{
    Pushback, parse_grpc_pushback, parse_grpc_status, parse_retry_after, retry_after_value,
};

/// A clock between 1970 and 2200.
fn now() -> impl Strategy<Value = SystemTime> {
    (200_000u64..7_258_118_400).prop_map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

fn max() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..100_000).prop_map(Duration::from_secs),
        Just(Duration::MAX),
    ]
}

/// Header bytes: mostly the characters these values are made of, sometimes anything.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(
            prop_oneof![
                (b'0'..=b'9'),
                Just(b' '),
                Just(b'\t'),
                Just(b'-'),
                Just(b'+'),
                Just(b'.'),
                Just(b','),
                Just(b':'),
                Just(b'G'),
                Just(b'M'),
                Just(b'T'),
            ],
            0..24
        ),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A delay written as `Retry-After` reads back as its whole seconds rounded up, clamped.
    #[test]
    fn retry_after_delta_round_trips(secs in any::<u64>(), nanos in 0u32..1_000_000_000, now in now(), max in max()) {
        let delay = Duration::new(secs, nanos);
        let written = retry_after_value(delay);
        let rounded = delay.as_secs().saturating_add(u64::from(delay.subsec_nanos() > 0));
        prop_assert_eq!(written.to_str().unwrap(), rounded.to_string());
        prop_assert_eq!(
            parse_retry_after(&written, now, max),
            Some(Duration::from_secs(rounded).min(max))
        );
    }

    /// An HTTP-date `delta` seconds after `now` reads as `delta` (a past date as zero), clamped.
    #[test]
    fn retry_after_date_round_trips(now in now(), delta in -100_000i64..100_000, max in max()) {
        let at = if delta >= 0 {
            now + Duration::from_secs(delta as u64)
        } else {
            now - Duration::from_secs(delta.unsigned_abs())
        };
        let text = httpdate::fmt_http_date(at);
        let value = HeaderValue::from_str(&text).unwrap();
        // The date has whole seconds: `now`'s are whole too, so the difference is exact.
        let expected = Duration::from_secs(delta.max(0) as u64).min(max);
        prop_assert_eq!(parse_retry_after(&value, now, max), Some(expected));
    }

    /// Whatever the bytes, reading `Retry-After` never panics and never exceeds the maximum.
    #[test]
    fn retry_after_never_panics_and_stays_under_max(bytes in header_bytes(), now in now(), max in max()) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            if let Some(delay) = parse_retry_after(&value, now, max) {
                prop_assert!(delay <= max);
            }
            // A sign or a fraction is never a delay.
            let text = String::from_utf8_lossy(&bytes);
            let t = text.trim();
            if t.starts_with('-') || (t.contains('.') && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')) {
                prop_assert_eq!(parse_retry_after(&value, now, max), None);
            }
        }
    }

    /// Milliseconds written as a pushback read back as themselves, clamped; a negative value
    /// means "do not retry".
    #[test]
    fn pushback_round_trips(ms in any::<u64>(), max in max(), pad in "[ \t]{0,2}") {
        let value = HeaderValue::from_str(&format!("{pad}{ms}{pad}")).unwrap();
        prop_assert_eq!(parse_grpc_pushback(&value, max), Pushback::After(Duration::from_millis(ms).min(max)));
        let negative = HeaderValue::from_str(&format!("-{}", ms.max(1))).unwrap();
        prop_assert_eq!(parse_grpc_pushback(&negative, max), Pushback::DontRetry);
    }

    /// Whatever the bytes, reading a pushback never panics and never exceeds the maximum.
    #[test]
    fn pushback_never_panics_and_stays_under_max(bytes in header_bytes(), max in max()) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            match parse_grpc_pushback(&value, max) {
                Pushback::After(delay) => prop_assert!(delay <= max),
                Pushback::DontRetry => {}
            }
        }
    }

    /// Every code written (with leading zeros and surrounding whitespace) reads back; a number
    /// past 16 reads as UNKNOWN.
    #[test]
    fn grpc_status_round_trips(code in 0u64..=16, zeros in 0usize..4, pad in "[ \t]{0,2}", big in 17u64..) {
        let text = format!("{pad}{}{code}{pad}", "0".repeat(zeros));
        prop_assert_eq!(parse_grpc_status(&HeaderValue::from_str(&text).unwrap()), code as i32);
        prop_assert_eq!(parse_grpc_status(&HeaderValue::from(big)), 2);
    }

    /// Whatever the bytes, a `grpc-status` reads as a code in `0..=16`, without panicking.
    #[test]
    fn grpc_status_never_panics_and_stays_in_range(bytes in header_bytes()) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let code = parse_grpc_status(&value);
            prop_assert!((0..=16).contains(&code));
            let digits = bytes.trim_ascii();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                prop_assert_eq!(code, 2);
            }
        }
    }
}

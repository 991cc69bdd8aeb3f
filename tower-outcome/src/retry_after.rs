//! `Retry-After` and gRPC pushback: reading and writing.

use std::time::{Duration, SystemTime};

use http::HeaderValue;

/// The `grpc-retry-pushback-ms` header (or trailer) name.
pub const GRPC_PUSHBACK: &str = "grpc-retry-pushback-ms";

/// Reads a `Retry-After` value: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850, asctime).
///
/// A date in the past reads as zero; anything that does not parse (a negative or fractional
/// number, an overflow, garbage) reads as absent (`None`). The result is clamped to `max`.
/// `now` is a parameter so callers and tests control the clock.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderValue;
/// use tower_outcome::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
/// let max = Duration::from_secs(60);
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("5"), now, max), Some(Duration::from_secs(5)));
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("3600"), now, max), Some(max));
/// assert_eq!(
///     parse_retry_after(&HeaderValue::from_static("Sun, 06 Nov 1994 08:49:47 GMT"), now, max),
///     Some(Duration::from_secs(10)),
/// );
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("-1"), now, max), None);
/// ```
#[must_use]
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime, max: Duration) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let delay = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(text.parse::<u64>().ok()?)
    } else {
        let at = httpdate::parse_http_date(text).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(max))
}

/// Writes a delay as a `Retry-After` value in whole seconds, rounded up (saturating: even
/// [`Duration::MAX`] is written as the largest number of seconds, never as `0`, "retry now").
///
/// ```
/// use std::time::Duration;
/// use tower_outcome::retry_after_value;
///
/// assert_eq!(retry_after_value(Duration::from_millis(1200)), "2");
/// assert_eq!(retry_after_value(Duration::from_secs(60)), "60");
/// assert_eq!(retry_after_value(Duration::ZERO), "0");
/// ```
#[must_use]
pub fn retry_after_value(delay: Duration) -> HeaderValue {
    let secs = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0));
    HeaderValue::from(secs)
}

/// What a server's `grpc-retry-pushback-ms` asks of a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushback {
    /// Retry after this delay (clamped to the caller's maximum).
    After(Duration),
    /// Do not retry: the value was negative or did not parse (as the gRPC retry design says).
    DontRetry,
}

/// Reads a `grpc-retry-pushback-ms` value, clamping a delay to `max`.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use tower_outcome::{parse_grpc_pushback, Pushback};
///
/// let max = Duration::from_secs(10);
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("250"), max), Pushback::After(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("-1"), max), Pushback::DontRetry);
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("soon"), max), Pushback::DontRetry);
/// ```
#[must_use]
pub fn parse_grpc_pushback(value: &HeaderValue, max: Duration) -> Pushback {
    let parsed = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok());
    match parsed {
        Some(ms) => Pushback::After(Duration::from_millis(ms).min(max)),
        None => Pushback::DontRetry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(120);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn parse(s: &'static str, now: SystemTime) -> Option<Duration> {
        parse_retry_after(&HeaderValue::from_static(s), now, MAX)
    }

    #[test]
    fn all_three_date_formats() {
        // 1994-11-06T08:49:37Z
        let now = at(784_111_777 - 30);
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse(s, now), Some(Duration::from_secs(30)), "{s}");
        }
    }

    #[test]
    fn past_date_is_zero() {
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:49:37 GMT", at(900_000_000)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_absent() {
        for s in ["-1", "1.5", "", "soon", "99999999999999999999999", "+5"] {
            assert_eq!(parse(s, at(0)), None, "{s:?}");
        }
    }

    #[test]
    fn clamped() {
        assert_eq!(parse("86400", at(0)), Some(MAX));
    }

    #[test]
    fn written_rounded_up() {
        assert_eq!(retry_after_value(Duration::from_nanos(1)), "1");
        assert_eq!(retry_after_value(Duration::from_millis(59_001)), "60");
    }

    #[test]
    fn pushback_overflow_does_not_retry() {
        let v = HeaderValue::from_static("99999999999999999999999");
        assert_eq!(parse_grpc_pushback(&v, MAX), Pushback::DontRetry);
        assert_eq!(
            parse_grpc_pushback(&HeaderValue::from_static("999999"), MAX),
            Pushback::After(MAX)
        );
    }

    #[test]
    fn the_longest_delay_neither_panics_nor_says_now() {
        let value = retry_after_value(Duration::MAX);
        assert_eq!(value, u64::MAX.to_string().as_str());
        assert_ne!(value, "0");
    }
}

//! `Retry-After`, `grpc-retry-pushback-ms` and `grpc-status` readers: any header value reads
//! without a panic, within the maximum, as a code in range.
#![no_main]

use std::time::{Duration, SystemTime};

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tower_outcome::{Pushback, parse_grpc_pushback, parse_grpc_status, parse_retry_after};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = HeaderValue::from_bytes(rest) else {
        return;
    };
    let max = Duration::from_secs(u64::from(selector) * 7);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(selector) * 1_000_003);
    if let Some(delay) = parse_retry_after(&value, now, max) {
        assert!(delay <= max);
    }
    match parse_grpc_pushback(&value, max) {
        Pushback::After(delay) => assert!(delay <= max),
        Pushback::DontRetry => {}
    }
    assert!((0..=16).contains(&parse_grpc_status(&value)));
});

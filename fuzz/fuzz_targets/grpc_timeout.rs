//! A gRPC request's `grpc-timeout`, read by the retry (its deadline) and written again on the
//! retry (the time left): any header value, no panic, and the time carried never exceeds the
//! time asked.
#![no_main]

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_heal::RetryLayer;

type Req = http::Request<http_body_util::Empty<bytes::Bytes>>;

/// Answers `UNAVAILABLE` with a zero pushback first, then `OK`; keeps each `grpc-timeout`.
#[derive(Clone, Default)]
struct Grpc(Arc<Mutex<Vec<Option<http::HeaderValue>>>>);

impl<B> Service<http::Request<B>> for Grpc {
    type Response = http::Response<()>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut seen = self.0.lock().unwrap();
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

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap(),
    );
}

/// `grpc-timeout` as the gRPC grammar reads it, in nanoseconds.
fn nanos(value: &[u8]) -> Option<u128> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u128 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(
        n * match unit {
            b'H' => 3_600_000_000_000,
            b'M' => 60_000_000_000,
            b'S' => 1_000_000_000,
            b'm' => 1_000_000,
            b'u' => 1_000,
            b'n' => 1,
            _ => return None,
        },
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let backend = Grpc::default();
    let layer = RetryLayer::grpc()
        .idempotent_method("/p.S/M")
        .seed(1)
        .no_budget()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(layer).service(backend.clone());
    let mut req: Req = http::Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .body(http_body_util::Empty::new())
        .unwrap();
    req.headers_mut().insert("grpc-timeout", value.clone());
    RUNTIME.with(|rt| {
        rt.borrow()
            .block_on(async {
                ServiceExt::<Req>::ready(&mut svc)
                    .await
                    .unwrap()
                    .call(req)
                    .await
            })
            .unwrap();
    });
    let seen = backend.0.lock().unwrap();
    if let (Some(asked), Some(Some(carried))) = (nanos(value.as_bytes()), seen.get(1)) {
        let carried = nanos(carried.as_bytes()).expect("the retry writes a valid grpc-timeout");
        assert!(carried <= asked, "{carried} ns carried for {asked} ns");
    }
});

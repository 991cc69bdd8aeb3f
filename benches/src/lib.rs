//! Shared pieces of the benchmarks: the bare service every layer wraps, and a synchronous
//! driver that measures a layer's own cost rather than an executor's.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tower::Service;

pub mod heal;

/// An always-ready service answering at once: `Ok(n)`, or an error for `u64::MAX`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u64) -> Self::Future {
        if n == u64::MAX {
            ready(Err(std::io::Error::other("down")))
        } else {
            ready(Ok(n))
        }
    }
}

/// One call, driven by hand with a no-op waker: `poll_ready`, `call`, one poll of the future.
/// Returns whether the call succeeded. Panics if anything is pending (nothing here waits).
#[inline]
pub fn call_once<S: Service<u64>>(svc: &mut S, n: u64) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let ready = svc.poll_ready(&mut cx);
    assert!(ready.is_ready(), "the service is not ready");
    if let Poll::Ready(Err(_)) = ready {
        return false;
    }
    let future = pin!(svc.call(n));
    let result = future.poll(&mut cx);
    assert!(result.is_ready(), "the call did not complete at once");
    matches!(result, Poll::Ready(Ok(_)))
}

/// Polls a future once with a no-op waker; panics if it is pending.
pub fn poll_once<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future did not complete at once"),
    }
}

/// The keyed benchmarks' requests: `count` requests whose `x-tenant` header holds their index,
/// leaked so they can be passed by reference for ever (a request is not `Clone`).
pub fn tenant_requests(count: u32) -> &'static [http::Request<()>] {
    let requests: Vec<_> = (0..count)
        .map(|n| {
            http::Request::builder()
                .header("x-tenant", n)
                .body(())
                .expect("a valid request")
        })
        .collect();
    Vec::leak(requests)
}

static X_TENANT: http::HeaderName = http::HeaderName::from_static("x-tenant");

/// The tenant of a [`tenant_requests`] request (0 when missing or malformed).
pub fn tenant(request: &&'static http::Request<()>) -> u32 {
    request
        .headers()
        .get(&X_TENANT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// An always-ready service over borrowed HTTP requests, answering at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct BareHttp;

impl Service<&'static http::Request<()>> for BareHttp {
    type Response = ();
    type Error = std::io::Error;
    type Future = Ready<Result<(), std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: &'static http::Request<()>) -> Self::Future {
        ready(Ok(()))
    }
}

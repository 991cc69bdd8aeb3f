//! Helpers shared by the retry tests: a scripted service that records when it was called.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::Service;

pub use test_support::Script;

/// A service over any request answering `Ok(n)` or `Err(io::Error)` from a script of
/// `Result<u32, &'static str>`.
#[derive(Clone)]
pub struct Flaky(pub Script<Result<u32, &'static str>>);

macro_rules! flaky_for {
    ($($req:ty),*) => {$(
        impl Service<$req> for Flaky {
            type Response = u32;
            type Error = std::io::Error;
            type Future = Pin<Box<dyn Future<Output = Result<u32, std::io::Error>> + Send>>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, _req: $req) -> Self::Future {
                let answer = self.0.next();
                Box::pin(async move { answer.map_err(std::io::Error::other) })
            }
        }
    )*};
}

flaky_for!((), &'static str, http::Request<()>);

/// An HTTP service answering scripted responses: (status, headers).
#[derive(Clone)]
pub struct Http(pub Script<(u16, Vec<(&'static str, String)>)>);

impl<B: Send + 'static> Service<http::Request<B>> for Http {
    type Response = http::Response<()>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<()>, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<B>) -> Self::Future {
        let (status, headers) = self.0.next();
        Box::pin(async move {
            let mut res = http::Response::builder().status(status);
            for (name, value) in headers {
                res = res.header(name, value);
            }
            Ok(res.body(()).unwrap())
        })
    }
}

pub fn status(code: u16) -> (u16, Vec<(&'static str, String)>) {
    (code, Vec::new())
}

pub fn with(code: u16, name: &'static str, value: &str) -> (u16, Vec<(&'static str, String)>) {
    (code, vec![(name, value.to_owned())])
}

pub use test_support::{call, start};

//! Helpers shared by the retry tests: a scripted service that records when it was called.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// Answers each call with the next scripted result (the last one repeats) and records the
/// instant of every call.
#[derive(Clone)]
pub struct Script<T> {
    answers: Arc<Mutex<VecDeque<T>>>,
    last: Arc<Mutex<Option<T>>>,
    pub calls: Arc<Mutex<Vec<Instant>>>,
}

impl<T: Clone> Script<T> {
    pub fn new(answers: impl IntoIterator<Item = T>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers.into_iter().collect())),
            last: Arc::new(Mutex::new(None)),
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn next(&self) -> T {
        self.calls.lock().unwrap().push(Instant::now());
        let mut answers = self.answers.lock().unwrap();
        let answer = if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().expect("a scripted answer")
        };
        *self.last.lock().unwrap() = Some(answer.clone());
        answer
    }

    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Gaps between consecutive calls, in milliseconds.
    pub fn gaps_ms(&self) -> Vec<u128> {
        let calls = self.calls.lock().unwrap();
        calls
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect()
    }

    pub fn gaps(&self) -> Vec<std::time::Duration> {
        let calls = self.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

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

/// Polls `svc` ready and calls it (the request type picks the `Service` impl).
pub async fn call<S: Service<R>, R>(svc: &mut S, request: R) -> Result<S::Response, S::Error> {
    svc.ready().await?.call(request).await
}

/// Polls `svc` ready and returns the response future without awaiting it.
pub async fn start<S: Service<R>, R>(svc: &mut S, request: R) -> S::Future
where
    S::Error: std::fmt::Debug,
{
    svc.ready().await.unwrap();
    svc.call(request)
}

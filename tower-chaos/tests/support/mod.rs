//! Helpers shared by the chaos layer's behaviour tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tower::{Service, ServiceExt};
use tower_chaos::BoxError;

/// An inner service answering `Ok(n)` at once and counting the calls it sees.
#[derive(Clone, Default)]
pub struct Echo {
    pub calls: Arc<AtomicUsize>,
}

impl Echo {
    pub fn seen(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u64, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u64) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(n))
    }
}

/// One call: ready, call, await.
pub async fn call<S>(svc: &mut S, n: u64) -> Result<u64, BoxError>
where
    S: Service<u64, Response = u64, Error = BoxError>,
{
    svc.ready().await?.call(n).await
}

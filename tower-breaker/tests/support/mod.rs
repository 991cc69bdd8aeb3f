//! Helpers shared by the breaker's behaviour tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::task::Poll;

use tokio_test::assert_ready_ok;
use tower_breaker::{BoxError, State, Transition, TransitionReason};
use tower_test::mock::{Handle, Spawn};

/// Transitions seen by a listener, in order.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<(State, State, TransitionReason)>>>);

impl Events {
    pub fn listener(&self) -> impl Fn(&Transition<'_>) + Send + Sync + 'static {
        let events = self.0.clone();
        move |t: &Transition<'_>| events.lock().unwrap().push((t.from, t.to, t.reason))
    }

    pub fn take(&self) -> Vec<(State, State, TransitionReason)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// One call through a breaker over a tower-test mock: polls ready, calls, and answers with
/// `Ok(7)` or `Err("boom")` if the call reaches the mock. Returns the breaker's result and
/// whether the mock saw the request.
pub async fn call<S>(
    svc: &mut Spawn<S>,
    handle: &mut Handle<u32, u32>,
    ok: bool,
) -> (Result<u32, BoxError>, bool)
where
    S: tower::Service<u32, Response = u32, Error = BoxError>,
{
    assert_ready_ok!(svc.poll_ready());
    let fut = svc.call(1);
    let mut fut = tokio_test::task::spawn(fut);
    if let Poll::Ready(result) = fut.poll() {
        return (result, false);
    }
    let (request, send) = handle
        .next_request()
        .await
        .expect("request reached the mock");
    assert_eq!(request, 1);
    if ok {
        send.send_response(7);
    } else {
        send.send_error("boom");
    }
    (fut.await, true)
}

/// Polls readiness of the breaker once and expects `Ready(Ok)`.
pub fn ready<S>(svc: &mut Spawn<S>)
where
    S: tower::Service<u32, Response = u32, Error = BoxError>,
{
    assert_ready_ok!(svc.poll_ready());
}

/// The rejection inside a breaker error, if that is what it is.
pub fn rejected(err: &BoxError) -> Option<&tower_breaker::Rejected> {
    err.downcast_ref::<tower_breaker::Rejected>()
}

/// A call that reaches the mock and fails.
pub async fn fail<S>(svc: &mut Spawn<S>, handle: &mut Handle<u32, u32>)
where
    S: tower::Service<u32, Response = u32, Error = BoxError>,
{
    let (result, reached) = call(svc, handle, false).await;
    assert!(reached, "the failing call was rejected instead: {result:?}");
    assert_eq!(result.unwrap_err().to_string(), "boom");
}

/// A call that reaches the mock and succeeds.
pub async fn succeed<S>(svc: &mut Spawn<S>, handle: &mut Handle<u32, u32>)
where
    S: tower::Service<u32, Response = u32, Error = BoxError>,
{
    let (result, reached) = call(svc, handle, true).await;
    assert!(reached, "the call was rejected: {result:?}");
    assert_eq!(result.unwrap(), 7);
}

//! Every type a user keeps in a struct field can be named.
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::error::Error;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{
    BoxError, CircuitBreaker, CircuitBreakerLayer, FnClassifier, HttpAnswer, HttpStatus, Outcome,
    State, default_error_outcome,
};

/// A client of a named type, as a hand-written client or a generated one is.
#[derive(Clone)]
struct Backend;

impl Service<Request<()>> for Backend {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::builder()
            .status(500)
            .body(String::new())
            .unwrap()))
    }
}

/// The pattern the docs show: a type alias for the wrapped client, a field of that type.
type GuardedBackend = CircuitBreaker<Backend, HttpStatus, HttpAnswer>;

struct Api {
    backend: GuardedBackend,
}

#[tokio::test(start_paused = true)]
async fn a_struct_holds_a_breaker_wrapped_client_by_name() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(2)
        .http()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut api = Api {
        backend: ServiceBuilder::new().layer(layer).service(Backend),
    };
    for _ in 0..2 {
        let res = api
            .backend
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await;
        assert_eq!(res.unwrap().status(), 500);
    }
    assert_eq!(handle.state(), State::Open);
    let res = api
        .backend
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await;
    assert_eq!(res.unwrap().status(), 503);
}

fn zero_is_a_failure(result: Result<&u32, &(dyn Error + 'static)>) -> Outcome {
    match result {
        Ok(0) => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(err) => default_error_outcome(err),
    }
}

type ZeroClassifier = FnClassifier<fn(Result<&u32, &(dyn Error + 'static)>) -> Outcome, u32>;

#[tokio::test(start_paused = true)]
async fn a_function_pointer_classifier_has_a_name() {
    let classifier: ZeroClassifier = FnClassifier::new(zero_is_a_failure);
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .classifier(classifier)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|n: u32| async move { Ok::<_, BoxError>(n) });
    assert_eq!(svc.ready().await.unwrap().call(0).await.unwrap(), 0);
    assert_eq!(handle.state(), State::Open);
}

struct Quotes {
    svc: BoxCloneService<u32, u32, BoxError>,
}

#[tokio::test(start_paused = true)]
async fn a_boxed_stack_fits_a_field_and_shares_its_breaker_across_clones() {
    let layer = CircuitBreakerLayer::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|n: u32| async move {
            if n == 0 {
                Err::<u32, BoxError>("down".into())
            } else {
                Ok(n)
            }
        });
    let mut quotes = Quotes {
        svc: BoxCloneService::new(svc),
    };
    let mut other = quotes.svc.clone();
    assert!(quotes.svc.ready().await.unwrap().call(0).await.is_err());
    assert_eq!(handle.state(), State::Open);
    assert!(
        other.ready().await.unwrap().call(1).await.is_err(),
        "one breaker"
    );
}

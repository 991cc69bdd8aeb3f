//! HTTP and gRPC faults look to the layers above exactly like the real thing.
#![cfg(all(feature = "inject", feature = "http"))]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_breaker::{CircuitBreakerLayer, HttpStatus, State};
use tower_chaos::{BodyCutOff, ChaosLayer, Fault, Rejected};

// axum's body: boxed, `Default` and `From<String>` (what `.http()` answers need).
type Body = axum::body::Body;

fn ok_service() -> impl Service<
    Request<()>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    tower::service_fn(|_req: Request<()>| async {
        let body = Body::new(Full::new(Bytes::from_static(b"hello, world")));
        Ok::<_, Infallible>(Response::new(body))
    })
}

#[tokio::test(start_paused = true)]
async fn an_injected_503_carries_retry_after_and_no_rejection() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(
            Fault::http_status(StatusCode::SERVICE_UNAVAILABLE)
                .retry_after(Duration::from_millis(1500))
                .rate(1.0),
        )
        .http()
        .armed(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "2");
    assert!(
        res.extensions().get::<Rejected>().is_none(),
        "nothing marks it as injected"
    );
}

#[tokio::test(start_paused = true)]
async fn a_breaker_counts_an_injected_503_as_a_failure() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::http_status(StatusCode::SERVICE_UNAVAILABLE).rate(1.0))
        .http()
        .armed(true)
        .build()
        .unwrap();
    let breaker = CircuitBreakerLayer::builder()
        .failure_threshold(3)
        .classifier(HttpStatus::new())
        .http()
        .build()
        .unwrap();
    let state = breaker.handle();
    let mut svc = ServiceBuilder::new()
        .layer(breaker)
        .layer(chaos)
        .service(ok_service());
    for _ in 0..3 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
    }
    assert_eq!(
        state.state(),
        State::Open,
        "three injected 503s tripped the breaker"
    );
}

#[tokio::test(start_paused = true)]
async fn an_abort_in_http_mode_is_the_familys_rejection() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::abort().rate(1.0))
        .http()
        .armed(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let rejected = res
        .extensions()
        .get::<Rejected>()
        .expect("marked as injected");
    assert_eq!(rejected.reason(), tower_chaos::Reason::Injected);
    assert_eq!(rejected.kind(), tower_chaos::LayerKind::Chaos);
}

#[tokio::test(start_paused = true)]
async fn a_grpc_status_is_a_trailers_only_answer() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(
            Fault::grpc_status(14, "upstream unavailable")
                .retry_after(Duration::from_millis(250))
                .rate(1.0),
        )
        .grpc()
        .armed(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(res.headers()["grpc-message"], "upstream unavailable");
    assert_eq!(res.headers()["grpc-retry-pushback-ms"], "250");
    assert!(res.extensions().get::<Rejected>().is_none());
    assert!(
        res.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn an_error_fault_in_http_mode_answers_a_bare_500() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::error(|| "boom".into()).rate(1.0))
        .http()
        .armed(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert!(res.extensions().get::<Rejected>().is_none());
}

fn header(value: Option<&'static str>) -> Request<()> {
    let mut req = Request::new(());
    if let Some(value) = value {
        req.headers_mut().insert("x-chaos", value.parse().unwrap());
    }
    req
}

#[tokio::test(start_paused = true)]
async fn header_driven_faults_are_opt_in_and_capped_by_the_configured_rate() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .seed(1)
        .fault(Fault::http_status(StatusCode::SERVICE_UNAVAILABLE).rate(0.2))
        .header_control(http::HeaderName::from_static("x-chaos"))
        .http()
        .no_guard()
        .armed(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let count = |value: Option<&'static str>| {
        let mut svc = svc.clone();
        async move {
            let mut hits = 0;
            for _ in 0..2_000 {
                let res = svc
                    .ready()
                    .await
                    .unwrap()
                    .call(header(value))
                    .await
                    .unwrap();
                hits += u32::from(res.status() == 503);
            }
            hits
        }
    };
    assert_eq!(count(None).await, 0, "no header, no fault");
    assert_eq!(
        count(Some("latency")).await,
        0,
        "a header naming another fault"
    );
    let asked_all = count(Some("http_503=1.0")).await;
    assert!(
        (320..480).contains(&asked_all),
        "capped at 20 %: {asked_all}"
    );
    let asked_less = count(Some("http_503=0.05")).await;
    assert!(
        (60..140).contains(&asked_less),
        "a lower rate is honoured: {asked_less}"
    );
    let _ = svc.ready().await.unwrap();
}

fn rewrap(body: tower_chaos::ChaosBody<Body>) -> Body {
    Body::new(body)
}

#[tokio::test(start_paused = true)]
async fn a_slow_body_stalls_after_its_first_bytes() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::slow_body(5, Duration::from_secs(30), rewrap).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let mut body = res.into_body();
    let start = tokio::time::Instant::now();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"hello");
    assert_eq!(start.elapsed(), Duration::ZERO);
    let rest = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&rest[..], b", world");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(30),
        "the stream stalled 30 s"
    );
    assert!(body.frame().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_cut_off_body_ends_early_with_an_error() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::cut_off_body(4, rewrap).rate(1.0))
        .armed(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"hell");
    let err = body.frame().await.unwrap().unwrap_err();
    let cause = std::error::Error::source(&err).expect("the cut-off inside axum's error");
    assert!(cause.downcast_ref::<BodyCutOff>().is_some(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_mutation_replaces_the_answer() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(
            Fault::mutate(|res: Response<Body>| {
                res.map(|_| Body::new(Full::new(Bytes::from_static(b"{\"trunc"))))
            })
            .named("malformed")
            .rate(1.0),
        )
        .armed(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        &res.into_body().collect().await.unwrap().to_bytes()[..],
        b"{\"trunc"
    );
}

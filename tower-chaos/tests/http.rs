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

#[tokio::test(start_paused = true)]
async fn a_stalled_body_holds_its_active_fault_slot_until_it_ends() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::slow_body(5, Duration::from_secs(30), rewrap).rate(1.0))
        .max_active_faults(1)
        .armed(true)
        .build()
        .unwrap();
    let handle = chaos.handle();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(
        handle.stats().active,
        1,
        "the response is back, the body fault is not over"
    );
    // A second call meets the bound: not faulted, counted as overflow.
    let other = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(handle.stats().overflow, 1);
    let start = tokio::time::Instant::now();
    let whole = other.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&whole[..], b"hello, world");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the overflow body is not stalled"
    );
    let whole = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&whole[..], b"hello, world");
    assert_eq!(
        handle.stats().active,
        0,
        "the stream ended: the slot is free"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_or_cut_off_body_frees_its_slot() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::slow_body(5, Duration::from_secs(30), rewrap).rate(0.5))
        .fault(Fault::cut_off_body(4, rewrap).rate(1.0))
        .max_active_faults(1)
        .armed(true)
        .build()
        .unwrap();
    let handle = chaos.handle();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    for _ in 0..20 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        assert_eq!(handle.stats().active, 1);
        drop(res);
        assert_eq!(handle.stats().active, 0, "a dropped body frees it");
    }
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    let mut body = res.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    assert_eq!(handle.stats().active, 0, "a cut-off stream ends the fault");
    drop(body);
    assert_eq!(handle.stats().overflow, 0);
}

#[tokio::test(start_paused = true)]
async fn answer_modes_keep_a_given_guard_classifier() {
    let not_found = || {
        tower::service_fn(|_req: Request<()>| async {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::NOT_FOUND;
            Ok::<_, Infallible>(res)
        })
    };
    let classifier = |r: Result<&Response<Body>, &(dyn std::error::Error + 'static)>| {
        r.map_or(true, |res| res.status() == StatusCode::NOT_FOUND)
    };
    let http = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::latency(tower_chaos::Latency::Fixed(Duration::ZERO)).rate(0.1))
        .guard_classifier(classifier)
        .http()
        .armed(true)
        .build()
        .unwrap();
    let grpc = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::latency(tower_chaos::Latency::Fixed(Duration::ZERO)).rate(0.1))
        .guard_classifier(classifier)
        .grpc()
        .armed(true)
        .build()
        .unwrap();
    for handle in [http.handle(), grpc.handle()] {
        assert!(handle.is_armed());
    }
    let (h1, h2) = (http.handle(), grpc.handle());
    let mut a = ServiceBuilder::new().layer(http).service(not_found());
    let mut b = ServiceBuilder::new().layer(grpc).service(not_found());
    for _ in 0..20 {
        a.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        b.ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
    }
    assert!(
        h1.guard_tripped(),
        ".http() kept the classifier counting 404s"
    );
    assert!(
        h2.guard_tripped(),
        ".grpc() kept the classifier counting 404s"
    );
}

/// An inner service that answers whether it saw an `x-chaos` header (200 no, 418 yes).
fn header_echo() -> impl Service<
    Request<()>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    tower::service_fn(|req: Request<()>| async move {
        let mut res = Response::new(Body::empty());
        if req.headers().contains_key("x-chaos") {
            *res.status_mut() = StatusCode::IM_A_TEAPOT;
        }
        Ok::<_, Infallible>(res)
    })
}

#[tokio::test(start_paused = true)]
async fn the_control_header_never_reaches_the_inner_service() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::latency(tower_chaos::Latency::Fixed(Duration::from_millis(5))).rate(1.0))
        .header_control(http::HeaderName::from_static("x-chaos"))
        .build()
        .unwrap();
    let handle = chaos.handle();
    let mut svc = ServiceBuilder::new().layer(chaos).service(header_echo());
    for armed in [false, true] {
        if armed {
            handle.arm();
        }
        for value in ["latency", "other"] {
            let res = svc
                .ready()
                .await
                .unwrap()
                .call(header(Some(value)))
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "armed {armed}, x-chaos: {value}");
        }
    }
    assert_eq!(handle.stats().fault("latency").unwrap().injected, 1);
}

#[tokio::test(start_paused = true)]
async fn a_header_cannot_ask_for_a_hang_without_an_opt_in() {
    let layer = |allow: bool| {
        ChaosLayer::<Request<()>, Response<Body>>::builder()
            .fault(Fault::hang().rate(1.0))
            .header_control(http::HeaderName::from_static("x-chaos"))
            .control_allows_hang(allow)
            .armed(true)
            .build()
            .unwrap()
    };
    let closed = layer(false);
    let handle = closed.handle();
    let mut svc = ServiceBuilder::new().layer(closed).service(header_echo());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(header(Some("hang")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(handle.stats().injected(), 0);

    let open = layer(true);
    let handle = open.handle();
    let mut svc = ServiceBuilder::new().layer(open).service(header_echo());
    svc.ready().await.unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(header(Some("hang"))));
    tokio_test::assert_pending!(fut.poll());
    assert_eq!(handle.stats().injected(), 1);
}

#[tokio::test(start_paused = true)]
async fn header_control_bounds_active_faults_by_default() {
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::latency(tower_chaos::Latency::Fixed(Duration::from_secs(10))).rate(1.0))
        .header_control(http::HeaderName::from_static("x-chaos"))
        .armed(true)
        .build()
        .unwrap();
    let handle = chaos.handle();
    let svc = ServiceBuilder::new().layer(chaos).service(header_echo());
    let calls: Vec<_> = (0..50)
        .map(|_| tokio::spawn(svc.clone().oneshot(header(Some("latency")))))
        .collect();
    tokio::task::yield_now().await;
    let stats = handle.stats();
    assert_eq!(stats.active, tower_chaos::DEFAULT_CONTROL_MAX_ACTIVE_FAULTS);
    assert_eq!(u64::from(stats.active) + stats.overflow, 50);
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn the_http_client_preset_answers_with_errors_and_guards_on_5xx() {
    // An abort reaches the client's caller as the family's rejection, in an error.
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::abort().rate(1.0))
        .http_client()
        .armed(true)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new().layer(chaos).service(ok_service());
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    let rejected = err
        .downcast_ref::<Rejected>()
        .expect("the family's rejection");
    assert_eq!(rejected.reason(), tower_chaos::Reason::Injected);

    // The guard counts the dependency's 503s as failures and trips.
    let unavailable = || {
        tower::service_fn(|_req: Request<()>| async {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, Infallible>(res)
        })
    };
    let chaos = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .fault(Fault::latency(tower_chaos::Latency::Fixed(Duration::ZERO)).rate(0.1))
        .http_client()
        .armed(true)
        .build()
        .unwrap();
    let handle = chaos.handle();
    let mut svc = ServiceBuilder::new().layer(chaos).service(unavailable());
    for _ in 0..20 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
    }
    assert!(handle.guard_tripped(), "503s count as failures");
}

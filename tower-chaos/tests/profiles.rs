//! Built-in fault profiles do what the failure-mode catalogue says.
#![cfg(all(feature = "inject", feature = "http"))]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};
use tower_chaos::{ChaosLayer, profiles};

type Body = Full<Bytes>;

fn ok() -> impl Service<
    Request<()>,
    Response = Response<Body>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Body>, Infallible>>,
> + Clone {
    tower::service_fn(|_req: Request<()>| {
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(
            b"{\"ok\": true}",
        )))))
    })
}

fn to(host: &str) -> Request<()> {
    Request::builder()
        .uri(format!("http://{host}/q"))
        .body(())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn dependency_unavailable_refuses_the_connection() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .faults(profiles::dependency_unavailable(1.0))
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(tower::service_fn(
        |n: u64| async move { Ok::<_, Infallible>(n) },
    ));
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    let io = err.downcast_ref::<std::io::Error>().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(start_paused = true)]
async fn ai_response_timeout_goes_past_the_deadline() {
    let layer = ChaosLayer::<u64, u64>::builder()
        .faults(profiles::ai_response_timeout(1.0, Duration::from_secs(60)))
        .armed(true)
        .build()
        .unwrap();
    let svc = layer.layer(tower::service_fn(
        |n: u64| async move { Ok::<_, Infallible>(n) },
    ));
    let mut svc = tower::ServiceBuilder::new()
        .timeout(Duration::from_secs(60))
        .service(svc);
    for n in 0..20 {
        let err = svc.ready().await.unwrap().call(n).await.unwrap_err();
        assert!(err.is::<tower::timeout::error::Elapsed>());
    }
}

#[tokio::test(start_paused = true)]
async fn api_rate_limit_answers_429_with_retry_after() {
    let layer = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .faults(profiles::http::api_rate_limit(1.0, Duration::from_secs(30)))
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(ok());
    let res = svc.ready().await.unwrap().call(to("api")).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "30");
}

#[tokio::test(start_paused = true)]
async fn malformed_response_truncates_the_json() {
    let layer = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .faults(profiles::http::malformed_response(1.0))
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(ok());
    let res = svc.ready().await.unwrap().call(to("api")).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(
        serde_json::from_slice::<serde_json::Value>(&body).is_err(),
        "not valid JSON"
    );
    assert_eq!(&body[..], profiles::http::TRUNCATED_JSON.as_bytes());
}

#[tokio::test(start_paused = true)]
async fn partial_failure_hits_one_upstream_only() {
    let layer = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .faults(profiles::http::partial_failure(1.0, "search.internal"))
        .armed(true)
        .no_guard()
        .build()
        .unwrap();
    let mut svc = layer.layer(ok());
    for _ in 0..10 {
        assert_eq!(
            svc.ready()
                .await
                .unwrap()
                .call(to("search.internal"))
                .await
                .unwrap()
                .status(),
            503
        );
        assert_eq!(
            svc.ready()
                .await
                .unwrap()
                .call(to("billing.internal"))
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let host_header = Request::builder()
        .header("host", "search.internal:8080")
        .body(())
        .unwrap();
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(host_header)
            .await
            .unwrap()
            .status(),
        503
    );
}

#[tokio::test(start_paused = true)]
async fn resource_exhaustion_reports_a_cost_past_the_budget() {
    let layer = ChaosLayer::<Request<()>, Response<Body>>::builder()
        .faults(profiles::http::resource_exhaustion(
            1.0,
            http::HeaderName::from_static("x-tokens-used"),
            2_000_000,
        ))
        .armed(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(ok());
    let res = svc.ready().await.unwrap().call(to("api")).await.unwrap();
    assert_eq!(res.headers()["x-tokens-used"], "2000000");
}

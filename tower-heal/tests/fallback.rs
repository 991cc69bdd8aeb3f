//! Fallback behaviour through the public API.
#![cfg(feature = "http")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Response, StatusCode};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_breaker::{CircuitBreakerLayer, HttpStatus};
use tower_heal::{
    BoxError, DEGRADED_HEADER, Degradable, DegradationLevel, FallbackLayer, FallbackOn, Marked,
};

type Answer = Marked<&'static str>;

fn failing() -> impl Service<u32, Response = Answer, Error = std::io::Error, Future: Send> + Clone {
    service_fn(|_: u32| async { Err::<Answer, _>(std::io::Error::other("down")) })
}

fn answering(
    text: &'static str,
    calls: Arc<AtomicUsize>,
) -> impl Service<u32, Response = Answer, Error = std::io::Error> + Clone {
    service_fn(move |_: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Marked::new(text)) }
    })
}

/// An error whose `source()` is itself: a chain with a cycle.
#[derive(Debug)]
struct Cyclic;

impl std::fmt::Display for Cyclic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cyclic")
    }
}

impl std::error::Error for Cyclic {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self)
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_chain_with_a_cycle_is_judged_without_looping() {
    let primary = service_fn(|_: u32| async { Err::<Answer, _>(Cyclic) });
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(
            "cyclic",
            DegradationLevel::Slight,
            answering("cached", calls),
        ))
        .service(primary);
    let answer = svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(answer.value, "cached");
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_when_the_primary_fails() {
    // A classified failure: an HTTP 503 under `HttpStatus`.
    let fallback = service_fn(|_: u32| async {
        Ok::<_, std::io::Error>(Response::new(String::from("from the local copy")))
    });
    let layer = FallbackLayer::builder("github")
        .classifier(HttpStatus::new())
        .http()
        .build(fallback);
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: u32| async {
            let mut res = Response::new(String::from("unavailable"));
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, std::io::Error>(res)
        });
    let res = svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(*res.body(), "from the local copy");
    assert_eq!(res.degraded().unwrap().level(), DegradationLevel::Slight);
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_when_the_primary_errors() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = FallbackLayer::new(
        "search",
        DegradationLevel::Slight,
        answering("cached", calls.clone()),
    );
    let mut svc = ServiceBuilder::new().layer(layer).service(failing());
    let answer = svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(answer.value, "cached");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_when_a_breaker_rejects() {
    let breaker = CircuitBreakerLayer::builder()
        .name("search")
        .failure_threshold(1)
        .build()
        .unwrap();
    let handle = breaker.handle();
    let primary_calls = Arc::new(AtomicUsize::new(0));
    let primary = {
        let calls = primary_calls.clone();
        service_fn(move |_: u32| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<Answer, _>(std::io::Error::other("down")) }
        })
    };
    // Only rejections: the first call's error passes through, then the open breaker's
    // rejection is answered by the fallback.
    let layer = FallbackLayer::builder("search")
        .on(FallbackOn::NONE.rejection(true))
        .build(answering("cached", Arc::new(AtomicUsize::new(0))));
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .layer(breaker)
        .service(primary);
    let first: Result<Answer, BoxError> = svc.ready().await.unwrap().call(1).await;
    assert!(first.is_err(), "an error is not a rejection");
    assert_eq!(handle.state(), tower_breaker::State::Open);
    let answer = svc.ready().await.unwrap().call(2).await.unwrap();
    assert_eq!(answer.value, "cached");
    assert_eq!(
        primary_calls.load(Ordering::SeqCst),
        1,
        "the breaker refused the second call"
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_is_not_used_when_the_selection_excludes_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = FallbackLayer::builder("search")
        .on(FallbackOn::ALL.error(false))
        .build(answering("cached", calls.clone()));
    let mut svc = ServiceBuilder::new().layer(layer).service(failing());
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(err.to_string(), "down");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn chain_answers_at_the_lowest_level_that_can() {
    let static_calls = Arc::new(AtomicUsize::new(0));
    let chain = |cache_up: bool| {
        let cache = service_fn(move |_: u32| async move {
            if cache_up {
                Ok(Marked::new("cache"))
            } else {
                Err(std::io::Error::other("cache down"))
            }
        });
        FallbackLayer::builder("metrics")
            .chain(DegradationLevel::Slight, cache)
            .then(
                DegradationLevel::Minimal,
                answering("static", static_calls.clone()),
            )
            .build()
    };

    // Live answers: level 0, no marker, no fallback called.
    let mut live_up = ServiceBuilder::new()
        .layer(chain(true))
        .service(answering("live", Arc::new(AtomicUsize::new(0))));
    let answer = live_up.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!((answer.value, answer.degraded()), ("live", None));

    // Live down, cache up: level 1, and the static stage is not called.
    let mut cache_up = ServiceBuilder::new().layer(chain(true)).service(failing());
    let answer = cache_up.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(answer.value, "cache");
    assert_eq!(answer.degraded().unwrap().level(), DegradationLevel::Slight);
    assert_eq!(static_calls.load(Ordering::SeqCst), 0);

    // Live and cache down: level 3 from the static stage, never straight to 4.
    let mut cache_down = ServiceBuilder::new().layer(chain(false)).service(failing());
    let answer = cache_down.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(answer.value, "static");
    assert_eq!(
        answer.degraded().unwrap().level(),
        DegradationLevel::Minimal
    );
    assert_eq!(answer.degraded().unwrap().component(), "metrics");
}

#[tokio::test(start_paused = true)]
async fn every_stage_down_returns_the_primary_failure() {
    let down =
        service_fn(|_: u32| async { Err::<Answer, _>(std::io::Error::other("fallback down")) });
    let layer = FallbackLayer::new("metrics", DegradationLevel::Slight, down);
    let mut svc = ServiceBuilder::new().layer(layer).service(failing());
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "down",
        "the primary's error, not the fallback's"
    );
}

#[tokio::test(start_paused = true)]
async fn degraded_marker_and_header_are_set() {
    let fallback = service_fn(|_: u32| async {
        Ok::<_, std::io::Error>(Response::new(String::from("static")))
    });
    let layer = FallbackLayer::builder("reports")
        .level(DegradationLevel::Minimal)
        .http()
        .build(fallback);
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: u32| async { Err::<Response<String>, _>(std::io::Error::other("down")) });
    let res = svc.ready().await.unwrap().call(1).await.unwrap();
    let marker = res.degraded().unwrap();
    assert_eq!(marker.component(), "reports");
    assert_eq!(marker.level(), DegradationLevel::Minimal);
    assert_eq!(res.headers()[DEGRADED_HEADER], "reports; level=3");

    // Without `.http()` the extension is set, the header is not.
    let fallback = service_fn(|_: u32| async {
        Ok::<_, std::io::Error>(Response::new(String::from("static")))
    });
    let mut plain = ServiceBuilder::new()
        .layer(FallbackLayer::new(
            "reports",
            DegradationLevel::Minimal,
            fallback,
        ))
        .service_fn(|_: u32| async { Err::<Response<String>, _>(std::io::Error::other("down")) });
    let res = plain.ready().await.unwrap().call(1).await.unwrap();
    assert!(res.degraded().is_some());
    assert!(res.headers().get(DEGRADED_HEADER).is_none());
}

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_future_cancels_the_fallback() {
    let started = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let fallback = {
        let (started, dropped) = (started.clone(), dropped.clone());
        service_fn(move |_: u32| {
            started.fetch_add(1, Ordering::SeqCst);
            let guard = DropFlag(dropped.clone());
            async move {
                let _guard = guard;
                std::future::pending::<Result<Answer, std::io::Error>>().await
            }
        })
    };
    let layer = FallbackLayer::new("search", DegradationLevel::Slight, fallback);
    let mut svc = ServiceBuilder::new().layer(layer).service(failing());
    let mut fut = tokio_test::task::spawn(svc.ready().await.unwrap().call(1));
    assert!(fut.poll().is_pending());
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(fut);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the fallback call was dropped with the future"
    );
}

/// Regression (found composing the family's stack): `LastGood::record` kept any `Ok`
/// response, so an HTTP 503 returned by the live service (after a retry gave up) replaced the
/// good answer kept before, and the cache then served the 503 instead.
#[tokio::test(start_paused = true)]
async fn last_good_keeps_only_good_http_answers() {
    use tower_heal::LastGood;

    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let live = {
        let up = up.clone();
        service_fn(move |_: &'static str| {
            let up = up.load(Ordering::SeqCst);
            async move {
                let mut answer = Response::new(if up { "fresh" } else { "down" });
                if !up {
                    *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                }
                Ok::<_, BoxError>(answer)
            }
        })
    };
    let cache = LastGood::new(10, |key: &&'static str| *key);
    let mut svc = ServiceBuilder::new()
        .layer(
            FallbackLayer::builder("catalog")
                .classifier(HttpStatus::new())
                .build(cache.clone()),
        )
        .layer(cache.record())
        .service(live);

    let fresh = svc.ready().await.unwrap().call("a").await.unwrap();
    assert_eq!(*fresh.body(), "fresh");
    up.store(false, Ordering::SeqCst);
    for _ in 0..2 {
        let stale = svc.ready().await.unwrap().call("a").await.unwrap();
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(*stale.body(), "fresh");
        assert_eq!(stale.degraded().unwrap().level(), DegradationLevel::Slight);
    }
    // A key only ever answered 503 is not kept at all.
    let missing = svc.ready().await.unwrap().call("b").await.unwrap();
    assert_eq!(missing.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(cache.len(), 1);
}

/// A fallback over a plain `u32` and over a user struct, no `Marked` wrapper. Seen failing
/// before the fix: neither compiled (`u32: Degradable` was not satisfied).
#[tokio::test]
async fn a_fallback_works_over_plain_response_types() {
    use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
    use tower_heal::{Degradable, DegradationLevel, FallbackLayer};

    let mut numbers = ServiceBuilder::new()
        .layer(FallbackLayer::new(
            "numbers",
            DegradationLevel::Minimal,
            service_fn(|_: u32| async { Ok::<u32, std::io::Error>(0) }),
        ))
        .service_fn(|n: u32| async move {
            if n == 0 {
                Err(std::io::Error::other("down"))
            } else {
                Ok(n * 10)
            }
        });
    assert_eq!(numbers.ready().await.unwrap().call(4).await.unwrap(), 40);
    assert_eq!(numbers.ready().await.unwrap().call(0).await.unwrap(), 0);

    #[derive(Clone, Debug, PartialEq)]
    struct Forecast {
        summary: String,
    }
    impl Degradable for Forecast {}
    let mut weather = ServiceBuilder::new()
        .layer(FallbackLayer::new(
            "weather",
            DegradationLevel::Minimal,
            service_fn(|_: &'static str| async {
                Ok::<_, std::io::Error>(Forecast {
                    summary: "unknown".into(),
                })
            }),
        ))
        .service_fn(|_: &'static str| async { Err::<Forecast, _>(std::io::Error::other("down")) });
    let answer = weather.ready().await.unwrap().call("Oslo").await.unwrap();
    assert_eq!(answer.summary, "unknown");
    assert!(
        answer.degraded().is_none(),
        "unmarked: the type has no room"
    );
}

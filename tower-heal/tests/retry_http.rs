//! The retry layer over HTTP: status classes, Retry-After, the idempotency gate, body replay.

mod support;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use tower::ServiceBuilder;
use tower_heal::{Backoff, Class, ClassPolicy, HttpClasses, Jitter, RetryLayer};

use support::{Http, Script, call, status, with};

fn get() -> http::Request<()> {
    http::Request::get("/").body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn five_503s_back_off_exponentially() {
    let script = Script::new([
        status(503),
        status(503),
        status(503),
        status(503),
        status(503),
        status(200),
    ]);
    let layer = RetryLayer::builder()
        .http_client()
        .policy(
            Class::API_ERRORS_5XX,
            ClassPolicy::new(
                5,
                Backoff::exponential(Duration::from_secs(1))
                    .max_delay(Duration::from_secs(60))
                    .jitter(Jitter::None),
            ),
        )
        .no_budget()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(Http(script.clone()));
    let res = call(&mut svc, get()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(script.gaps_ms(), [1000, 2000, 4000, 8000, 16000]);
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_7_waits_exactly_7_seconds() {
    // Full jitter on the computed delay must not touch a server's Retry-After: never early.
    let layer = RetryLayer::builder()
        .http_client()
        .jitter(Jitter::Full)
        .build()
        .unwrap();
    for _ in 0..20 {
        let script = Script::new([with(429, "retry-after", "7"), status(200)]);
        let mut svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(Http(script.clone()));
        let res = call(&mut svc, get()).await.unwrap();
        assert_eq!(res.status(), 200);
        let gaps = script.gaps();
        assert_eq!(gaps.len(), 1);
        // Exactly 7 s on the paused clock: never early, not even by a millisecond.
        assert_eq!(gaps[0], Duration::from_secs(7));
    }
}

fn fixed_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777) // Sun, 06 Nov 1994 08:49:37 GMT
}

#[tokio::test(start_paused = true)]
async fn a_429_with_an_http_date_waits_until_that_date() {
    let script = Script::new([
        with(429, "retry-after", "Sun, 06 Nov 1994 08:50:07 GMT"),
        status(200),
    ]);
    let layer = RetryLayer::builder()
        .http_client()
        .classifier(HttpClasses::new().wall_clock(fixed_now))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(Http(script.clone()));
    assert_eq!(call(&mut svc, get()).await.unwrap().status(), 200);
    let gaps = script.gaps();
    assert!(gaps[0] >= Duration::from_secs(30) && gaps[0] < Duration::from_millis(30_002));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_max_retry_after_returns_the_429() {
    let script = Script::new([with(429, "retry-after", "3600"), status(200)]);
    let mut svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .http_client()
                .max_retry_after(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .service(Http(script.clone()));
    assert_eq!(call(&mut svc, get()).await.unwrap().status(), 429);
    assert_eq!(script.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_validation_error_is_never_retried() {
    for code in [400, 422] {
        let script = Script::new([status(code), status(200)]);
        let mut svc = ServiceBuilder::new()
            .layer(
                RetryLayer::builder()
                    .http_client()
                    .max_retries(5)
                    .build()
                    .unwrap(),
            )
            .service(Http(script.clone()));
        assert_eq!(call(&mut svc, get()).await.unwrap().status(), code);
        assert_eq!(script.count(), 1, "{code}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_post_without_idempotency_key_is_not_retried_with_one_it_is() {
    let script = Script::new([status(503), status(200)]);
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().http_client().build().unwrap())
        .service(Http(script.clone()));
    let post = http::Request::post("/charge").body(()).unwrap();
    assert_eq!(call(&mut svc, post).await.unwrap().status(), 503);
    assert_eq!(script.count(), 1);

    let script = Script::new([status(503), status(200)]);
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().http_client().build().unwrap())
        .service(Http(script.clone()));
    let keyed = http::Request::post("/charge")
        .header("idempotency-key", "order-42")
        .body(())
        .unwrap();
    assert_eq!(call(&mut svc, keyed).await.unwrap().status(), 200);
    assert_eq!(script.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_family_rejection_answer_is_waited_out_when_it_fits() {
    use tower_heal::Rejected;
    use tower_heal::{LayerKind, Reason};
    let script = Script::new([status(200)]);
    let inner_script = script.clone();
    let mut first = true;
    let svc = tower::service_fn(move |_req: http::Request<()>| {
        let answer = if std::mem::take(&mut first) {
            Rejected::new(LayerKind::Bulkhead, Reason::BulkheadFull)
                .with_retry_after(Duration::from_secs(2))
                .http_response()
        } else {
            http::Response::new(())
        };
        inner_script.next();
        async move { Ok::<_, std::io::Error>(answer) }
    });
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().http_client().build().unwrap())
        .service(svc);
    assert_eq!(call(&mut svc, get()).await.unwrap().status(), 200);
    assert_eq!(script.gaps_ms(), [2000]);
}

/// A body streamed in three 10-byte chunks.
type Frames = std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::io::Error>>;

fn streamed() -> StreamBody<tokio_stream::Iter<Frames>> {
    let chunks = (0..3)
        .map(|i| Ok(http_body::Frame::data(Bytes::from(vec![b'a' + i; 10]))))
        .collect::<Vec<_>>();
    StreamBody::new(tokio_stream::iter(chunks))
}

#[tokio::test(start_paused = true)]
async fn body_replay_retries_a_streamed_body_under_the_bound() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Bytes>::new()));
    let record = seen.clone();
    let inner = tower::service_fn(move |req: http::Request<tower_heal::ReplayBody<_>>| {
        let record = record.clone();
        async move {
            let body: Bytes = req.into_body().collect().await?.to_bytes();
            let first = {
                let mut seen = record.lock().unwrap();
                seen.push(body);
                seen.len() == 1
            };
            let status = if first { 503 } else { 200 };
            Ok::<_, std::io::Error>(http::Response::builder().status(status).body(()).unwrap())
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .http_client()
                .replay_bodies(64)
                .build()
                .unwrap(),
        )
        .service(inner);
    let request = http::Request::put("/upload").body(streamed()).unwrap();
    assert_eq!(call(&mut svc, request).await.unwrap().status(), 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "retried once");
    assert_eq!(seen[0].len(), 30);
    assert_eq!(seen[0], seen[1], "the same body, replayed");
}

#[tokio::test(start_paused = true)]
async fn body_replay_does_not_retry_a_body_over_the_bound() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = calls.clone();
    let inner = tower::service_fn(move |req: http::Request<tower_heal::ReplayBody<_>>| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            assert_eq!(body.len(), 30, "the whole body went through");
            Ok::<_, std::io::Error>(http::Response::builder().status(503).body(()).unwrap())
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .http_client()
                .replay_bodies(16)
                .build()
                .unwrap(),
        )
        .service(inner);
    let request = http::Request::put("/upload").body(streamed()).unwrap();
    assert_eq!(call(&mut svc, request).await.unwrap().status(), 503);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn body_replay_continues_a_body_the_first_attempt_did_not_read() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Bytes>::new()));
    let record = seen.clone();
    let inner = tower::service_fn(move |req: http::Request<tower_heal::ReplayBody<_>>| {
        let record = record.clone();
        async move {
            let mut body = req.into_body();
            let first = record.lock().unwrap().is_empty();
            if first {
                // Read one chunk, then fail without reading the rest.
                let chunk = body.frame().await.unwrap()?.into_data().unwrap();
                record.lock().unwrap().push(chunk);
                return Ok(http::Response::builder().status(503).body(()).unwrap());
            }
            let all = body.collect().await?.to_bytes();
            record.lock().unwrap().push(all);
            Ok::<_, std::io::Error>(http::Response::new(()))
        }
    });
    let mut svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .http_client()
                .replay_bodies(64)
                .build()
                .unwrap(),
        )
        .service(inner);
    let request = http::Request::put("/upload").body(streamed()).unwrap();
    assert_eq!(call(&mut svc, request).await.unwrap().status(), 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].len(), 10);
    assert_eq!(
        seen[1].len(),
        30,
        "buffered chunk replayed, then the rest read"
    );
    assert_eq!(&seen[1][..10], &seen[0][..]);
}

/// RFC 9111 §1.2.2: a `Retry-After` too large to parse is very large, beyond
/// `max_retry_after`, so the 503 is returned without retry. Seen failing before the fix: it
/// was retried after the layer's own back-off.
#[tokio::test(start_paused = true)]
async fn a_retry_after_too_large_to_parse_stops_the_retries() {
    let script = Script::new([
        with(503, "retry-after", "184467440737095516160"),
        status(200),
    ]);
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().http_client().seed(1).build().unwrap())
        .service(Http(script.clone()));
    let start = tokio::time::Instant::now();
    assert_eq!(call(&mut svc, get()).await.unwrap().status(), 503);
    assert_eq!(script.count(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_http_client_preset_keeps_settings_set_before_it_and_the_old_name_agrees() {
    // Settings set before the preset stay; only the classifier, gate and replay change.
    let layer = RetryLayer::builder()
        .name("billing")
        .max_retries(1)
        .http_client()
        .no_budget()
        .build()
        .unwrap();
    assert_eq!(layer.name(), "billing");
    let script = Script::new([status(503), status(503), status(200)]);
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service(Http(script.clone()));
    let res = call(&mut svc, get()).await.unwrap();
    assert_eq!(res.status(), 503, "one retry, then the last answer");
    assert_eq!(script.gaps().len(), 1);

    #[allow(deprecated)]
    let old = RetryLayer::http().no_budget().build().unwrap();
    let script = Script::new([status(503), status(200)]);
    let mut svc = ServiceBuilder::new()
        .layer(old)
        .service(Http(script.clone()));
    assert_eq!(call(&mut svc, get()).await.unwrap().status(), 200);
}

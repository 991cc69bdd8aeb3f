//! Idempotency keys through the public API.
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_heal::idempotency::REPLAYED_HEADER;
use tower_heal::store::{MemoryStore, ResultStore};
use tower_heal::{BoxError, IdempotencyLayer, Rejected};

type Body = Full<Bytes>;

fn post(key: Option<&str>, body: &'static str) -> Request<Body> {
    let mut req = Request::post("/charges");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn text<B: http_body::Body<Data = Bytes, Error: std::fmt::Debug>>(
    res: Response<B>,
) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A handler that takes a second, counts its runs, and answers with the run number, or with
/// 500 for the runs listed in `fail`.
fn handler(
    runs: Arc<AtomicUsize>,
    fail: &'static [usize],
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |req: Request<Body>| {
        let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut res = Response::new(Full::new(Bytes::from(format!(
                "run {run} for {}",
                String::from_utf8_lossy(&body)
            ))));
            if fail.contains(&run) {
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            Ok(res)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn two_concurrent_posts_with_one_key_run_the_handler_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .service(handler(runs.clone(), &[]));
    let (a, b) = tokio::join!(
        svc.clone().oneshot(post(Some("order-1"), "amount=100")),
        svc.clone().oneshot(post(Some("order-1"), "amount=100")),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    let replayed = [&a, &b]
        .iter()
        .filter(|res| res.headers().contains_key(REPLAYED_HEADER))
        .count();
    assert_eq!(replayed, 1, "the duplicate got the stored answer");
    assert_eq!(text(a).await, "run 1 for amount=100");
    assert_eq!(text(b).await, "run 1 for amount=100");
}

#[tokio::test(start_paused = true)]
async fn a_reused_key_with_another_body_gets_422() {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .service(handler(runs.clone(), &[]));
    let first = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("order-2"), "amount=100"))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let reused = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("order-2"), "amount=999"))
        .await
        .unwrap();
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_call_is_not_replayed() {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .service(handler(runs.clone(), &[1]));
    let first = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("order-3"), "x"))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let retry = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("order-3"), "x"))
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert!(!retry.headers().contains_key(REPLAYED_HEADER));
    assert_eq!(text(retry).await, "run 2 for x");
    // The success is stored now.
    let again = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("order-3"), "x"))
        .await
        .unwrap();
    assert!(again.headers().contains_key(REPLAYED_HEADER));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_waiting_on_a_failed_call_runs_itself() {
    let runs = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .service(handler(runs.clone(), &[1]));
    let (a, b) = tokio::join!(
        svc.clone().oneshot(post(Some("order-4"), "x")),
        svc.clone().oneshot(post(Some("order-4"), "x")),
    );
    let mut statuses = [a.unwrap().status(), b.unwrap().status()];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::INTERNAL_SERVER_ERROR]
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_first_call_releases_the_key() {
    let runs = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .service(handler(runs.clone(), &[]));
    let mut first = tokio_test::task::spawn(svc.clone().oneshot(post(Some("order-5"), "x")));
    assert!(first.poll().is_pending());
    drop(first);
    let res = svc
        .clone()
        .oneshot(post(Some("order-5"), "x"))
        .await
        .unwrap();
    assert_eq!(text(res).await, "run 2 for x");
}

#[tokio::test(start_paused = true)]
async fn stored_responses_expire_after_the_ttl() {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(
            IdempotencyLayer::http()
                .ttl(Duration::from_secs(60))
                .build(),
        )
        .service(handler(runs.clone(), &[]));
    svc.ready()
        .await
        .unwrap()
        .call(post(Some("order-6"), "x"))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    let replay = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("order-6"), "x"))
        .await
        .unwrap();
    assert!(replay.headers().contains_key(REPLAYED_HEADER));
    tokio::time::advance(Duration::from_secs(31)).await;
    let fresh = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("order-6"), "x"))
        .await
        .unwrap();
    assert!(!fresh.headers().contains_key(REPLAYED_HEADER));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_store_is_bounded_in_entries() {
    let store = Arc::new(MemoryStore::new(3, 1 << 20));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().store(store.clone()).build())
        .service(handler(runs.clone(), &[]));
    for key in ["a", "b", "c", "d", "e"] {
        svc.ready()
            .await
            .unwrap()
            .call(post(Some(key), "x"))
            .await
            .unwrap();
    }
    assert_eq!(store.len(), 3);
    assert!(
        store.get("idem:a").unwrap().is_none(),
        "the oldest went first"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_without_a_key_and_malformed_keys() {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().max_request_bytes(8).build())
        .service(handler(runs.clone(), &[]));
    for _ in 0..2 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(post(None, "x"))
            .await
            .unwrap();
        assert!(!res.headers().contains_key(REPLAYED_HEADER));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2, "no key: every request runs");
    let long = "k".repeat(300);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some(&long), "x"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("big"), "123456789"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_key_function_for_services_that_are_not_http() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    // Requests are (key, amount); responses are receipt numbers.
    let layer = IdempotencyLayer::keyed(
        |req: &(String, u32)| Some((req.0.clone(), u64::from(req.1))),
        |receipt: &u64| Some(receipt.to_le_bytes().to_vec()),
        |bytes: &[u8]| Some(u64::from_le_bytes(bytes.try_into().ok()?)),
    )
    .build();
    let mut svc =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(move |_: (String, u32)| {
                let n = counter.fetch_add(1, Ordering::SeqCst) as u64 + 1000;
                async move { Ok::<_, BoxError>(n) }
            }));
    let a = svc
        .ready()
        .await
        .unwrap()
        .call(("k".into(), 5))
        .await
        .unwrap();
    let b = svc
        .ready()
        .await
        .unwrap()
        .call(("k".into(), 5))
        .await
        .unwrap();
    assert_eq!((a, b), (1000, 1000));
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(("k".into(), 6))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Rejected>().is_some());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[cfg(feature = "sqlite")]
#[tokio::test(start_paused = true)]
async fn the_sqlite_store_replays_after_a_restart() {
    use tower_heal::store::SqliteStore;
    let dir = std::env::temp_dir().join(format!("tower-heal-idem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("idem.db");
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        // A new layer and a new store on the same file: a restarted process.
        let mut svc = ServiceBuilder::new()
            .layer(
                IdempotencyLayer::http()
                    .store(SqliteStore::open(&path).unwrap())
                    .build(),
            )
            .service(handler(runs.clone(), &[]));
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(post(Some("order-7"), "x"))
            .await
            .unwrap();
        assert_eq!(text(res).await, "run 1 for x");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

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
use tower_heal::store::MemoryStore;
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
    // The oldest went first: "a" runs again, "e" is replayed.
    let a = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("a"), "x"))
        .await
        .unwrap();
    assert!(!a.headers().contains_key(REPLAYED_HEADER));
    let e = svc
        .ready()
        .await
        .unwrap()
        .call(post(Some("e"), "x"))
        .await
        .unwrap();
    assert!(e.headers().contains_key(REPLAYED_HEADER));
    assert_eq!(runs.load(Ordering::SeqCst), 6);
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
    let layer = IdempotencyLayer::from_fn(
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

type Boxed = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// A body of `frames` frames of 1 KiB, each ready at once, counting the frames pulled.
struct Counted {
    left: usize,
    pulled: Arc<AtomicUsize>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        self.pulled.fetch_add(1, Ordering::SeqCst);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(vec![
            b'x';
            1024
        ])))))
    }
}

#[tokio::test(start_paused = true)]
async fn a_large_response_is_not_buffered_passes_through_and_marks_its_key() {
    let runs = Arc::new(AtomicUsize::new(0));
    let pulled = Arc::new(AtomicUsize::new(0));
    let (r, p) = (runs.clone(), pulled.clone());
    let svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().max_response_bytes(4096).build())
        .service(service_fn(move |_: Request<Body>| {
            r.fetch_add(1, Ordering::SeqCst);
            let body = Counted {
                left: 1000,
                pulled: p.clone(),
            };
            async move { Ok::<_, Infallible>(Response::new(Boxed::new(body))) }
        }));
    let res = svc.clone().oneshot(post(Some("big"), "x")).await.unwrap();
    assert!(
        pulled.load(Ordering::SeqCst) <= 5,
        "at most max_response_bytes read before the response is handed on, not 1000 KiB"
    );
    assert_eq!(
        text(res).await.len(),
        1000 * 1024,
        "the whole body passes through"
    );
    // A retry gets a clear answer, and the handler does not run twice.
    let retry = svc.clone().oneshot(post(Some("big"), "x")).await.unwrap();
    assert_eq!(retry.status(), StatusCode::CONFLICT);
    assert!(text(retry).await.contains("not replayed"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

type Sender = Arc<
    std::sync::Mutex<
        Option<tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, Infallible>>>,
    >,
>;

/// A handler whose body streams from a channel the test holds; other paths answer at once.
fn streaming(
    runs: Arc<AtomicUsize>,
    sender: Sender,
) -> impl Service<Request<Body>, Response = Response<Boxed>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |req: Request<Body>| {
        runs.fetch_add(1, Ordering::SeqCst);
        let body = if req.uri().path() == "/events" {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            tx.try_send(Ok(http_body::Frame::data(Bytes::from_static(
                b"data: 1\n\n",
            ))))
            .unwrap();
            *sender.lock().unwrap() = Some(tx);
            Boxed::new(http_body_util::StreamBody::new(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
        } else {
            Boxed::new(Full::new(Bytes::from_static(b"quick")))
        };
        async move { Ok::<_, Infallible>(Response::new(body)) }
    })
}

fn events(key: &str) -> Request<Body> {
    Request::post("/events")
        .header("idempotency-key", key)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_delivers_what_it_has_and_is_stored_when_it_ends() {
    let runs = Arc::new(AtomicUsize::new(0));
    let sender = Arc::default();
    let svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .service(streaming(runs.clone(), Arc::clone(&sender)));
    let res = tokio::time::timeout(Duration::from_secs(5), svc.clone().oneshot(events("sse")))
        .await
        .expect("the response is handed on while its stream stalls")
        .unwrap();
    let mut body = res.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("what the stream has is delivered")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: 1\n\n");
    let tx = sender.lock().unwrap().take().unwrap();
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(
        b"data: 2\n\n",
    ))))
    .await
    .unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "data: 2\n\n");
    // Ended within max_response_bytes: stored whole, replayed to a duplicate.
    let replay = svc.clone().oneshot(events("sse")).await.unwrap();
    assert!(replay.headers().contains_key(REPLAYED_HEADER));
    assert_eq!(text(replay).await, "data: 1\n\ndata: 2\n\n");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_duplicate_times_out_and_holds_no_downstream_slot() {
    let runs = Arc::new(AtomicUsize::new(0));
    let sender = Arc::default();
    let svc = ServiceBuilder::new()
        .layer(
            IdempotencyLayer::http()
                .max_wait(Duration::from_secs(3))
                .build(),
        )
        .concurrency_limit(1)
        .service(streaming(runs.clone(), Arc::clone(&sender)));
    // The first call's stream is open: its key is held.
    let first = svc.clone().oneshot(events("sse")).await.unwrap();
    // A duplicate waits for it...
    let mut duplicate = tokio_test::task::spawn(svc.clone().oneshot(events("sse")));
    assert!(duplicate.poll().is_pending());
    // ...without keeping the one downstream slot: another caller gets through.
    let other = tokio::time::timeout(
        Duration::from_secs(1),
        svc.clone().oneshot(post(Some("other"), "x")),
    )
    .await
    .expect("the waiting duplicate holds no slot")
    .unwrap();
    assert_eq!(text(other).await, "quick");
    // The duplicate is answered 409 after max_wait.
    tokio::time::advance(Duration::from_secs(3)).await;
    let res = match duplicate.poll() {
        std::task::Poll::Ready(res) => res.unwrap(),
        std::task::Poll::Pending => panic!("max_wait bounds the wait"),
    };
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the duplicate did not run");
    drop(first);
}

fn as_caller(mut req: Request<Body>, auth: &'static str) -> Request<Body> {
    req.headers_mut()
        .insert("authorization", http::HeaderValue::from_static(auth));
    req
}

#[tokio::test(start_paused = true)]
async fn another_caller_with_the_same_key_gets_its_own_run() {
    let runs = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .service(handler(runs.clone(), &[]));
    let alice = svc
        .clone()
        .oneshot(as_caller(post(Some("order-9"), "x"), "Bearer alice"))
        .await
        .unwrap();
    assert_eq!(text(alice).await, "run 1 for x");
    let bob = svc
        .clone()
        .oneshot(as_caller(post(Some("order-9"), "x"), "Bearer bob"))
        .await
        .unwrap();
    assert!(!bob.headers().contains_key(REPLAYED_HEADER));
    assert_eq!(text(bob).await, "run 2 for x", "never alice's answer");
    let again = svc
        .clone()
        .oneshot(as_caller(post(Some("order-9"), "x"), "Bearer alice"))
        .await
        .unwrap();
    assert_eq!(text(again).await, "run 1 for x", "alice's own replay");
    // The same with a cookie, and with the scope turned off.
    let shared = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().scope_headers([]).build())
        .service(handler(Arc::default(), &[]));
    shared
        .clone()
        .oneshot(as_caller(post(Some("k"), "x"), "Bearer alice"))
        .await
        .unwrap();
    let replay = shared
        .clone()
        .oneshot(as_caller(post(Some("k"), "x"), "Bearer bob"))
        .await
        .unwrap();
    assert!(replay.headers().contains_key(REPLAYED_HEADER));
}

#[tokio::test(start_paused = true)]
async fn set_cookie_and_per_caller_headers_are_never_replayed() {
    let svc = ServiceBuilder::new()
        .layer(
            IdempotencyLayer::http()
                .unreplayed_headers([http::HeaderName::from_static("x-request-id")])
                .build(),
        )
        .service(service_fn(|_: Request<Body>| async {
            let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
            res.headers_mut().insert(
                "set-cookie",
                http::HeaderValue::from_static("session=alice"),
            );
            res.headers_mut()
                .insert("x-request-id", http::HeaderValue::from_static("r-1"));
            res.headers_mut()
                .insert("x-order", http::HeaderValue::from_static("42"));
            Ok::<_, Infallible>(res)
        }));
    let first = svc.clone().oneshot(post(Some("c"), "x")).await.unwrap();
    assert_eq!(
        first.headers()["set-cookie"],
        "session=alice",
        "the caller's own"
    );
    let replay = svc.clone().oneshot(post(Some("c"), "x")).await.unwrap();
    assert!(replay.headers().contains_key(REPLAYED_HEADER));
    assert!(!replay.headers().contains_key("set-cookie"));
    assert!(!replay.headers().contains_key("x-request-id"));
    assert_eq!(replay.headers()["x-order"], "42");
}

/// A request body that arrives from a channel, or is whole.
enum Upload {
    Whole(Option<Bytes>),
    Arriving(tokio::sync::mpsc::Receiver<Bytes>),
}

impl From<Bytes> for Upload {
    fn from(data: Bytes) -> Self {
        Self::Whole(Some(data))
    }
}

impl http_body::Body for Upload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Whole(data) => {
                std::task::Poll::Ready(data.take().map(|d| Ok(http_body::Frame::data(d))))
            }
            Self::Arriving(rx) => rx
                .poll_recv(cx)
                .map(|d| d.map(|d| Ok(http_body::Frame::data(d)))),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_body_still_arriving_holds_no_downstream_slot() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .concurrency_limit(1)
        .service(service_fn(move |_: Request<Upload>| {
            r.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
        }));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let slow = Request::post("/upload")
        .header("idempotency-key", "slow")
        .body(Upload::Arriving(rx))
        .unwrap();
    let mut slow = tokio_test::task::spawn(svc.clone().oneshot(slow));
    assert!(slow.poll().is_pending(), "the upload is still arriving");
    let quick = Request::post("/other")
        .header("idempotency-key", "quick")
        .body(Upload::from(Bytes::from_static(b"x")))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(1), svc.clone().oneshot(quick))
        .await
        .expect("the slow upload holds no slot")
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    tx.send(Bytes::from_static(b"part")).await.unwrap();
    drop(tx);
    let res = slow.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_dropped_before_its_end_releases_the_key() {
    let runs = Arc::new(AtomicUsize::new(0));
    let sender = Arc::default();
    let svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .service(streaming(runs.clone(), Arc::clone(&sender)));
    let res = svc.clone().oneshot(events("drop")).await.unwrap();
    let mut body = res.into_body();
    // Cancelled at each stage: before the first frame is read, then after it.
    let _ = body.frame().await;
    drop(body);
    // Nothing stored, nothing marked: the retry runs itself, and does not wait.
    let retry = tokio::time::timeout(Duration::from_secs(1), svc.clone().oneshot(events("drop")))
        .await
        .expect("the key was released")
        .unwrap();
    assert!(!retry.headers().contains_key(REPLAYED_HEADER));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// A body of endless empty frames, or of one data frame and trailers.
enum Odd {
    Endless,
    WithTrailers(u8),
}

impl http_body::Body for Odd {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let frame = match &mut *self {
            Self::Endless => Some(http_body::Frame::data(Bytes::new())),
            Self::WithTrailers(step) => {
                *step += 1;
                match *step {
                    1 => Some(http_body::Frame::data(Bytes::from_static(b"body"))),
                    2 => {
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        Some(http_body::Frame::trailers(trailers))
                    }
                    _ => None,
                }
            }
        };
        std::task::Poll::Ready(frame.map(Ok))
    }
}

#[tokio::test(start_paused = true)]
async fn endless_empty_frames_and_trailers_pass_through_unstored() {
    let svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().build())
        .service(service_fn(|req: Request<Body>| async move {
            let body = if req.uri().path() == "/endless" {
                Odd::Endless
            } else {
                Odd::WithTrailers(0)
            };
            Ok::<_, Infallible>(Response::new(body))
        }));
    let endless = Request::post("/endless")
        .header("idempotency-key", "e")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(1), svc.clone().oneshot(endless))
        .await
        .expect("handed on, not read forever")
        .unwrap();
    drop(res);
    let trailed = || {
        Request::post("/trailers")
            .header("idempotency-key", "t")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let res = svc.clone().oneshot(trailed()).await.unwrap();
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "body");
    let retry = svc.clone().oneshot(trailed()).await.unwrap();
    assert_eq!(
        retry.status(),
        StatusCode::CONFLICT,
        "trailers cannot be replayed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_call_cancelled_at_any_poll_never_holds_its_key() {
    for polls in 0..4 {
        let runs = Arc::new(AtomicUsize::new(0));
        let svc = ServiceBuilder::new()
            .layer(IdempotencyLayer::http().build())
            .service(handler(runs.clone(), &[]));
        let mut first = tokio_test::task::spawn(svc.clone().oneshot(post(Some("k"), "x")));
        for _ in 0..polls {
            if first.poll().is_ready() {
                break;
            }
            tokio::time::advance(Duration::from_millis(400)).await;
        }
        drop(first);
        // The next call with the key never waits for the cancelled one.
        let res = tokio::time::timeout(
            Duration::from_secs(2),
            svc.clone().oneshot(post(Some("k"), "x")),
        )
        .await
        .expect("the key is free")
        .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "after {polls} polls");
    }
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_of_a_service_that_is_not_http_times_out_with_a_rejection() {
    let layer = IdempotencyLayer::from_fn(
        |req: &u32| Some((req.to_string(), 0)),
        |res: &u32| Some(res.to_le_bytes().to_vec()),
        |b: &[u8]| Some(u32::from_le_bytes(b.try_into().ok()?)),
    )
    .max_wait(Duration::from_secs(2))
    .build();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|n: u32| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, BoxError>(n)
        }));
    let mut first = tokio_test::task::spawn(svc.clone().oneshot(7));
    assert!(first.poll().is_pending());
    let err = svc.clone().oneshot(7).await.unwrap_err();
    let rejected = err
        .downcast_ref::<Rejected>()
        .expect("the family's rejection");
    assert!(rejected.to_string().contains("in progress"), "{rejected}");
}

//! What may be sent twice: a failure that may have reached the server is retried only for an
//! idempotent request, with every constructor; gRPC's retries follow its retry design (A6)
//! and its deadline; a zero back-off retries in the same poll.

use std::collections::VecDeque;
use std::future::Future;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_heal::{Backoff, Deadline, Jitter, RetryConfig, RetryLayer};

/// What one attempt answers: a status with headers, or an I/O error of some kind.
type Answer = Result<(u16, Vec<(&'static str, &'static str)>), ErrorKind>;

/// What an attempt was: method, path, `grpc-timeout` header, instant.
type Seen = (http::Method, String, Option<String>, Instant);

/// Answers each attempt with the next scripted answer (the last repeats) and records the
/// attempt's method, path, `grpc-timeout` header and instant.
#[derive(Clone)]
struct Recorder {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    fn new(answers: impl IntoIterator<Item = Answer>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers.into_iter().collect())),
            seen: Arc::default(),
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn timeouts(&self) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.2.clone())
            .collect()
    }
}

impl<B: Send + 'static> Service<http::Request<B>> for Recorder {
    type Response = http::Response<()>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<()>, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .map(|v| v.to_str().unwrap().to_owned());
        self.seen.lock().unwrap().push((
            req.method().clone(),
            req.uri().path().to_owned(),
            timeout,
            Instant::now(),
        ));
        let answer = {
            let mut answers = self.answers.lock().unwrap();
            if answers.len() > 1 {
                answers.pop_front().unwrap()
            } else {
                answers.front().cloned().unwrap()
            }
        };
        Box::pin(async move {
            let (status, headers) = answer.map_err(std::io::Error::from)?;
            let mut res = http::Response::builder().status(status);
            for (name, value) in headers {
                res = res.header(name, value);
            }
            Ok(res.body(()).unwrap())
        })
    }
}

fn ok() -> Answer {
    Ok((200, Vec::new()))
}

fn request(method: http::Method) -> http::Request<String> {
    http::Request::builder()
        .method(method)
        .uri("http://payments/charge")
        .body(String::new())
        .unwrap()
}

async fn send<S, R>(svc: &mut S, req: R) -> Result<S::Response, S::Error>
where
    S: Service<R>,
{
    svc.ready().await?.call(req).await
}

fn config() -> RetryConfig {
    let mut config = RetryConfig::default();
    config.seed = Some(1);
    config.budget = None;
    config
}

/// Seen failing before the fix: the POST that timed out was sent three times.
#[tokio::test(start_paused = true)]
async fn from_config_does_not_send_a_timed_out_post_twice() {
    let backend = Recorder::new([Err(ErrorKind::TimedOut), ok()]);
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::from_config(config()).unwrap())
        .service(backend.clone());
    let err = send(&mut svc, request(http::Method::POST))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(backend.count(), 1, "a POST that timed out is sent once");

    // The same failure of a GET, or of a POST carrying an `Idempotency-Key`, is retried.
    let backend = Recorder::new([Err(ErrorKind::TimedOut), ok()]);
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::from_config(config()).unwrap())
        .service(backend.clone());
    assert!(send(&mut svc, request(http::Method::GET)).await.is_ok());
    let mut keyed = request(http::Method::POST);
    keyed.headers_mut().insert(
        "idempotency-key",
        http::HeaderValue::from_static("order-42"),
    );
    let backend2 = Recorder::new([Err(ErrorKind::TimedOut), ok()]);
    let mut svc2 = ServiceBuilder::new()
        .layer(RetryLayer::from_config(config()).unwrap())
        .service(backend2.clone());
    assert!(send(&mut svc2, keyed).await.is_ok());
    assert_eq!((backend.count(), backend2.count()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn every_constructor_keeps_the_gate_and_a_refused_connection_is_retried() {
    let layers = [
        RetryLayer::new(),
        RetryLayer::builder().seed(1).build().unwrap(),
        RetryLayer::from_config(config()).unwrap(),
    ];
    for layer in layers {
        // A reset connection after the POST went out: sent once.
        let backend = Recorder::new([Err(ErrorKind::ConnectionReset), ok()]);
        let mut svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(backend.clone());
        assert!(send(&mut svc, request(http::Method::POST)).await.is_err());
        assert_eq!(backend.count(), 1);
        // A refused connection never left the client: retried, POST or not.
        let backend = Recorder::new([Err(ErrorKind::ConnectionRefused), ok()]);
        let mut svc = ServiceBuilder::new().layer(layer).service(backend.clone());
        assert!(send(&mut svc, request(http::Method::POST)).await.is_ok());
        assert_eq!(backend.count(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn the_config_may_say_otherwise() {
    let mut config = config();
    config.retry_non_idempotent = true;
    let backend = Recorder::new([Err(ErrorKind::TimedOut), ok()]);
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::from_config(config).unwrap())
        .service(backend.clone());
    assert!(send(&mut svc, request(http::Method::POST)).await.is_ok());
    assert_eq!(backend.count(), 2, "retried as configured");
}

#[tokio::test(start_paused = true)]
async fn services_that_are_not_http_still_retry_timeouts() {
    let attempts = Arc::new(Mutex::new(0));
    let seen = attempts.clone();
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().seed(1).build().unwrap())
        .service_fn(move |n: u32| {
            let attempt = {
                let mut a = seen.lock().unwrap();
                *a += 1;
                *a
            };
            async move {
                if attempt == 1 {
                    Err(std::io::Error::from(ErrorKind::TimedOut))
                } else {
                    Ok(n)
                }
            }
        });
    assert_eq!(send(&mut svc, 7).await.unwrap(), 7);
    assert_eq!(*attempts.lock().unwrap(), 2);
}

fn grpc(path: &'static str) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    http::Request::post(path)
        .header("content-type", "application/grpc")
        .body(http_body_util::Empty::new())
        .unwrap()
}

fn unavailable() -> Answer {
    Ok((200, vec![("grpc-status", "14")]))
}

const CHECK: &str = "/grpc.health.v1.Health/Check";
const CHARGE: &str = "/payments.Payments/Charge";

/// Seen failing before the fix: `RetryLayer::builder().grpc_client()` sent the timed-out `Charge` three times.
#[tokio::test(start_paused = true)]
async fn grpc_retries_a_timeout_only_of_a_method_marked_idempotent() {
    let layer = RetryLayer::builder()
        .grpc_client()
        .idempotent_method(CHECK)
        .seed(1)
        .no_budget()
        .build()
        .unwrap();
    for (path, attempts) in [(CHARGE, 1), (CHECK, 2)] {
        let backend = Recorder::new([Err(ErrorKind::TimedOut), ok()]);
        let mut svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(backend.clone());
        let _ = send(&mut svc, grpc(path)).await;
        assert_eq!(backend.count(), attempts, "{path}");
    }
    // UNAVAILABLE, and an RPC that never left the client, are retried for every method.
    for first in [unavailable(), Err(ErrorKind::ConnectionRefused)] {
        let backend = Recorder::new([first, ok()]);
        let mut svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(backend.clone());
        assert_eq!(send(&mut svc, grpc(CHARGE)).await.unwrap().status(), 200);
        assert_eq!(backend.count(), 2);
    }
}

/// Seen failing before the fix: the pushback of 5 s was slept although the RPC's
/// `grpc-timeout` was 1 s.
#[tokio::test(start_paused = true)]
async fn grpc_timeout_bounds_every_sleep_and_retries_carry_the_time_left() {
    let layer = RetryLayer::builder()
        .grpc_client()
        .seed(1)
        .no_budget()
        .build()
        .unwrap();
    let pushback = |ms: &'static str| {
        Ok((
            200,
            vec![("grpc-status", "14"), ("grpc-retry-pushback-ms", ms)],
        ))
    };
    let backend = Recorder::new([pushback("5000"), ok()]);
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(backend.clone());
    let mut req = grpc(CHARGE);
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("1S"));
    let start = Instant::now();
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no sleep past the deadline"
    );
    assert_eq!(backend.count(), 1);

    // A pushback within the deadline is waited; the retry carries the time left.
    let backend = Recorder::new([pushback("400"), ok()]);
    let mut svc = ServiceBuilder::new().layer(layer).service(backend.clone());
    let mut req = grpc(CHARGE);
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("1000m"));
    assert_eq!(send(&mut svc, req).await.unwrap().status(), 200);
    assert_eq!(
        backend.timeouts(),
        [Some("1000m".to_owned()), Some("600000u".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_extension_bounds_grpc_retries_too() {
    let layer = RetryLayer::builder()
        .grpc_client()
        .delay(Duration::from_millis(300))
        .jitter(Jitter::None)
        .seed(1)
        .no_budget()
        .build()
        .unwrap();
    let backend = Recorder::new([unavailable(), unavailable(), ok()]);
    let mut svc = ServiceBuilder::new().layer(layer).service(backend.clone());
    let mut req = grpc(CHARGE);
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(500)));
    let start = Instant::now();
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(
        backend.count(),
        2,
        "the second back-off would pass the deadline"
    );
    assert!(start.elapsed() <= Duration::from_millis(500));
}

/// A zero back-off retries in the poll that saw the failure, without a timer. Seen failing
/// before the fix: the first poll returned `Pending` (the retry waited for a timer tick).
#[tokio::test]
async fn a_zero_backoff_retries_in_the_same_poll() {
    let attempts = Arc::new(Mutex::new(0));
    let seen = attempts.clone();
    let mut svc = ServiceBuilder::new()
        .layer(
            RetryLayer::builder()
                .max_retries(3)
                .backoff(Backoff::none())
                .build()
                .unwrap(),
        )
        .service_fn(move |n: u32| {
            let attempt = {
                let mut a = seen.lock().unwrap();
                *a += 1;
                *a
            };
            std::future::ready(if attempt < 4 {
                Err(std::io::Error::from(ErrorKind::ConnectionRefused))
            } else {
                Ok(n)
            })
        });
    svc.ready().await.unwrap();
    let mut future = tokio_test::task::spawn(svc.call(5));
    match future.poll() {
        Poll::Ready(result) => assert_eq!(result.unwrap(), 5),
        Poll::Pending => panic!("a zero back-off waited"),
    }
    assert_eq!(*attempts.lock().unwrap(), 4);
}

/// With the HTTP classes and the default gate, a POST answered 504 (it may have run upstream)
/// is sent once; answered 503 (not processed) it is retried.
#[tokio::test(start_paused = true)]
async fn a_post_answered_504_is_not_sent_again_a_503_is() {
    let layer = RetryLayer::builder()
        .classifier(tower_heal::HttpClasses::new())
        .seed(1)
        .no_budget()
        .build()
        .unwrap();
    for (first, attempts) in [(504, 1), (503, 2)] {
        let backend = Recorder::new([Ok((first, Vec::new())), ok()]);
        let mut svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(backend.clone());
        let _ = send(&mut svc, request(http::Method::POST)).await.unwrap();
        assert_eq!(backend.count(), attempts, "{first}");
    }
}

/// Dropping the response future after any number of polls (in an attempt, in a back-off, at
/// a zero back-off) makes no further attempt and releases every copy of the request.
#[tokio::test(start_paused = true)]
async fn a_call_dropped_at_any_poll_releases_its_request() {
    for backoff in [Backoff::fixed(Duration::from_millis(10)), Backoff::none()] {
        for polls in 0..8 {
            let attempts = Arc::new(Mutex::new(0));
            let seen = attempts.clone();
            let mut svc = ServiceBuilder::new()
                .layer(
                    RetryLayer::builder()
                        .max_retries(3)
                        .backoff(backoff)
                        .no_budget()
                        .build()
                        .unwrap(),
                )
                .service_fn(move |token: Arc<u32>| {
                    *seen.lock().unwrap() += 1;
                    async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        drop(token);
                        Err::<u32, _>(std::io::Error::from(ErrorKind::ConnectionRefused))
                    }
                });
            let token = Arc::new(7);
            svc.ready().await.unwrap();
            let mut future = tokio_test::task::spawn(svc.call(Arc::clone(&token)));
            for _ in 0..polls {
                if future.poll().is_ready() {
                    break;
                }
                tokio::time::advance(Duration::from_millis(5)).await;
            }
            drop(future);
            let made = *attempts.lock().unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
            assert_eq!(*attempts.lock().unwrap(), made, "no attempt after the drop");
            assert_eq!(Arc::strong_count(&token), 1, "every copy released");
        }
    }
}

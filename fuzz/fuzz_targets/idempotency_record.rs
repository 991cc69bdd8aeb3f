//! The idempotency layer replaying a stored record: whatever bytes the store holds under a
//! request's key (damaged, truncated, written by another version), the duplicate is answered
//! (from a decodable record) or runs itself, never a panic.
#![no_main]

use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_heal::IdempotencyLayer;
use tower_heal::store::{MemoryStore, Record, ResultStore, StoreError};

/// A memory store that, once armed, answers every read with the fuzzer's bytes under the
/// fingerprint last written.
#[derive(Clone, Default)]
struct Planted {
    inner: Arc<MemoryStore>,
    fingerprint: Arc<Mutex<Option<u64>>>,
    bytes: Arc<Mutex<Option<Vec<u8>>>>,
}

impl ResultStore for Planted {
    fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let planted = self.bytes.lock().unwrap().clone();
        match (planted, *self.fingerprint.lock().unwrap()) {
            (Some(bytes), Some(fingerprint)) => Ok(Some(Record::new(fingerprint, bytes))),
            _ => self.inner.get(key),
        }
    }

    fn put(&self, key: &str, record: Record, ttl: Option<Duration>) -> Result<(), StoreError> {
        *self.fingerprint.lock().unwrap() = Some(record.fingerprint);
        self.inner.put(key, record, ttl)
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.inner.remove(key)
    }
}

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap(),
    );
}

fn request() -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::post("/orders")
        .header("idempotency-key", "order-42")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap()
}

static STORE: OnceLock<Planted> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let store = STORE.get_or_init(Planted::default).clone();
    let mut svc = ServiceBuilder::new()
        .layer(IdempotencyLayer::http().store(store.clone()).build())
        .service(service_fn(|_req: http::Request<_>| async {
            Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"made"),
            )))
        }));
    RUNTIME.with(|rt| {
        rt.borrow().block_on(async {
            // The first call (once) stores a real record, so the fingerprint is known.
            if store.fingerprint.lock().unwrap().is_none() {
                let _ = svc.ready().await.unwrap().call(request()).await;
            }
            *store.bytes.lock().unwrap() = Some(data.to_vec());
            let res = svc.ready().await.unwrap().call(request()).await.unwrap();
            let _ = http_body_util::BodyExt::collect(res.into_body()).await;
            *store.bytes.lock().unwrap() = None;
        });
    });
});

//! The cases of `tower-heal`'s benchmarks (part 2: fallback, recovery, idempotency), shared by
//! the criterion bench `heal_fallback` and the tight-loop driver `heal_per_call`.

use std::future::{Ready, ready};
use std::task::{Context, Poll};

use tower::{Layer, Service};
use tower_heal::store::{MemoryStore, ResultStore};
use tower_heal::{
    BoxError, DegradationLevel, FallbackLayer, IdempotencyLayer, Marked, RecoveryLayer,
};

use crate::Bare;

/// [`Bare`] answering with a [`Marked`] value, the response type a fallback needs: the bare
/// service to read the fallback's figures against.
#[derive(Clone, Copy, Debug, Default)]
pub struct MarkedBare;

impl Service<u64> for MarkedBare {
    type Response = Marked<u64>;
    type Error = std::io::Error;
    type Future = Ready<Result<Marked<u64>, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, n: u64) -> Self::Future {
        if n == u64::MAX {
            ready(Err(std::io::Error::other("down")))
        } else {
            ready(Ok(Marked::new(n)))
        }
    }
}

/// A fallback (to a [`MarkedBare`], level 1) over a [`MarkedBare`]: on the happy path the
/// fallback is never called.
pub fn fallback() -> impl Service<u64, Response = Marked<u64>, Error = BoxError> {
    FallbackLayer::new("bench", DegradationLevel::Slight, MarkedBare).layer(MarkedBare)
}

/// A recovery layer with a hook over [`Bare`].
pub fn recovery_hook() -> impl Service<u64, Response = u64, Error = BoxError> {
    RecoveryLayer::builder()
        .name("bench")
        .hook(|| async { Ok::<_, BoxError>(()) })
        .expect("valid")
        .layer(Bare)
}

/// A recovery layer rebuilding [`Bare`] from a factory.
pub fn recovery_rebuild() -> impl Service<u64, Response = u64, Error = BoxError> {
    RecoveryLayer::builder()
        .name("bench")
        .rebuild(|| async { Ok::<_, BoxError>(Bare) })
        .expect("valid")
        .layer(Bare)
}

/// Idempotency keys over [`Bare`] with every call carrying the same key, so each call after
/// the first is a replay from `store`.
pub fn replay(store: impl ResultStore) -> impl Service<u64, Response = u64, Error = BoxError> {
    IdempotencyLayer::from_fn(
        |_: &u64| Some(("order-12345".to_owned(), 7)),
        |n: &u64| Some(n.to_le_bytes().to_vec()),
        |b: &[u8]| Some(u64::from_le_bytes(b.try_into().ok()?)),
    )
    .store(store)
    .build()
    .layer(Bare)
}

/// [`replay`] with the default in-memory store.
pub fn replay_memory() -> impl Service<u64, Response = u64, Error = BoxError> {
    replay(MemoryStore::default())
}

/// [`replay`] with a SQLite store in a fresh file under the system's temp directory.
///
/// # Panics
/// If the file cannot be created.
pub fn replay_sqlite(tag: &str) -> impl Service<u64, Response = u64, Error = BoxError> {
    let path =
        std::env::temp_dir().join(format!("tower-heal-bench-{tag}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    replay(tower_heal::store::SqliteStore::open(&path).expect("a temp store"))
}

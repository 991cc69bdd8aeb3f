//! Shared pieces of the behaviour tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tower::util::BoxCloneSyncService;

/// An inner service whose calls finish only when the test lets them (`finish(n)`), and which
/// records how many calls (and tokens) it ever had in flight at once.
#[derive(Clone)]
pub struct Gate {
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    pub tokens: Arc<AtomicU64>,
    pub max_tokens: Arc<AtomicU64>,
    pub calls: Arc<AtomicUsize>,
    pub order: Arc<Mutex<Vec<u64>>>,
    release: Arc<Semaphore>,
}

impl Gate {
    pub fn new() -> Self {
        Self {
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
            tokens: Arc::default(),
            max_tokens: Arc::default(),
            calls: Arc::default(),
            order: Arc::default(),
            release: Arc::new(Semaphore::new(0)),
        }
    }

    /// Lets `n` calls finish.
    pub fn finish(&self, n: usize) {
        self.release.add_permits(n);
    }

    /// A service answering its request (its cost) once let through.
    pub fn service(&self) -> BoxCloneSyncService<u64, u64, std::io::Error> {
        let gate = self.clone();
        BoxCloneSyncService::new(tower::service_fn(move |cost: u64| {
            let gate = gate.clone();
            async move {
                gate.calls.fetch_add(1, SeqCst);
                gate.order.lock().unwrap().push(cost);
                let now = gate.in_flight.fetch_add(1, SeqCst) + 1;
                gate.max_in_flight.fetch_max(now, SeqCst);
                let tokens = gate.tokens.fetch_add(cost, SeqCst) + cost;
                gate.max_tokens.fetch_max(tokens, SeqCst);
                gate.release.acquire().await.unwrap().forget();
                gate.tokens.fetch_sub(cost, SeqCst);
                gate.in_flight.fetch_sub(1, SeqCst);
                Ok(cost)
            }
        }))
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(SeqCst)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }
}

/// An always-ready service answering at once.
pub fn instant() -> BoxCloneSyncService<u64, u64, std::io::Error> {
    BoxCloneSyncService::new(tower::service_fn(|cost: u64| async move { Ok(cost) }))
}

pub use test_support::{reason, settle};

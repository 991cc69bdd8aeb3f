//! Helpers the test suites of the family's crates share: driving a service through one call,
//! finding the family's rejection in an error, letting spawned tasks run, and a scripted
//! answer list that records when it was asked, and a real `redis-server` on 127.0.0.1 for the
//! fleet tests ([`redis_server`]). Not published.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod redis_server;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_outcome::{BoxError, Reason, Rejected, find_rejected};

/// Polls `svc` ready and calls it (the request type picks the `Service` impl).
///
/// # Errors
/// The readiness error or the call's.
pub async fn call<S: Service<R>, R>(svc: &mut S, request: R) -> Result<S::Response, S::Error> {
    svc.ready().await?.call(request).await
}

/// Polls `svc` ready and returns the response future without awaiting it.
///
/// # Panics
/// When `svc` fails to get ready.
pub async fn start<S: Service<R>, R>(svc: &mut S, request: R) -> S::Future
where
    S::Error: std::fmt::Debug,
{
    svc.ready().await.expect("ready");
    svc.call(request)
}

/// The family's rejection in `err` or its `source()` chain, if there is one.
#[must_use]
pub fn rejected(err: &BoxError) -> Option<&Rejected> {
    find_rejected(&**err)
}

/// The reason of the family's rejection in `err`.
///
/// # Panics
/// When `err` is not a rejection.
#[must_use]
pub fn reason(err: &BoxError) -> Reason {
    rejected(err)
        .unwrap_or_else(|| panic!("not a rejection: {err}"))
        .reason()
}

/// Lets spawned tasks run until they block (ten yields).
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Answers each ask with the next scripted answer (the last one repeats) and records the
/// instant (tokio's clock, so paused time applies) of every ask.
#[derive(Clone, Debug)]
pub struct Script<T> {
    answers: Arc<Mutex<VecDeque<T>>>,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl<T: Clone> Script<T> {
    /// A script of `answers`; it needs at least one.
    pub fn new(answers: impl IntoIterator<Item = T>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers.into_iter().collect())),
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The next answer, recording the ask.
    ///
    /// # Panics
    /// When the script is empty.
    pub fn next(&self) -> T {
        lock(&self.calls).push(Instant::now());
        let mut answers = lock(&self.answers);
        if answers.len() > 1 {
            answers.pop_front().expect("more than one answer")
        } else {
            answers.front().cloned().expect("a scripted answer")
        }
    }

    /// How many times the script was asked.
    #[must_use]
    pub fn count(&self) -> usize {
        lock(&self.calls).len()
    }

    /// The instants of the asks.
    #[must_use]
    pub fn calls(&self) -> Vec<Instant> {
        lock(&self.calls).clone()
    }

    /// Gaps between consecutive asks.
    #[must_use]
    pub fn gaps(&self) -> Vec<Duration> {
        lock(&self.calls).windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Gaps between consecutive asks, in milliseconds.
    #[must_use]
    pub fn gaps_ms(&self) -> Vec<u128> {
        self.gaps().iter().map(Duration::as_millis).collect()
    }
}

/// Records values from callbacks (listeners, hooks) for a test to take.
#[derive(Debug)]
pub struct Recorder<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T> Recorder<T> {
    /// Records `value`.
    pub fn push(&self, value: T) {
        lock(&self.0).push(value);
    }

    /// Takes everything recorded so far.
    #[must_use]
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *lock(&self.0))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding it already failed; keep reading.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_script_repeats_its_last_answer_and_dates_the_asks() {
        let script = Script::new([1, 2]);
        assert_eq!(script.next(), 1);
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(script.next(), 2);
        assert_eq!(script.next(), 2);
        assert_eq!(script.count(), 3);
        assert_eq!(script.gaps_ms(), [250, 0]);
    }

    #[test]
    fn finds_a_rejection_behind_a_box() {
        let err: BoxError =
            Rejected::new(tower_outcome::LayerKind::Bulkhead, Reason::BulkheadFull).into();
        assert_eq!(reason(&err), Reason::BulkheadFull);
        let other: BoxError = "boom".into();
        assert!(rejected(&other).is_none());
    }

    #[test]
    fn a_recorder_hands_over_what_it_saw() {
        let seen = Recorder::default();
        seen.clone().push("a");
        seen.push("b");
        assert_eq!(seen.take(), ["a", "b"]);
        assert!(seen.take().is_empty());
    }
}

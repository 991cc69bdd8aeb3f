//! User code that panics (a transition listener, a per-call listener, a classifier) leaves the
//! breaker exactly as if it had returned: each scenario runs on two breakers built alike, one
//! whose user code panics and a twin whose user code returns, and their observable state
//! (state, counts, window, transitions reported, free probe slots) must then be the same.
//!
//! Where the panic stops the call itself (a classifier, or a transition listener run while the
//! call is admitted), the twin's call is dropped at the same point: a call that never finished
//! counts for nothing and frees its probe slot, as a cancelled call does.

use std::error::Error;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::advance;
use tower_breaker::{
    BoxErrorAnswer, CallEvent, CallListener, CallPermit, CircuitBreakerHandle, CircuitBreakerLayer,
    Classify, Outcome, Reason, Settle, State, TransitionReason,
};

/// Which user code panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    TransitionListener,
    CallListener,
    Classifier,
}

const KINDS: [Kind; 3] = [
    Kind::TransitionListener,
    Kind::CallListener,
    Kind::Classifier,
];

/// The state a breaker is put in before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// Closed, one failure into a run of two.
    Closed,
    /// Open, within its reset timeout.
    Open,
    /// Open, its reset timeout passed: the call makes it half-open and is its first probe.
    OpenElapsed,
    /// Half-open, one probe succeeded (of two needed), another probe in flight.
    HalfOpen,
    ForcedOpen,
    Disabled,
    /// Metrics only, one failure into a run of two.
    MetricsOnly,
}

const SETUPS: [Setup; 7] = [
    Setup::Closed,
    Setup::Open,
    Setup::OpenElapsed,
    Setup::HalfOpen,
    Setup::ForcedOpen,
    Setup::Disabled,
    Setup::MetricsOnly,
];

const OUTCOMES: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Ignore];

const RESET: Duration = Duration::from_secs(10);

/// Whether each kind of user code panics now, and how often it did.
#[derive(Default)]
struct Arms {
    armed: Mutex<Option<Kind>>,
    panics: AtomicUsize,
}

impl Arms {
    fn maybe_panic(&self, kind: Kind) {
        if *self.armed.lock().unwrap() == Some(kind) {
            self.panics.fetch_add(1, SeqCst);
            panic!("user code panics: {kind:?}");
        }
    }
}

/// Classifies a response `Ok(outcome)` as `outcome`; panics when armed.
#[derive(Clone)]
struct Classifier(Arc<Arms>);

impl Classify<Outcome> for Classifier {
    type Response<G: Settle> = Outcome;

    fn classify_response<G: Settle>(&self, response: Outcome, guard: G) -> Outcome {
        self.0.maybe_panic(Kind::Classifier);
        guard.settle(response);
        response
    }

    fn unclassified<G: Settle>(response: Outcome) -> Outcome {
        response
    }

    fn classify_error(&self, _: &(dyn Error + 'static)) -> Outcome {
        self.0.maybe_panic(Kind::Classifier);
        Outcome::Failure
    }
}

struct Calls(Arc<Arms>);

impl CallListener for Calls {
    fn on_call(&self, _: &CallEvent<'_>) {
        self.0.maybe_panic(Kind::CallListener);
    }
}

type Layer = CircuitBreakerLayer<Classifier, BoxErrorAnswer, Calls>;

struct Breaker {
    layer: Layer,
    handle: CircuitBreakerHandle,
    arms: Arc<Arms>,
    transitions: Arc<Mutex<Vec<(State, State, TransitionReason)>>>,
    /// A probe in flight, held by another caller for the whole scenario.
    other_probe: Option<CallPermit<Classifier, Calls>>,
}

impl Breaker {
    fn new() -> Self {
        let arms = Arc::new(Arms::default());
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let layer = {
            let (arms, transitions) = (arms.clone(), transitions.clone());
            CircuitBreakerLayer::builder()
                .failure_threshold(2)
                .count_window(10)
                .failure_rate_threshold(1.0)
                .minimum_calls(10)
                .reset_timeout(RESET)
                .half_open_max_calls(3)
                .success_threshold(2)
                .seed(7)
                .classifier(Classifier(arms.clone()))
                .on_call(Calls(arms.clone()))
                .on_transition(move |t| {
                    transitions.lock().unwrap().push((t.from, t.to, t.reason));
                    arms.maybe_panic(Kind::TransitionListener);
                })
                .build()
                .unwrap()
        };
        let handle = layer.handle();
        Self {
            layer,
            handle,
            arms,
            transitions,
            other_probe: None,
        }
    }

    /// One call that completes with `outcome`, through the permit API.
    fn complete(&self, outcome: Outcome) {
        if let Ok(permit) = self.layer.acquire() {
            permit.record(outcome);
        }
    }

    async fn set_up(&mut self, setup: Setup) {
        match setup {
            Setup::Closed => self.complete(Outcome::Failure),
            Setup::Open | Setup::OpenElapsed | Setup::HalfOpen => {
                self.complete(Outcome::Failure);
                self.complete(Outcome::Failure);
                assert_eq!(self.handle.state(), State::Open);
                if setup != Setup::Open {
                    advance(RESET + Duration::from_millis(1)).await;
                }
                if setup == Setup::HalfOpen {
                    self.complete(Outcome::Success);
                    self.other_probe = Some(self.layer.acquire().unwrap());
                    assert_eq!(self.handle.state(), State::HalfOpen);
                }
            }
            Setup::ForcedOpen => self.handle.force_open(),
            Setup::Disabled => self.handle.disable(),
            Setup::MetricsOnly => {
                self.handle.metrics_only();
                self.complete(Outcome::Failure);
            }
        }
    }

    /// Everything a caller can observe; then frees what the scenario still holds.
    fn fingerprint(&mut self) -> String {
        *self.arms.armed.lock().unwrap() = None;
        let mut free = 0;
        let mut refused = None;
        let mut held = Vec::new();
        for _ in 0..5 {
            match self.layer.acquire() {
                Ok(permit) => {
                    free += 1;
                    held.push(permit);
                }
                Err(rejected) => {
                    refused = Some(rejected.reason());
                    break;
                }
            }
        }
        let seen = format!(
            "state {:?}, failures {}, window {:?}, open for {:?}, free slots {free}, then {refused:?}, transitions {:?}",
            self.handle.state(),
            self.handle.consecutive_failures(),
            self.handle.window_totals(),
            self.handle.open_remaining(),
            self.transitions.lock().unwrap(),
        );
        drop(held);
        self.other_probe = None;
        seen
    }
}

/// Runs a future that is ready at once (the call is `async { Ok(outcome) }`).
fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Where the user code panicked, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stopped {
    /// While the call was being admitted (a transition to half-open, or a refusal's listener).
    Admission,
    /// Classifying: the call never got an outcome.
    Classifying,
    /// After the outcome was recorded (a transition it made, or the call listener).
    AfterRecording,
}

/// The call under test on the breaker whose `kind` of user code panics.
fn panicking_call(breaker: &Breaker, kind: Kind, outcome: Outcome) -> Option<Stopped> {
    *breaker.arms.armed.lock().unwrap() = Some(kind);
    let before = breaker.arms.panics.load(SeqCst);
    let result = if kind == Kind::Classifier {
        // Through `call`, which classifies.
        panic::catch_unwind(AssertUnwindSafe(|| {
            poll_once(
                breaker
                    .layer
                    .run(async move { Ok::<_, std::io::Error>(outcome) }),
            )
        }))
        .map(drop)
        .map_err(|_| Stopped::Classifying)
    } else {
        match panic::catch_unwind(AssertUnwindSafe(|| breaker.layer.acquire())) {
            Err(_) => Err(Stopped::Admission),
            Ok(Err(_refused)) => Ok(()),
            Ok(Ok(permit)) => panic::catch_unwind(AssertUnwindSafe(|| permit.record(outcome)))
                .map_err(|_| Stopped::AfterRecording),
        }
    };
    *breaker.arms.armed.lock().unwrap() = None;
    let panicked = breaker.arms.panics.load(SeqCst) - before;
    assert_eq!(
        panicked,
        usize::from(result.is_err()),
        "{kind:?} panicked once or not at all"
    );
    result.err()
}

/// The twin's call: the same, where the user code returns; a call whose user code panicked
/// before it had an outcome is dropped at that point instead (cancelled).
fn returning_call(twin: &Breaker, outcome: Outcome, stopped: Option<Stopped>) {
    match (twin.layer.acquire(), stopped) {
        (Ok(permit), None | Some(Stopped::AfterRecording)) => permit.record(outcome),
        (Ok(permit), Some(Stopped::Admission | Stopped::Classifying)) => drop(permit),
        (Err(_), _) => {}
    }
}

#[tokio::test(start_paused = true)]
async fn user_code_that_panics_leaves_the_breaker_as_if_it_had_returned() {
    let mut panicked_in = Vec::new();
    for setup in SETUPS {
        for kind in KINDS {
            for outcome in OUTCOMES {
                let mut breaker = Breaker::new();
                let mut twin = Breaker::new();
                breaker.set_up(setup).await;
                twin.set_up(setup).await;
                let stopped = panicking_call(&breaker, kind, outcome);
                returning_call(&twin, outcome, stopped);
                if stopped.is_some() {
                    panicked_in.push((setup, kind));
                }
                assert_eq!(
                    breaker.fingerprint(),
                    twin.fingerprint(),
                    "{setup:?}, {kind:?} panics on a call that ends {outcome:?}"
                );
            }
        }
    }
    // The matrix did exercise every kind of user code in every state where it runs.
    for setup in SETUPS {
        for kind in KINDS {
            let runs = match (setup, kind) {
                // Refused calls: no transition, nothing to classify.
                (Setup::Open | Setup::ForcedOpen, Kind::TransitionListener | Kind::Classifier) => {
                    false
                }
                // Never transitions.
                (Setup::Disabled | Setup::MetricsOnly, Kind::TransitionListener) => false,
                _ => true,
            };
            assert_eq!(
                panicked_in.contains(&(setup, kind)),
                runs,
                "{kind:?} panicked in {setup:?}"
            );
        }
    }
}

/// The per-call listener runs after the outcome is recorded, which released the probe's slot:
/// a panic in it must not release it a second time, freeing a slot another probe holds.
#[tokio::test(start_paused = true)]
async fn a_panicking_call_listener_does_not_free_another_probes_slot() {
    let mut breaker = Breaker::new();
    breaker.set_up(Setup::HalfOpen).await;
    // Three slots: the other probe holds one.
    for _ in 0..20 {
        let stopped = panicking_call(&breaker, Kind::CallListener, Outcome::Ignore);
        assert_eq!(stopped, Some(Stopped::AfterRecording));
    }
    let held: Vec<_> = std::iter::from_fn(|| breaker.layer.acquire().ok())
        .take(10)
        .collect();
    assert_eq!(held.len(), 2, "one slot stays with the other probe");
    assert_eq!(
        breaker.layer.acquire().unwrap_err().reason(),
        Reason::HalfOpenFull
    );
}

/// A transition listener that panics: the transition stands, the transitions queued behind
/// it (here the one it made itself) are reported before its panic carries on, and later
/// transitions start where the last one ended.
#[test]
fn a_panicking_transition_listener_reports_the_transitions_queued_behind_it() {
    use std::sync::OnceLock;

    let handle: Arc<OnceLock<CircuitBreakerHandle>> = Arc::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = {
        let (handle, seen) = (handle.clone(), seen.clone());
        CircuitBreakerLayer::builder()
            .on_transition(move |t| {
                seen.lock().unwrap().push((t.from, t.to));
                if t.to == State::ForcedOpen {
                    handle.get().unwrap().disable();
                    panic!("listener panics");
                }
            })
            .build()
            .unwrap()
    };
    handle.set(layer.handle()).unwrap();
    let forced = panic::catch_unwind(AssertUnwindSafe(|| layer.handle().force_open()));
    assert!(forced.is_err(), "the listener's panic reaches the caller");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Disabled)
        ]
    );
    assert_eq!(layer.handle().state(), State::Disabled);
    layer.handle().reset();
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&(State::Disabled, State::Closed))
    );
}

//! The state machine: one breaker (`Core`), its packed state word, transitions under a
//! rare-path lock.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::Duration;

use tower_outcome::{Outcome, Reason};

use crate::call_event::{CallEvent, CallListener, CallOutcome};
use crate::clock::nanos;
use crate::common::{Common, rate_of};
use crate::event::{Transition, TransitionReason};
use crate::padded::Padded;
use crate::refusal::{Refusal, Refused};
use crate::slot::Admission;
use crate::state::State;
use crate::ticket::Ticket;
use crate::window::{Totals, Window};
use crate::word::{GEN_MASK, Word};

/// What only transitions touch.
struct Control {
    /// Opens since the breaker was last closed: the open-duration backoff exponent.
    streak: u32,
    rng: fastrand::Rng,
    /// Transitions made and not yet reported, oldest first: reported in the order they were
    /// made, by whichever caller holds `Core::reporting`.
    unreported: VecDeque<(State, State, TransitionReason)>,
}

/// One circuit breaker.
///
/// Aligned so that the `Arc`'s reference counts, written by every call, sit on another cache
/// line than the state word, which every call only reads.
#[repr(align(128))]
pub(crate) struct Core<C, L> {
    word: AtomicU64,
    /// `generation << 32 | consecutive failures`.
    consecutive: AtomicU64,
    open_until_ns: AtomicU64,
    /// When the newest probe of this half-open was admitted (or the half-open began, if none
    /// was yet): probes are all stuck once the newest one has outlived `half_open_max_wait`.
    probe_admitted_ns: AtomicU64,
    window: Option<Window>,
    control: Mutex<Control>,
    /// Held by the caller reporting transitions (tracing events and the listener), so they
    /// are reported one at a time, in order, and never under `control`.
    reporting: Mutex<()>,
    pub(crate) common: Arc<Common<C, L>>,
    pub(crate) key: Option<Arc<str>>,
    /// Per-key breakers: when a call last arrived, for idle eviction. Written by every call
    /// of a per-key breaker, so it keeps to a cache line of its own.
    pub(crate) last_used_ns: Padded<AtomicU64>,
    /// `slow_call_duration` in nanoseconds; 0 when there is no slow-call rule (calls are then
    /// not timed).
    pub(crate) slow_ns: u64,
}

impl<C, L> Core<C, L> {
    pub(crate) fn new(common: Arc<Common<C, L>>, key: Option<Arc<str>>, seed_salt: u64) -> Self {
        let seed = common.seed ^ seed_salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self {
            word: AtomicU64::new(Word::new(State::Closed, 0).0),
            consecutive: AtomicU64::new(0),
            open_until_ns: AtomicU64::new(0),
            probe_admitted_ns: AtomicU64::new(0),
            window: common.window.map(Window::new),
            control: Mutex::new(Control {
                streak: 0,
                rng: fastrand::Rng::with_seed(seed),
                unreported: VecDeque::new(),
            }),
            reporting: Mutex::new(()),
            last_used_ns: Padded(AtomicU64::new(common.now_ns())),
            slow_ns: common.slow_call_duration.map_or(0, nanos),
            common,
            key,
        }
    }

    pub(crate) fn load(&self) -> Word {
        Word(self.word.load(Acquire))
    }

    /// The state a call arriving now would find, read without changing anything: an open
    /// breaker whose reset timeout has passed reads as half-open. The transition itself (with
    /// its event, listener call and metrics) is made by the next call.
    pub(crate) fn state(&self) -> State {
        self.state_at(self.common.now_ns())
    }

    /// [`state`](Self::state) at `now_ns` on the layer's clock.
    pub(crate) fn state_at(&self, now_ns: u64) -> State {
        match self.load().state() {
            State::Open if now_ns >= self.open_until_ns.load(Acquire) => State::HalfOpen,
            state => state,
        }
    }

    /// The state as the last transition left it.
    pub(crate) fn stored_state(&self) -> State {
        self.load().state()
    }

    fn probes_timed_out(&self, word: Word) -> bool {
        word.probes() >= self.common.limits.half_open_max_calls.load(Relaxed)
            && self
                .common
                .now_ns()
                .saturating_sub(self.probe_admitted_ns.load(Acquire))
                >= self.common.half_open_max_wait_ns()
    }

    /// A refused call, to be answered by its future; counts it as rejected.
    #[inline]
    pub(crate) fn rejection(&self, refusal: Refusal) -> Refused
    where
        L: CallListener,
    {
        self.common.metrics.rejected();
        if L::ENABLED {
            self.common.call_listener.on_call(&CallEvent {
                name: &self.common.name,
                key: self.key.as_deref(),
                outcome: CallOutcome::Rejected,
                duration: None,
            });
        }
        match refusal.until_ns() {
            None => Refused::new(Arc::clone(&self.common.name), refusal),
            Some(until) => self.refused_until(refusal, until),
        }
    }

    #[cold]
    #[inline(never)]
    fn refused_until(&self, refusal: Refusal, decided_until_ns: u64) -> Refused {
        let left = self.time_left(decided_until_ns);
        Refused::with_time_left(Arc::clone(&self.common.name), refusal, left)
    }

    /// How long until an open circuit lets a probe through, worked out when the call is
    /// refused (in `call`, which may come long after `poll_ready` decided): from the deadline
    /// of the circuit as it is now if it is open (it may have re-opened since, for longer),
    /// else from the deadline decided; zero once that has passed.
    fn time_left(&self, decided_until_ns: u64) -> u64 {
        let until = if self.load().state() == State::Open {
            self.open_until_ns.load(Acquire)
        } else {
            decided_until_ns
        };
        until.saturating_sub(self.common.now_ns())
    }

    /// Admits a call now, in the state the breaker is in: for an admission that was granted
    /// in an earlier generation and is checked again when the call is made.
    #[inline(never)]
    pub(crate) fn admit_again(self: &Arc<Self>) -> Result<Ticket<C, L>, Refusal> {
        let word = self.load();
        let admission = if word.state() == State::Closed {
            Admission::Pass {
                generation: word.generation(),
            }
        } else {
            self.admit_other(word)
        };
        match admission {
            Admission::Pass { generation } => Ok(Ticket::new(Arc::clone(self), generation, false)),
            Admission::Probe(ticket) => Ok(ticket),
            Admission::Refused(refusal) => Err(refusal),
        }
    }

    /// Admission in any state but Closed (the rare path, kept out of line).
    #[inline(never)]
    pub(crate) fn admit_other(self: &Arc<Self>, mut word: Word) -> Admission<C, L> {
        // Each pass either returns or follows a transition; more than three passes would need
        // other callers to win three transitions in between, so the last pass just rejects.
        for pass in 0..4 {
            if pass > 0 {
                word = self.load();
            }
            match word.state() {
                State::Closed | State::Disabled | State::MetricsOnly => {
                    return Admission::Pass {
                        generation: word.generation(),
                    };
                }
                State::ForcedOpen => {
                    return Admission::Refused(Refusal::new(Reason::ForcedOpen, None));
                }
                State::Open => {
                    let now = self.common.now_ns();
                    let until = self.open_until_ns.load(Acquire);
                    if now < until {
                        return Admission::Refused(Refusal::new(Reason::CircuitOpen, Some(until)));
                    }
                    self.transition(
                        Some(word),
                        State::HalfOpen,
                        TransitionReason::ResetTimeoutElapsed,
                    );
                }
                State::HalfOpen => {
                    // `Err`: the generation moved on (another caller made a transition).
                    if let Ok(admission) = self.take_probe(word) {
                        return admission;
                    }
                }
            }
        }
        Admission::Refused(Refusal::new(Reason::HalfOpenFull, None))
    }

    /// Takes one of the probe slots of the half-open `word`, or refuses when every slot is
    /// taken; `Err` when the breaker left that generation meanwhile.
    ///
    /// A compare-and-swap that failed because only the probe count moved (another probe was
    /// admitted, finished or dropped) is tried again at once: it says nothing about whether a
    /// slot is free, and counting it as a failed try refused calls while slots were free.
    #[inline(never)]
    fn take_probe(self: &Arc<Self>, mut word: Word) -> Result<Admission<C, L>, ()> {
        let max = self.common.limits.half_open_max_calls.load(Relaxed);
        let mut stamped = false;
        loop {
            if word.probes() >= max {
                if self.probes_timed_out(word) {
                    self.transition(Some(word), State::Open, TransitionReason::ProbeTimedOut);
                    return Err(());
                }
                return Ok(Admission::Refused(Refusal::new(Reason::HalfOpenFull, None)));
            }
            if !stamped {
                // Before the slot is taken, so a caller that sees every slot taken also sees
                // when the newest probe was admitted.
                self.probe_admitted_ns
                    .fetch_max(self.common.now_ns(), AcqRel);
                stamped = true;
            }
            match self
                .word
                .compare_exchange_weak(word.0, word.add_probe().0, AcqRel, Acquire)
            {
                Ok(_) => {
                    return Ok(Admission::Probe(Ticket::new(
                        Arc::clone(self),
                        word.generation(),
                        true,
                    )));
                }
                Err(actual) => {
                    let actual = Word(actual);
                    if actual.generation() != word.generation() {
                        return Err(());
                    }
                    // Same generation, so still half-open: only the counts moved.
                    word = actual;
                }
            }
        }
    }

    /// Records a completed call admitted in `generation`.
    #[inline]
    pub(crate) fn record(
        &self,
        generation: u32,
        probe: bool,
        slow: impl FnOnce() -> bool,
        outcome: Outcome,
    ) {
        self.common.metrics.call(outcome);
        let word = self.load();
        if word.generation() != generation {
            // Admitted before a transition: says nothing about the state now. A probe's slot
            // went with its generation.
            return;
        }
        // The common case, kept short and inline: a success while closed, with no window,
        // only ends a failure run, and there is none to end.
        if outcome == Outcome::Success
            && word.state() == State::Closed
            && !probe
            && self.window.is_none()
            && self.consecutive.load(Acquire) as u32 == 0
        {
            return;
        }
        // An ignored call says nothing about the dependency, however long it took.
        let slow = outcome != Outcome::Ignore && slow();
        self.record_other(word, probe, slow, outcome);
    }

    #[inline(never)]
    fn record_other(&self, word: Word, probe: bool, slow: bool, outcome: Outcome) {
        match word.state() {
            State::Closed | State::MetricsOnly => self.record_closed(word, outcome, slow),
            State::HalfOpen if probe => self.record_probe(word, outcome, slow),
            _ => {}
        }
    }

    fn record_closed(&self, word: Word, outcome: Outcome, slow: bool) {
        if outcome == Outcome::Ignore {
            return;
        }
        let failure = outcome == Outcome::Failure;
        let generation = word.generation();
        let limits = &self.common.limits;
        let mut trip = None;
        let threshold = limits.failure_threshold.load(Relaxed);
        if failure {
            if threshold > 0 && self.count_failure(generation) >= threshold {
                trip = Some(TransitionReason::ConsecutiveFailures);
            }
        } else {
            self.clear_failures(generation);
        }
        if let Some(window) = &self.window {
            let now = if window.needs_clock() {
                self.common.now_ns()
            } else {
                0
            };
            let minimum = self.minimum_calls(window);
            if let Some(totals) = window.record(generation, now, failure, slow, minimum) {
                trip = trip.or_else(|| self.rate_rule(totals, minimum));
            }
        }
        if let Some(reason) = trip {
            if word.state() == State::MetricsOnly {
                tracing::info!(
                    target: "tower_breaker",
                    breaker = %self.common.name,
                    key = self.key.as_deref(),
                    reason = reason.as_str(),
                    "circuit breaker would open (metrics only)"
                );
            } else {
                self.transition(Some(word), State::Open, reason);
            }
        }
    }

    /// `minimum_calls`, capped at a count window's size (as resilience4j does).
    fn minimum_calls(&self, window: &Window) -> u32 {
        let minimum = self.common.limits.minimum_calls.load(Relaxed);
        window
            .capacity()
            .map_or(minimum, |capacity| minimum.min(capacity))
    }

    fn rate_rule(&self, totals: Totals, minimum: u32) -> Option<TransitionReason> {
        let limits = &self.common.limits;
        if totals.calls == 0 || totals.calls < u64::from(minimum) {
            return None;
        }
        // Counts stay far below 2^53, where `f64` would round them.
        let calls = totals.calls as f64;
        if let Some(rate) = rate_of(limits.failure_rate.load(Relaxed))
            && totals.failures as f64 / calls >= rate
        {
            return Some(TransitionReason::FailureRate);
        }
        if let Some(rate) = rate_of(limits.slow_rate.load(Relaxed))
            && totals.slow as f64 / calls >= rate
        {
            return Some(TransitionReason::SlowCallRate);
        }
        None
    }

    /// Counts a failure in `generation`; returns the run length (0 when the generation moved on).
    fn count_failure(&self, generation: u32) -> u32 {
        let mut current = self.consecutive.load(Acquire);
        loop {
            if (current >> 32) as u32 != generation {
                return 0;
            }
            if current as u32 == u32::MAX {
                // Saturated (a very long run while metrics-only): never carry into the generation.
                return u32::MAX;
            }
            let next = current + 1;
            match self
                .consecutive
                .compare_exchange_weak(current, next, AcqRel, Acquire)
            {
                Ok(_) => return next as u32,
                Err(actual) => current = actual,
            }
        }
    }

    fn clear_failures(&self, generation: u32) {
        let mut current = self.consecutive.load(Acquire);
        // Successes are the common case: a load, and a write only after a failure.
        while current as u32 != 0 && (current >> 32) as u32 == generation {
            match self.consecutive.compare_exchange_weak(
                current,
                u64::from(generation) << 32,
                AcqRel,
                Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn record_probe(&self, mut word: Word, outcome: Outcome, slow: bool) {
        if outcome == Outcome::Failure || slow {
            self.transition(Some(word), State::Open, TransitionReason::ProbeFailed);
            return;
        }
        loop {
            let mut next = word.remove_probe();
            if outcome == Outcome::Success {
                next = next.add_success();
            }
            match self
                .word
                .compare_exchange_weak(word.0, next.0, AcqRel, Acquire)
            {
                Ok(_) => {
                    if outcome == Outcome::Success
                        && next.successes() >= self.common.limits.success_threshold.load(Relaxed)
                    {
                        self.transition(
                            Some(next),
                            State::Closed,
                            TransitionReason::ProbesSucceeded,
                        );
                    }
                    return;
                }
                Err(actual) => {
                    word = Word(actual);
                    if word.generation() != next.generation() || word.state() != State::HalfOpen {
                        return;
                    }
                }
            }
        }
    }

    /// Frees the probe slot of a call dropped before it finished; counts nothing.
    pub(crate) fn release_probe(&self, generation: u32) {
        let mut word = self.load();
        while word.generation() == generation
            && word.state() == State::HalfOpen
            && word.probes() > 0
        {
            match self
                .word
                .compare_exchange_weak(word.0, word.remove_probe().0, AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Moves to `to`, if the breaker is still in the generation of `expected` (`None`: from
    /// whatever it is in, for handles). Returns whether this call made a transition (a reset
    /// of a closed breaker clears its counts, and is none).
    pub(crate) fn transition(
        &self,
        expected: Option<Word>,
        to: State,
        reason: TransitionReason,
    ) -> bool {
        let mut control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.load();
        if expected.is_some_and(|e| e.generation() != current.generation()) {
            return false;
        }
        let from = current.state();
        // Forcing the state the breaker is already in is no change: nothing is reported (no
        // event, no listener call, no `breaker_transitions_total`). Only a reset does
        // something then: a closed breaker starts again with clean counts.
        let changed = from != to;
        if !changed && to != State::Closed {
            return false;
        }
        let generation = current.generation().wrapping_add(1) & GEN_MASK;
        let now = self.common.now_ns();
        match to {
            State::Open => {
                let open_for = self.open_duration(&mut control);
                self.open_until_ns
                    .store(now.saturating_add(nanos(open_for)), Release);
                control.streak = control.streak.saturating_add(1);
            }
            State::HalfOpen => self.probe_admitted_ns.store(now, Release),
            State::Closed => control.streak = 0,
            State::ForcedOpen | State::Disabled | State::MetricsOnly => {}
        }
        self.consecutive.store(u64::from(generation) << 32, Release);
        if let Some(window) = &self.window {
            window.begin_generation();
        }
        self.word.store(Word::new(to, generation).0, Release);
        if !changed {
            return false;
        }
        self.common.metrics.transition(from, to);
        control.unreported.push_back((from, to, reason));
        drop(control);
        self.report();
        true
    }

    /// Reports transitions in the order they were made. A caller that finds another one
    /// reporting leaves its transition to it (a listener that forces the state from inside
    /// the listener thus never deadlocks, and sees its own transition reported next).
    ///
    /// A listener that panics changes nothing: its transition was made before it ran, the
    /// transitions queued behind it are still reported, in order, and only then does its
    /// panic carry on, out of the call (or handle method) that made the transition.
    fn report(&self) {
        let mut panicked = None;
        loop {
            let guard = match self.reporting.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => break,
            };
            loop {
                // Its own statement: the lock is released before the listener runs.
                let next = self.control().unreported.pop_front();
                let Some((from, to, reason)) = next else {
                    break;
                };
                if let Err(payload) = self.emit(from, to, reason) {
                    panicked.get_or_insert(payload);
                }
            }
            drop(guard);
            // A transition queued after the last pop, while this caller still held
            // `reporting`, is this caller's to report.
            if self.control().unreported.is_empty() {
                break;
            }
        }
        if let Some(payload) = panicked {
            std::panic::resume_unwind(payload);
        }
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open_duration(&self, control: &mut Control) -> Duration {
        let base = self.common.reset_timeout();
        if !self.common.open_backoff {
            return base;
        }
        let doubled = base.saturating_mul(1 << control.streak.min(4));
        let capped = doubled.min(base.saturating_mul(10));
        // Up to 10 % shorter, so a fleet that opened together does not probe together.
        capped.mul_f64(1.0 - control.rng.f64() * 0.1)
    }

    /// Logs a transition and runs the listener, catching its panic (see [`report`](Self::report)).
    fn emit(
        &self,
        from: State,
        to: State,
        reason: TransitionReason,
    ) -> Result<(), Box<dyn Any + Send>> {
        let name = &*self.common.name;
        let key = self.key.as_deref();
        if to == State::Open || to == State::ForcedOpen {
            tracing::warn!(target: "tower_breaker", breaker = name, key, from = from.as_str(), to = to.as_str(), reason = reason.as_str(), "circuit breaker state changed");
        } else {
            tracing::info!(target: "tower_breaker", breaker = name, key, from = from.as_str(), to = to.as_str(), reason = reason.as_str(), "circuit breaker state changed");
        }
        let Some(listener) = &self.common.listener else {
            return Ok(());
        };
        let transition = Transition {
            name,
            key,
            from,
            to,
            reason,
        };
        // Nothing the listener can see is left half-changed: the transition is complete and
        // no lock is held while it runs.
        panic::catch_unwind(AssertUnwindSafe(|| listener(&transition)))
    }

    /// How long the circuit stays open, while [`state`](Self::state) reads open (once the
    /// reset timeout has passed it reads half-open, and this is `None`).
    pub(crate) fn open_until(&self) -> Option<Duration> {
        if self.load().state() != State::Open {
            return None;
        }
        let left = self
            .open_until_ns
            .load(Acquire)
            .saturating_sub(self.common.now_ns());
        (left > 0).then(|| Duration::from_nanos(left))
    }

    pub(crate) fn window_totals(&self) -> Option<(u32, u32, u32)> {
        let generation = self.load().generation();
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        self.window.as_ref().map(|w| {
            let t = w.totals(generation, self.common.now_ns());
            (narrow(t.calls), narrow(t.failures), narrow(t.slow))
        })
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        let word = self.load();
        let c = self.consecutive.load(Acquire);
        if (c >> 32) as u32 == word.generation() {
            c as u32
        } else {
            0
        }
    }
}

//! The state machine: one packed atomic word per breaker, transitions under a rare-path lock.
//!
//! The word holds the state, the generation, and the half-open probe counts, so admitting a
//! probe, releasing it and counting its success are single compare-and-swaps that also check
//! the generation: a call admitted before a transition can never touch the new state's counts.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tower_outcome::{LayerKind, Outcome, Reason, Rejected};

use crate::config::{Settings, WindowSpec};
use crate::event::{Listener, Transition, TransitionReason};
use crate::metrics::Metrics;
use crate::window::{Totals, Window};

/// A breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum State {
    /// Calls pass; outcomes are counted against the trip rules.
    Closed = 0,
    /// Calls are rejected at once until the reset timeout has passed.
    Open = 1,
    /// A limited number of probe calls pass; the rest are rejected.
    HalfOpen = 2,
    /// Rejecting everything until a handle says otherwise.
    ForcedOpen = 3,
    /// Passing everything and recording metrics, never transitioning, until a handle says otherwise.
    Disabled = 4,
    /// Passing everything, counting outcomes and reporting when a rule would trip, never
    /// transitioning, until a handle says otherwise.
    MetricsOnly = 5,
}

impl State {
    pub(crate) const COUNT: usize = 6;
    pub(crate) const ALL: [Self; Self::COUNT] = [
        Self::Closed,
        Self::Open,
        Self::HalfOpen,
        Self::ForcedOpen,
        Self::Disabled,
        Self::MetricsOnly,
    ];

    /// The snake-case label used in metrics and events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
            Self::MetricsOnly => "metrics_only",
        }
    }

    const fn from_bits(bits: u64) -> Self {
        match bits {
            0 => Self::Closed,
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::ForcedOpen,
            4 => Self::Disabled,
            _ => Self::MetricsOnly,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

const PROBES_SHIFT: u32 = 4;
const SUCCESSES_SHIFT: u32 = 20;
const GEN_SHIFT: u32 = 36;
const FIELD_MASK: u64 = 0xFFFF;
const GEN_MASK: u32 = (1 << (64 - GEN_SHIFT)) - 1;

/// `state (4 bits) | probes in flight (16) | probe successes (16) | generation (28)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u64);

impl Word {
    const fn new(state: State, generation: u32) -> Self {
        Self(state as u64 | ((generation & GEN_MASK) as u64) << GEN_SHIFT)
    }
    const fn state(self) -> State {
        State::from_bits(self.0 & 0xF)
    }
    const fn probes(self) -> u32 {
        ((self.0 >> PROBES_SHIFT) & FIELD_MASK) as u32
    }
    const fn successes(self) -> u32 {
        ((self.0 >> SUCCESSES_SHIFT) & FIELD_MASK) as u32
    }
    const fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }
    // Probe counts never exceed `half_open_max_calls` (at most u16::MAX), so these do not carry.
    const fn add_probe(self) -> Self {
        Self(self.0 + (1 << PROBES_SHIFT))
    }
    const fn remove_probe(self) -> Self {
        Self(self.0 - (1 << PROBES_SHIFT))
    }
    const fn add_success(self) -> Self {
        if self.successes() as u64 == FIELD_MASK {
            self
        } else {
            Self(self.0 + (1 << SUCCESSES_SHIFT))
        }
    }
}

/// Thresholds that a handle may change while the breaker runs.
pub(crate) struct Limits {
    pub(crate) failure_threshold: AtomicU32,
    /// `f64` bits; 0 means the rule is off.
    pub(crate) failure_rate: AtomicU64,
    pub(crate) slow_rate: AtomicU64,
    pub(crate) minimum_calls: AtomicU32,
    pub(crate) reset_timeout_ns: AtomicU64,
    pub(crate) half_open_max_calls: AtomicU32,
    pub(crate) success_threshold: AtomicU32,
    /// 0 means "the reset timeout".
    pub(crate) half_open_max_wait_ns: AtomicU64,
}

/// The origin of a layer's clock readings: a day before it was built, so a reading taken on
/// a clock that started a little earlier (a paused test runtime created before the layer)
/// is still after it.
fn clock_base() -> Instant {
    let now = Instant::now();
    now.checked_sub(Duration::from_secs(86_400)).unwrap_or(now)
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn rate_bits(rate: Option<f64>) -> u64 {
    rate.map_or(0, f64::to_bits)
}

fn rate_of(bits: u64) -> Option<f64> {
    (bits != 0).then(|| f64::from_bits(bits))
}

/// What every breaker of one layer shares (one breaker, or all keys of a per-key layer).
pub(crate) struct Common<C> {
    pub(crate) name: Arc<str>,
    base: Instant,
    pub(crate) limits: Limits,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) window: Option<WindowSpec>,
    open_backoff: bool,
    seed: u64,
    pub(crate) classifier: C,
    listener: Option<Listener>,
    pub(crate) metrics: Metrics,
    pub(crate) max_keys: u32,
    pub(crate) key_idle_timeout: Duration,
}

impl<C> Common<C> {
    pub(crate) fn new(
        settings: &Settings,
        classifier: C,
        listener: Option<Listener>,
        keyed: bool,
    ) -> Self {
        Self {
            name: Arc::clone(&settings.name),
            base: clock_base(),
            limits: Limits {
                failure_threshold: AtomicU32::new(settings.failure_threshold),
                failure_rate: AtomicU64::new(rate_bits(settings.failure_rate)),
                slow_rate: AtomicU64::new(rate_bits(settings.slow_rate)),
                minimum_calls: AtomicU32::new(settings.minimum_calls),
                reset_timeout_ns: AtomicU64::new(nanos(settings.reset_timeout)),
                half_open_max_calls: AtomicU32::new(settings.half_open_max_calls),
                success_threshold: AtomicU32::new(settings.success_threshold),
                half_open_max_wait_ns: AtomicU64::new(settings.half_open_max_wait.map_or(0, nanos)),
            },
            slow_call_duration: settings.slow_call_duration,
            window: settings.window,
            open_backoff: settings.open_backoff,
            seed: settings.seed.unwrap_or_else(|| fastrand::u64(..)),
            classifier,
            listener,
            metrics: Metrics::new(&settings.name, keyed),
            max_keys: settings.max_keys,
            key_idle_timeout: settings.key_idle_timeout,
        }
    }

    /// Nanoseconds since the layer was built, on tokio's (pausable) clock.
    pub(crate) fn now_ns(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.base))
    }

    pub(crate) fn reset_timeout(&self) -> Duration {
        Duration::from_nanos(self.limits.reset_timeout_ns.load(Relaxed))
    }

    fn half_open_max_wait_ns(&self) -> u64 {
        match self.limits.half_open_max_wait_ns.load(Relaxed) {
            0 => self.limits.reset_timeout_ns.load(Relaxed),
            ns => ns,
        }
    }
}

/// A value alone on its cache line(s).
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// What only transitions touch.
struct Control {
    /// Opens since the breaker was last closed: the open-duration backoff exponent.
    streak: u32,
    rng: fastrand::Rng,
}

/// One circuit breaker.
///
/// Aligned so that the `Arc`'s reference counts, written by every call, sit on another cache
/// line than the state word, which every call only reads.
#[repr(align(128))]
pub(crate) struct Core<C> {
    word: AtomicU64,
    /// `generation << 32 | consecutive failures`.
    consecutive: AtomicU64,
    open_until_ns: AtomicU64,
    half_open_since_ns: AtomicU64,
    window: Option<Window>,
    control: Mutex<Control>,
    pub(crate) common: Arc<Common<C>>,
    pub(crate) key: Option<Arc<str>>,
    /// Per-key breakers: when a call last arrived, for idle eviction. Written by every call
    /// of a per-key breaker, so it keeps to a cache line of its own.
    pub(crate) last_used_ns: Padded<AtomicU64>,
    /// `slow_call_duration` in nanoseconds; 0 when there is no slow-call rule (calls are then
    /// not timed).
    slow_ns: u64,
}

/// Why a call is refused, decided at admission; the [`Rejected`] is built when answering.
///
/// One word, `reason (8 bits) | has retry-after (1) | retry-after in ns (53)`, so it moves
/// cheaply between `poll_ready` and `call` (two bits are left for [`Slot`]'s tag).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refusal(u64);

const REFUSAL_RETRY: u64 = 1 << 8;
const REFUSAL_SHIFT: u32 = 9;

impl Refusal {
    const REASONS: [Reason; 3] = [
        Reason::CircuitOpen,
        Reason::HalfOpenFull,
        Reason::ForcedOpen,
    ];

    fn new(reason: Reason, retry_after: Option<Duration>) -> Self {
        let code = match reason {
            Reason::HalfOpenFull => 1,
            Reason::ForcedOpen => 2,
            _ => 0,
        };
        match retry_after {
            // 53 bits of nanoseconds is over 100 days: longer waits are clamped.
            Some(delay) => Self(
                code | REFUSAL_RETRY
                    | nanos(delay).min(u64::MAX >> (REFUSAL_SHIFT + 2)) << REFUSAL_SHIFT,
            ),
            None => Self(code),
        }
    }

    fn reason(self) -> Reason {
        Self::REASONS[(self.0 & 0xFF) as usize % Self::REASONS.len()]
    }

    fn retry_after(self) -> Option<Duration> {
        (self.0 & REFUSAL_RETRY != 0).then(|| Duration::from_nanos(self.0 >> REFUSAL_SHIFT))
    }
}

/// A refused call, carried by its response future: two words until the answer is built.
pub(crate) struct Refused {
    name: Arc<str>,
    refusal: Refusal,
}

impl Refused {
    /// The family's rejection for this call.
    pub(crate) fn into_rejected(self) -> Rejected {
        let rejected =
            Rejected::new(LayerKind::Breaker, self.refusal.reason()).with_name(self.name);
        match self.refusal.retry_after() {
            Some(delay) => rejected.with_retry_after(delay),
            None => rejected,
        }
    }
}

/// What admission decided for one call, on the rare path (any state but Closed).
enum Admission<C> {
    /// Admitted in a state that holds nothing per call; the ticket is made in `call`.
    Pass { generation: u32 },
    /// Admitted as a half-open probe: the ticket holds the probe slot from now on.
    Probe(Ticket<C>),
    /// Refused.
    Refused(Refusal),
}

/// Where a service keeps its admission between `poll_ready` and `call`.
///
/// One word, `0` (none), `generation << 2 | 1` (admitted), `2` (admitted as a probe: the ticket
/// is kept beside it) or `refusal << 2 | 3` (refused), written and read as a whole: moving an
/// enum with narrower fields here cost a store-forwarding stall per call.
pub(crate) struct Slot<C> {
    word: u64,
    probe: Option<Ticket<C>>,
}

const SLOT_PASS: u64 = 1;
const SLOT_PROBE: u64 = 2;
const SLOT_REFUSED: u64 = 3;

impl<C> Slot<C> {
    pub(crate) const fn new() -> Self {
        Self {
            word: 0,
            probe: None,
        }
    }

    #[inline]
    pub(crate) const fn is_empty(&self) -> bool {
        self.word == 0
    }

    #[inline]
    pub(crate) const fn is_refused(&self) -> bool {
        self.word & 3 == SLOT_REFUSED
    }

    /// Admits a call or decides its refusal. Never waits; takes the transition lock only when
    /// a transition is due.
    #[inline]
    pub(crate) fn fill(&mut self, core: &Arc<Core<C>>) {
        let word = core.load();
        if word.state() == State::Closed {
            self.word = u64::from(word.generation()) << 2 | SLOT_PASS;
        } else {
            self.fill_other(core, word);
        }
    }

    #[inline(never)]
    fn fill_other(&mut self, core: &Arc<Core<C>>, word: Word) {
        self.word = match core.admit_other(word) {
            Admission::Pass { generation } => u64::from(generation) << 2 | SLOT_PASS,
            Admission::Probe(ticket) => {
                self.probe = Some(ticket);
                SLOT_PROBE
            }
            Admission::Refused(refusal) => refusal.0 << 2 | SLOT_REFUSED,
        };
    }

    /// The admitted call's ticket, or why it is refused; empties the slot.
    ///
    /// # Panics
    /// If the slot is empty: `poll_ready` was not called first.
    #[inline]
    pub(crate) fn take(&mut self, core: &Arc<Core<C>>) -> Result<Ticket<C>, Refusal> {
        let word = std::mem::replace(&mut self.word, 0);
        match word & 3 {
            SLOT_PASS => Ok(Ticket::new(Arc::clone(core), (word >> 2) as u32, false)),
            SLOT_PROBE => Ok(self
                .probe
                .take()
                .expect("a probe admission keeps its ticket")),
            SLOT_REFUSED => Err(Refusal(word >> 2)),
            _ => panic!("CircuitBreaker::call without poll_ready: poll_ready must be called first"),
        }
    }
}

impl<C> Core<C> {
    pub(crate) fn new(common: Arc<Common<C>>, key: Option<Arc<str>>, seed_salt: u64) -> Self {
        let seed = common.seed ^ seed_salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self {
            word: AtomicU64::new(Word::new(State::Closed, 0).0),
            consecutive: AtomicU64::new(0),
            open_until_ns: AtomicU64::new(0),
            half_open_since_ns: AtomicU64::new(0),
            window: common.window.map(Window::new),
            control: Mutex::new(Control {
                streak: 0,
                rng: fastrand::Rng::with_seed(seed),
            }),
            last_used_ns: Padded(AtomicU64::new(common.now_ns())),
            slow_ns: common.slow_call_duration.map_or(0, nanos),
            common,
            key,
        }
    }

    fn load(&self) -> Word {
        Word(self.word.load(Acquire))
    }

    /// The state now, after any transition that is due (open → half-open once the reset
    /// timeout has passed; half-open → open once every probe has outlived its maximum wait).
    pub(crate) fn state(&self) -> State {
        for _ in 0..4 {
            let word = self.load();
            match word.state() {
                State::Open if self.common.now_ns() >= self.open_until_ns.load(Acquire) => {
                    self.transition(
                        Some(word),
                        State::HalfOpen,
                        TransitionReason::ResetTimeoutElapsed,
                    );
                }
                State::HalfOpen if self.probes_timed_out(word) => {
                    self.transition(Some(word), State::Open, TransitionReason::ProbeTimedOut);
                }
                state => return state,
            }
        }
        self.load().state()
    }

    fn probes_timed_out(&self, word: Word) -> bool {
        word.probes() >= self.common.limits.half_open_max_calls.load(Relaxed)
            && self
                .common
                .now_ns()
                .saturating_sub(self.half_open_since_ns.load(Acquire))
                >= self.common.half_open_max_wait_ns()
    }

    /// A refused call, to be answered by its future; counts it as rejected.
    pub(crate) fn rejection(&self, refusal: Refusal) -> Refused {
        self.common.metrics.rejected();
        Refused {
            name: Arc::clone(&self.common.name),
            refusal,
        }
    }

    /// Admission in any state but Closed (the rare path, kept out of line).
    #[inline(never)]
    fn admit_other(self: &Arc<Self>, mut word: Word) -> Admission<C> {
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
                        let left = Duration::from_nanos(until - now);
                        return Admission::Refused(Refusal::new(Reason::CircuitOpen, Some(left)));
                    }
                    self.transition(
                        Some(word),
                        State::HalfOpen,
                        TransitionReason::ResetTimeoutElapsed,
                    );
                }
                State::HalfOpen => {
                    let max = self.common.limits.half_open_max_calls.load(Relaxed);
                    if word.probes() < max {
                        if self
                            .word
                            .compare_exchange(word.0, word.add_probe().0, AcqRel, Acquire)
                            .is_ok()
                        {
                            return Admission::Probe(Ticket::new(
                                Arc::clone(self),
                                word.generation(),
                                true,
                            ));
                        }
                    } else if self.probes_timed_out(word) {
                        self.transition(Some(word), State::Open, TransitionReason::ProbeTimedOut);
                    } else {
                        return Admission::Refused(Refusal::new(Reason::HalfOpenFull, None));
                    }
                }
            }
        }
        Admission::Refused(Refusal::new(Reason::HalfOpenFull, None))
    }

    /// Records a completed call admitted in `generation`.
    #[inline]
    fn record(
        &self,
        generation: u32,
        probe: bool,
        elapsed_ms: impl FnOnce() -> Option<u64>,
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
        let slow = elapsed_ms().is_some_and(|ms| ms.saturating_mul(1_000_000) >= self.slow_ns);
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
        if totals.calls == 0 || totals.calls < minimum {
            return None;
        }
        let calls = f64::from(totals.calls);
        if let Some(rate) = rate_of(limits.failure_rate.load(Relaxed))
            && f64::from(totals.failures) / calls >= rate
        {
            return Some(TransitionReason::FailureRate);
        }
        if let Some(rate) = rate_of(limits.slow_rate.load(Relaxed))
            && f64::from(totals.slow) / calls >= rate
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
    fn release_probe(&self, generation: u32) {
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
    /// whatever it is in, for handles). Returns whether this call made the transition.
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
        let generation = current.generation().wrapping_add(1) & GEN_MASK;
        let now = self.common.now_ns();
        match to {
            State::Open => {
                let open_for = self.open_duration(&mut control);
                self.open_until_ns
                    .store(now.saturating_add(nanos(open_for)), Release);
                control.streak = control.streak.saturating_add(1);
            }
            State::HalfOpen => self.half_open_since_ns.store(now, Release),
            State::Closed => control.streak = 0,
            State::ForcedOpen | State::Disabled | State::MetricsOnly => {}
        }
        self.consecutive.store(u64::from(generation) << 32, Release);
        if let Some(window) = &self.window {
            window.begin_generation();
        }
        self.word.store(Word::new(to, generation).0, Release);
        self.common.metrics.transition(from, to);
        drop(control);
        self.emit(from, to, reason);
        true
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

    fn emit(&self, from: State, to: State, reason: TransitionReason) {
        let name = &*self.common.name;
        let key = self.key.as_deref();
        if to == State::Open || to == State::ForcedOpen {
            tracing::warn!(target: "tower_breaker", breaker = name, key, from = from.as_str(), to = to.as_str(), reason = reason.as_str(), "circuit breaker state changed");
        } else {
            tracing::info!(target: "tower_breaker", breaker = name, key, from = from.as_str(), to = to.as_str(), reason = reason.as_str(), "circuit breaker state changed");
        }
        if let Some(listener) = &self.common.listener {
            listener(&Transition {
                name,
                key,
                from,
                to,
                reason,
            });
        }
    }

    /// How long the circuit stays open, when it is open.
    pub(crate) fn open_until(&self) -> Option<Duration> {
        let word = self.load();
        (word.state() == State::Open).then(|| {
            Duration::from_nanos(
                self.open_until_ns
                    .load(Acquire)
                    .saturating_sub(self.common.now_ns()),
            )
        })
    }

    pub(crate) fn window_totals(&self) -> Option<(u32, u32, u32)> {
        let generation = self.load().generation();
        self.window.as_ref().map(|w| {
            let t = w.totals(generation, self.common.now_ns());
            (t.calls, t.failures, t.slow)
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

/// The obligation of a call the breaker admitted: it records the call's outcome when
/// [settled](tower_outcome::Settle), or, dropped unsettled (the call was cancelled), frees its
/// half-open probe slot and records nothing.
///
/// It lives in the response future, or in the response body when the classifier waits for the
/// end of the stream.
pub struct Ticket<C> {
    core: Arc<Core<C>>,
    /// `generation (32 bits) | probe (1) | timed (1) | start in ms (30, wrapping)`: one word,
    /// so the ticket moves as two machine words.
    meta: u64,
}

const PROBE_BIT: u64 = 1 << 32;
const TIMED_BIT: u64 = 1 << 33;
const START_SHIFT: u32 = 34;
const START_MASK: u64 = (1 << 30) - 1;

impl<C> Drop for Ticket<C> {
    fn drop(&mut self) {
        if self.meta & PROBE_BIT != 0 {
            self.core.release_probe(self.generation());
        }
    }
}

impl<C> Ticket<C> {
    fn new(core: Arc<Core<C>>, generation: u32, probe: bool) -> Self {
        Self {
            core,
            meta: u64::from(generation) | if probe { PROBE_BIT } else { 0 },
        }
    }

    const fn generation(&self) -> u32 {
        self.meta as u32
    }

    /// Starts the call's clock, when a slow-call rule needs it.
    #[inline]
    pub(crate) fn start(&mut self) {
        if self.core.slow_ns != 0 {
            let ms = self.core.common.now_ns() / 1_000_000;
            self.meta |= TIMED_BIT | (ms & START_MASK) << START_SHIFT;
        }
    }

    /// Milliseconds since [`start`](Self::start), if the call was timed.
    fn elapsed_ms(&self) -> Option<u64> {
        (self.meta & TIMED_BIT != 0).then(|| {
            let now = self.core.common.now_ns() / 1_000_000;
            now.wrapping_sub(self.meta >> START_SHIFT) & START_MASK
        })
    }

    pub(crate) fn classifier(&self) -> &C {
        &self.core.common.classifier
    }
}

impl<C> tower_outcome::Settle for Ticket<C> {
    #[inline]
    fn settle(mut self, outcome: Outcome) {
        let probe = self.meta & PROBE_BIT != 0;
        self.core
            .record(self.generation(), probe, || self.elapsed_ms(), outcome);
        // Settled: the slot was released (or the breaker moved on) by `record`.
        self.meta &= !PROBE_BIT;
    }
}

impl<C> fmt::Debug for Ticket<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("breaker", &self.core.common.name)
            .field("generation", &self.generation())
            .field("probe", &(self.meta & PROBE_BIT != 0))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_survives_the_slot() {
        let long = Duration::from_secs(86_400 * 365);
        for (reason, retry_after) in [
            (Reason::CircuitOpen, Some(Duration::from_millis(1500))),
            (Reason::HalfOpenFull, None),
            (Reason::ForcedOpen, None),
            (Reason::CircuitOpen, Some(long)),
        ] {
            let refusal = Refusal::new(reason, retry_after);
            let mut slot = Slot::<()> {
                word: refusal.0 << 2 | SLOT_REFUSED,
                probe: None,
            };
            assert!(slot.is_refused());
            let back = Refusal(std::mem::replace(&mut slot.word, 0) >> 2);
            assert_eq!(back.reason(), reason);
            let expected =
                retry_after.map(|d| d.min(Duration::from_nanos(u64::MAX >> (REFUSAL_SHIFT + 2))));
            assert_eq!(back.retry_after(), expected);
        }
    }

    #[test]
    fn the_state_word_packs_its_fields() {
        let word = Word::new(State::HalfOpen, GEN_MASK)
            .add_probe()
            .add_success();
        assert_eq!(word.state(), State::HalfOpen);
        assert_eq!(word.generation(), GEN_MASK);
        assert_eq!((word.probes(), word.successes()), (1, 1));
        assert_eq!(word.remove_probe().probes(), 0);
    }
}

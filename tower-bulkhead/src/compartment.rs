//! A compartment: the concurrency limit, the token budgets and the FIFO queue of waiters.
//!
//! The hot path is one packed word: calls in flight in the low 32 bits, waiters in the high
//! 32. A call is admitted with one compare-and-swap when there is room and nobody waits; a
//! permit is given back with one subtraction, which also tells whether a waiter needs waking.
//! The queue (a `Mutex`) is touched only when calls wait.
//!
//! Invariants:
//! - The waiter count in the word is the number of queued entries still waiting (neither
//!   granted nor refused). Dispatch takes a waiter's slot first (`+1` in flight) and only then,
//!   once every budget has admitted it, removes it from the count: the count never drops
//!   while a dispatch is undecided, so a release racing with it always sees a waiter and runs
//!   a dispatch of its own after this one (they are serialised by the queue's lock). No
//!   release can slip between a failed attempt and its undo unseen: no lost wake-up.
//! - A release gives its tokens back before its slot, so the dispatch it triggers finds them.
//! - Wakers are woken after the queue's lock is released.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::time::Instant;
use tower_outcome::{LayerKind, Reason, Rejected};

use crate::budget::{InFlightBudget, RateBudget};
use crate::config::{Limits, MAX_TOKENS};
use crate::metrics::{Metrics, reason_label};
use metrics::Gauge;

const ONE_WAITER: u64 = 1 << 32;
const IN_FLIGHT: u64 = ONE_WAITER - 1;

/// What every compartment of one layer shares: its name, metrics and clock origin.
pub(crate) struct Common {
    pub(crate) name: Arc<str>,
    pub(crate) metrics: Metrics,
    epoch: Instant,
}

impl Common {
    pub(crate) fn new(name: Arc<str>, keyed: bool) -> Self {
        Self {
            metrics: Metrics::new(&name, keyed),
            name,
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the layer was built, from `tokio::time` (so paused time moves it).
    pub(crate) fn now_ns(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.epoch))
    }

    pub(crate) fn instant(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Why a call was not admitted at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Denied {
    pub(crate) reason: Reason,
    pub(crate) retry_after: Option<Duration>,
    /// `retry_after` is when the rate budget will have enough, not just a hint.
    pub(crate) until_refill: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    /// Holds a slot and its tokens until its future collects them.
    Granted,
    /// Can no longer fit (a limit was lowered below its cost): refused, out of the count.
    Refused,
}

struct Entry {
    id: u64,
    tokens: u64,
    rate: u64,
    state: State,
    waker: Option<Waker>,
}

/// What a waiter finds when it looks at its place in the queue.
pub(crate) enum Grant {
    Admitted(Permit),
    Refused(Denied),
    /// Still waiting; when a refill will let the head of the queue in, if that is what it
    /// waits for.
    Waiting(Option<Instant>),
}

/// Wakers collected under the queue's lock, woken once it is released.
#[derive(Default)]
#[must_use]
struct Wakers(Vec<Waker>);

impl Wakers {
    fn wake(self) {
        for waker in self.0 {
            waker.wake();
        }
    }
}

#[derive(Default)]
struct Queue {
    next_id: u64,
    /// Sorted by `id`. Granted and refused entries stay until their future collects them.
    entries: VecDeque<Entry>,
}

impl Queue {
    fn find(&self, id: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&id, |e| e.id).ok()
    }
}

/// What every call reads and writes, on cache lines of its own: apart from the `Arc`'s
/// reference counts (also written by every call) and from the rarely touched fields, so two
/// cores admitting calls bounce as few lines as possible.
#[repr(align(128))]
struct Hot {
    word: AtomicU64,
    max_concurrent: AtomicU32,
    /// A budget of either kind exists: one byte read on the hot path instead of two.
    budgets: bool,
    /// `bulkhead_in_flight`, kept here so admission and release read no other line for it.
    in_flight: Gauge,
    budget: Option<InFlightBudget>,
    rate: Option<RateBudget>,
}

/// One compartment.
pub(crate) struct Compartment {
    hot: Hot,
    /// A hint for `poll_ready`, apart from the hot words so that reading it does not pull
    /// their cache line: set when the last slot is taken or calls wait, cleared when room
    /// appears. Written only at those transitions.
    full: AtomicBool,
    max_wait_ns: AtomicU64,
    max_waiters: AtomicU32,
    retry_after: Duration,
    queue: Mutex<Queue>,
    pub(crate) common: Arc<Common>,
    /// The key's label, for events (per-key compartments only).
    pub(crate) key: Option<Arc<str>>,
    pub(crate) last_used_ns: AtomicU64,
    /// Used since the key map last looked (per-key compartments): lookups only set this
    /// flag, so they need no clock read.
    pub(crate) touched: AtomicBool,
}

impl Compartment {
    pub(crate) fn new(limits: &Limits, common: Arc<Common>, key: Option<Arc<str>>) -> Self {
        Self {
            hot: Hot {
                word: AtomicU64::new(0),
                max_concurrent: AtomicU32::new(limits.max_concurrent),
                budgets: limits.token_budget.is_some() || limits.rate.is_some(),
                in_flight: common.metrics.in_flight_gauge(),
                budget: limits.token_budget.map(InFlightBudget::new),
                rate: limits.rate.map(RateBudget::new),
            },
            full: AtomicBool::new(false),
            max_wait_ns: AtomicU64::new(nanos(limits.max_wait)),
            max_waiters: AtomicU32::new(limits.max_waiters),
            retry_after: limits.retry_after,
            queue: Mutex::new(Queue::default()),
            last_used_ns: AtomicU64::new(common.now_ns()),
            touched: AtomicBool::new(false),
            common,
            key,
        }
    }

    /// Whether a cost function needs to run for this compartment.
    #[inline]
    pub(crate) const fn has_budgets(&self) -> bool {
        self.hot.budgets
    }

    /// Whether a call made now would likely not be admitted at once (every slot taken, or
    /// others waiting). Reads one flag; takes nothing.
    #[inline]
    pub(crate) fn looks_full(&self) -> bool {
        self.full.load(Relaxed)
    }

    fn is_full(&self) -> bool {
        let word = self.hot.word.load(Acquire);
        word >= ONE_WAITER || word & IN_FLIGHT >= u64::from(self.hot.max_concurrent.load(Relaxed))
    }

    /// Brings the hint up to date (it may be stale after racing transitions: the cost is only
    /// a call that polls the inner service ready and is then refused, or the reverse).
    #[cold]
    fn refresh_full(&self) {
        self.full.store(self.is_full(), Relaxed);
    }

    /// Takes a slot if one is free and nobody waits.
    #[inline]
    fn try_slot(&self) -> bool {
        let limit = u64::from(self.hot.max_concurrent.load(Relaxed));
        let mut word = self.hot.word.load(Relaxed);
        loop {
            if word >= ONE_WAITER || word & IN_FLIGHT >= limit {
                if !self.full.load(Relaxed) {
                    self.full.store(true, Relaxed);
                }
                return false;
            }
            match self
                .hot
                .word
                .compare_exchange_weak(word, word + 1, Acquire, Relaxed)
            {
                Ok(_) => {
                    if (word & IN_FLIGHT) + 1 >= limit {
                        self.full.store(true, Relaxed);
                    }
                    return true;
                }
                Err(now) => word = now,
            }
        }
    }

    /// Admits a call costing `cost` at once, or says why not. Takes nothing when it refuses.
    #[inline(always)]
    pub(crate) fn try_admit(self: &Arc<Self>, cost: u64) -> Result<Permit, Denied> {
        let (tokens, rate) = self.admit(cost)?;
        Ok(Permit::new(Arc::clone(self), tokens, rate))
    }

    /// As [`try_admit`](Self::try_admit), for a call sent to the inner service at once: its
    /// rate tokens are spent from the start.
    #[inline(always)]
    pub(crate) fn try_admit_sent(self: &Arc<Self>, cost: u64) -> Result<Permit, Denied> {
        let (tokens, rate) = self.admit(cost)?;
        Ok(Permit::new(Arc::clone(self), tokens, rate | SPENT))
    }

    /// As [`try_admit`](Self::try_admit), the permit taking over `self` (no reference-count
    /// traffic); on refusal `self` comes back.
    #[inline(always)]
    pub(crate) fn try_admit_owned(
        self: Arc<Self>,
        cost: u64,
    ) -> Result<Permit, (Arc<Self>, Denied)> {
        match self.admit(cost) {
            Ok((tokens, rate)) => Ok(Permit::new(self, tokens, rate)),
            Err(denied) => Err((self, denied)),
        }
    }

    /// A permit for a slot, when the compartment has no budget, a slot is free and nobody
    /// waits; `None` otherwise (the caller takes the general path, which says why).
    #[inline(always)]
    pub(crate) fn try_slot_permit(self: &Arc<Self>) -> Option<Permit> {
        if !self.try_slot() {
            return None;
        }
        self.hot.in_flight.increment(1.0);
        Some(Permit::new(Arc::clone(self), 0, 0))
    }

    /// Takes a slot and the tokens: `(in-flight tokens, rate tokens)` held.
    #[inline(always)]
    fn admit(&self, cost: u64) -> Result<(u64, u64), Denied> {
        if self.has_budgets() {
            return self.admit_tokens(cost.min(MAX_TOKENS));
        }
        if !self.try_slot() {
            return Err(self.full(Reason::BulkheadFull));
        }
        self.hot.in_flight.increment(1.0);
        Ok((0, 0))
    }

    fn admit_tokens(&self, cost: u64) -> Result<(u64, u64), Denied> {
        if !self.try_slot() {
            return Err(self.no_slot(cost));
        }
        let mut tokens = 0;
        if let Some(budget) = &self.hot.budget {
            if let Err(reason) = budget.take(cost) {
                self.release(0, 0);
                return Err(self.refused(reason));
            }
            tokens = cost;
        }
        let mut rate = 0;
        if let Some(bucket) = &self.hot.rate {
            let now = self.common.now_ns();
            if let Err(reason) = bucket.take(cost, now) {
                self.release(tokens, 0);
                return Err(match reason {
                    Reason::BudgetExhausted => Denied {
                        reason,
                        retry_after: Some(bucket.time_until(cost, now)),
                        until_refill: true,
                    },
                    _ => self.refused(reason),
                });
            }
            rate = cost;
        }
        self.hot.in_flight.increment(1.0);
        self.common.metrics.tokens_taken(tokens);
        Ok((tokens, rate))
    }

    /// Why a call with budgets found no slot: a request that can never fit is told so, even
    /// when the compartment is full; one the rate budget cannot pay for now is told when it
    /// can (a 429, not a wait in the queue for a slot).
    #[cold]
    #[inline(never)]
    fn no_slot(&self, cost: u64) -> Denied {
        if let Err(denied) = self.check_cost(cost) {
            return denied;
        }
        if let Some(bucket) = &self.hot.rate
            && cost > 0
        {
            let wait = bucket.time_until(cost, self.common.now_ns());
            if !wait.is_zero() {
                return Denied {
                    reason: Reason::BudgetExhausted,
                    retry_after: Some(wait),
                    until_refill: true,
                };
            }
        }
        self.full(Reason::BulkheadFull)
    }

    fn refused(&self, reason: Reason) -> Denied {
        match reason {
            Reason::CostExceedsCapacity => Denied {
                reason,
                retry_after: None,
                until_refill: false,
            },
            _ => self.full(reason),
        }
    }

    /// A request costing more than a budget's capacity can never be admitted.
    fn check_cost(&self, cost: u64) -> Result<(), Denied> {
        let exceeds = |r: Result<(), Reason>| {
            r.map_err(|reason| Denied {
                reason,
                retry_after: None,
                until_refill: false,
            })
        };
        if let Some(budget) = &self.hot.budget {
            exceeds(budget.check(cost))?;
        }
        if let Some(rate) = &self.hot.rate {
            exceeds(rate.check(cost))?;
        }
        Ok(())
    }

    pub(crate) fn full(&self, reason: Reason) -> Denied {
        Denied {
            reason,
            retry_after: Some(self.retry_after),
            until_refill: false,
        }
    }

    /// Gives back a slot, `tokens` of the in-flight budget and `rate` reserved rate tokens, and
    /// hands the room to waiters, if any.
    #[inline(always)]
    fn release(&self, tokens: u64, rate: u64) {
        if self.has_budgets() {
            self.give_back_tokens(tokens, rate);
        }
        self.release_slot();
    }

    /// Gives back a slot (after the tokens, so a woken waiter finds them).
    #[inline(always)]
    fn release_slot(&self) {
        let before = self.hot.word.fetch_sub(1, AcqRel);
        if before >= ONE_WAITER {
            self.dispatch_now();
        } else if self.full.load(Relaxed) {
            self.refresh_full();
        }
    }

    /// What a permit holds going back: its slot, its tokens, their gauges.
    #[inline(always)]
    fn release_permit(&self, tokens: u64, rate: u64) {
        self.hot.in_flight.decrement(1.0);
        if self.has_budgets() {
            self.release_tokens(tokens, rate);
        }
        self.release_slot();
    }

    /// [`release_permit`](Self::release_permit) out of line: a permit dropped, not released.
    #[inline(never)]
    fn release_permit_cold(&self, tokens: u64, rate: u64) {
        self.release_permit(tokens, rate);
    }

    /// A permit's tokens going back, with their gauge.
    #[inline]
    fn release_tokens(&self, tokens: u64, rate: u64) {
        self.common.metrics.tokens_given_back(tokens);
        self.give_back_tokens(tokens, rate);
    }

    /// Gives back in-flight `tokens`, and the `rate` reservation unless it is marked spent.
    #[inline]
    fn give_back_tokens(&self, tokens: u64, rate: u64) {
        if let Some(budget) = &self.hot.budget {
            budget.give_back(tokens);
        }
        if let Some(bucket) = &self.hot.rate
            && rate & SPENT == 0
            && rate > 0
        {
            bucket.give_back(rate, self.common.now_ns());
        }
    }

    #[cold]
    fn dispatch_now(&self) {
        let wakers = self.dispatch(&mut self.lock());
        wakers.wake();
    }

    /// Wakes waiters if room appeared other than by a release (a raised limit, tokens given
    /// back by a settled call), and refuses those a lowered limit leaves without a chance.
    pub(crate) fn wake_waiters(&self) {
        // A read-modify-write, not a load, so it is ordered with a waiter's registration.
        if self.hot.word.fetch_add(0, AcqRel) >= ONE_WAITER {
            self.dispatch_now();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Grants room to waiters in FIFO order, stopping at the first that does not fit; refuses
    /// on the way those that never can any more. Returns the wakers to wake once the lock is
    /// released.
    fn dispatch(&self, queue: &mut Queue) -> Wakers {
        let mut wakers = Wakers::default();
        let now = self.hot.rate.as_ref().map(|_| self.common.now_ns());
        let limit = u64::from(self.hot.max_concurrent.load(Relaxed));
        for entry in queue
            .entries
            .iter_mut()
            .filter(|e| e.state == State::Waiting)
        {
            if self.exceeds(entry) {
                entry.state = State::Refused;
                self.hot.word.fetch_sub(ONE_WAITER, AcqRel);
                wakers.0.extend(entry.waker.take());
                continue;
            }
            // A slot, the waiter still counted as waiting until it is admitted.
            let taken = self
                .hot
                .word
                .fetch_update(AcqRel, Acquire, |w| {
                    (w & IN_FLIGHT < limit).then_some(w + 1)
                })
                .is_ok();
            if !taken {
                break;
            }
            let undo_slot = || {
                self.hot.word.fetch_sub(1, AcqRel);
            };
            if let Some(budget) = &self.hot.budget
                && !budget.try_take(entry.tokens)
            {
                undo_slot();
                break;
            }
            if let (Some(bucket), Some(now)) = (&self.hot.rate, now)
                && !bucket.try_take(entry.rate, now)
            {
                if let Some(budget) = &self.hot.budget {
                    budget.give_back(entry.tokens);
                }
                undo_slot();
                break;
            }
            self.hot.word.fetch_sub(ONE_WAITER, AcqRel);
            entry.state = State::Granted;
            self.hot.in_flight.increment(1.0);
            self.common.metrics.tokens_taken(entry.tokens);
            wakers.0.extend(entry.waker.take());
        }
        self.refresh_full();
        wakers
    }

    /// Whether a queued call costs more than a budget's capacity now (a limit was lowered).
    fn exceeds(&self, entry: &Entry) -> bool {
        self.hot
            .budget
            .as_ref()
            .is_some_and(|b| b.check(entry.tokens).is_err())
            || self
                .hot
                .rate
                .as_ref()
                .is_some_and(|r| r.check(entry.rate).is_err())
    }

    /// When the head of the queue, blocked by the rate budget, will find enough tokens.
    fn next_look(&self, queue: &Queue) -> Option<Instant> {
        let bucket = self.hot.rate.as_ref()?;
        let head = queue.entries.iter().find(|e| e.state == State::Waiting)?;
        let now = self.common.now_ns();
        let wait = bucket.time_until(head.rate, now);
        (!wait.is_zero()).then(|| self.common.instant(now) + wait)
    }

    /// How long a call may wait here; zero: it may not.
    pub(crate) fn max_wait(&self) -> Duration {
        Duration::from_nanos(self.max_wait_ns.load(Relaxed))
    }

    /// Queues a call costing `cost`; `None` when the queue is full. It may be granted at once.
    pub(crate) fn enqueue(&self, cost: u64) -> Option<u64> {
        let cost = cost.min(MAX_TOKENS);
        let mut queue = self.lock();
        if self.hot.word.load(Relaxed) >> 32 >= u64::from(self.max_waiters.load(Relaxed)) {
            return None;
        }
        let id = queue.next_id;
        queue.next_id += 1;
        queue.entries.push_back(Entry {
            id,
            tokens: if self.hot.budget.is_some() { cost } else { 0 },
            rate: if self.hot.rate.is_some() { cost } else { 0 },
            state: State::Waiting,
            waker: None,
        });
        self.hot.word.fetch_add(ONE_WAITER, AcqRel);
        let wakers = self.dispatch(&mut queue);
        drop(queue);
        wakers.wake();
        Some(id)
    }

    /// What became of waiter `id`: granted, refused, or still waiting (then `cx`'s waker is
    /// registered). With `dispatch`, the queue is dispatched first (a refill may have made
    /// room).
    pub(crate) fn poll_grant(
        self: &Arc<Self>,
        id: u64,
        cx: &mut Context<'_>,
        dispatch: bool,
    ) -> Grant {
        let mut queue = self.lock();
        let wakers = if dispatch {
            self.dispatch(&mut queue)
        } else {
            Wakers::default()
        };
        let grant = match queue.find(id) {
            None => Grant::Refused(self.full(Reason::WaitTimedOut)),
            Some(index) if queue.entries[index].state == State::Waiting => {
                let entry = &mut queue.entries[index];
                match &entry.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => entry.waker = Some(cx.waker().clone()),
                }
                Grant::Waiting(self.next_look(&queue))
            }
            Some(index) => match queue.entries.remove(index) {
                Some(entry) => self.collect(&entry),
                None => Grant::Refused(self.full(Reason::WaitTimedOut)),
            },
        };
        drop(queue);
        wakers.wake();
        grant
    }

    /// Takes waiter `id` out of the queue (its wait timed out, or its future was dropped). If
    /// it had been granted meanwhile, its permit; otherwise why it was not: when a rate budget
    /// it waited for is the cause, with the time until it refills enough.
    pub(crate) fn leave(self: &Arc<Self>, id: u64) -> Result<Permit, Denied> {
        let mut queue = self.lock();
        let Some(entry) = queue.find(id).and_then(|i| queue.entries.remove(i)) else {
            return Err(self.full(Reason::WaitTimedOut));
        };
        if entry.state != State::Waiting {
            drop(queue);
            return match self.collect(&entry) {
                Grant::Admitted(permit) => Ok(permit),
                Grant::Refused(denied) => Err(denied),
                Grant::Waiting(_) => Err(self.full(Reason::WaitTimedOut)),
            };
        }
        self.hot.word.fetch_sub(ONE_WAITER, AcqRel);
        // The head leaving may let the next one in; the new head looks again at what it
        // waits for.
        let mut wakers = self.dispatch(&mut queue);
        if let Some(head) = queue.entries.iter().find(|e| e.state == State::Waiting) {
            wakers.0.extend(head.waker.clone());
        }
        drop(queue);
        wakers.wake();
        let mut denied = self.full(Reason::WaitTimedOut);
        if let Some(bucket) = &self.hot.rate {
            let wait = bucket.time_until(entry.rate, self.common.now_ns());
            if !wait.is_zero() {
                denied.retry_after = Some(wait);
                denied.until_refill = true;
            }
        }
        Err(denied)
    }

    /// A decided entry, taken out of the queue: its permit, or its refusal.
    fn collect(self: &Arc<Self>, entry: &Entry) -> Grant {
        if entry.state == State::Granted {
            return Grant::Admitted(Permit::new(Arc::clone(self), entry.tokens, entry.rate));
        }
        Grant::Refused(Denied {
            reason: Reason::CostExceedsCapacity,
            retry_after: None,
            until_refill: false,
        })
    }

    /// Whether waiting up to `max_wait` could possibly end in admission (an exhausted rate
    /// budget that refills later than that cannot).
    pub(crate) fn worth_waiting(&self, denied: &Denied, max_wait: Duration) -> bool {
        match denied.reason {
            Reason::CostExceedsCapacity => false,
            Reason::BudgetExhausted if denied.until_refill => {
                denied.retry_after.is_none_or(|t| t <= max_wait)
            }
            _ => true,
        }
    }

    /// Counts and traces a refusal, and builds the rejection the caller gets.
    pub(crate) fn reject(&self, denied: Denied) -> Rejected {
        self.common.metrics.rejected(denied.reason);
        let label = reason_label(denied.reason);
        match (&self.key, denied.reason) {
            (key, Reason::WaitTimedOut) => tracing::info!(
                target: "tower_bulkhead",
                bulkhead = &*self.common.name,
                key = key.as_deref(),
                reason = label,
                "bulkhead wait timed out"
            ),
            (key, _) => tracing::debug!(
                target: "tower_bulkhead",
                bulkhead = &*self.common.name,
                key = key.as_deref(),
                reason = label,
                "bulkhead rejected a call"
            ),
        }
        let rejected = Rejected::new(LayerKind::Bulkhead, denied.reason)
            .with_name(Arc::clone(&self.common.name));
        match denied.retry_after {
            Some(delay) => rejected.with_retry_after(delay),
            None => rejected,
        }
    }

    // Reading and changing the limits, for handles.

    pub(crate) fn in_flight(&self) -> u32 {
        (self.hot.word.load(Acquire) & IN_FLIGHT) as u32
    }

    pub(crate) fn waiters(&self) -> u32 {
        (self.hot.word.load(Acquire) >> 32) as u32
    }

    pub(crate) fn max_concurrent(&self) -> u32 {
        self.hot.max_concurrent.load(Relaxed)
    }

    pub(crate) fn set_max_concurrent(&self, value: u32) {
        let before = self.hot.max_concurrent.swap(value, AcqRel);
        if value > before {
            self.wake_waiters();
        }
        self.refresh_full();
    }

    pub(crate) fn set_max_wait(&self, value: Duration) {
        self.max_wait_ns.store(nanos(value), Relaxed);
    }

    pub(crate) fn tokens_in_use(&self) -> Option<u64> {
        self.hot.budget.as_ref().map(|b| b.in_use.load(Acquire))
    }

    pub(crate) fn token_budget(&self) -> Option<u64> {
        self.hot.budget.as_ref().map(|b| b.capacity.load(Relaxed))
    }

    /// `false` when the compartment has no in-flight budget.
    pub(crate) fn set_token_budget(&self, value: u64) -> bool {
        let Some(budget) = &self.hot.budget else {
            return false;
        };
        let before = budget.capacity.swap(value, AcqRel);
        if value != before {
            // Raised: room for waiters; lowered: waiters that no longer fit are refused.
            self.wake_waiters();
        }
        true
    }

    pub(crate) fn rate_available(&self) -> Option<i64> {
        let bucket = self.hot.rate.as_ref()?;
        Some(bucket.available(self.common.now_ns()))
    }

    pub(crate) fn rate_period(&self) -> Option<Duration> {
        self.hot.rate.as_ref().map(RateBudget::period)
    }

    /// Whether forgetting this compartment would give nothing away: no call holds or waits
    /// for anything, the in-flight budget holds nothing and the rate budget is full.
    pub(crate) fn at_rest(&self, now_ns: u64) -> bool {
        self.hot.word.load(Acquire) == 0
            && self
                .hot
                .budget
                .as_ref()
                .is_none_or(|b| b.in_use.load(Acquire) == 0)
            && self.hot.rate.as_ref().is_none_or(|b| b.is_full(now_ns))
    }

    pub(crate) fn rate_limits(&self) -> Option<(u64, u64)> {
        self.hot
            .rate
            .as_ref()
            .map(|b| (b.refill_tokens(), b.burst()))
    }

    /// `false` when the compartment has no rate budget.
    pub(crate) fn set_rate(&self, refill: u64, burst: u64) -> bool {
        let Some(bucket) = &self.hot.rate else {
            return false;
        };
        bucket.set_refill(refill, burst, self.common.now_ns());
        self.wake_waiters();
        true
    }
}

impl fmt::Debug for Compartment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compartment")
            .field("name", &self.common.name)
            .field("key", &self.key)
            .field("in_flight", &self.in_flight())
            .field("max_concurrent", &self.max_concurrent())
            .field("waiters", &self.waiters())
            .field("tokens_in_use", &self.tokens_in_use())
            .finish_non_exhaustive()
    }
}

/// What an admitted call holds: a slot of its compartment, the tokens it holds in the
/// in-flight budget, and the rate tokens it reserved. Dropping it gives back the slot and the
/// in-flight tokens, and, unless the request was sent to the inner service, the rate
/// reservation (a call cancelled before it was sent spends nothing; once sent, its rate
/// tokens are spent).
///
/// It lives in the response future, and with [`.hold_until_body_end()`](crate::BulkheadLayer::hold_until_body_end)
/// in the response body until the stream ends or is dropped.
#[must_use]
pub struct Permit {
    /// `None` only once released (by [`release`](Self::release), which lets the release be
    /// inlined where a call ends instead of going through the drop glue).
    compartment: Option<Arc<Compartment>>,
    tokens: u64,
    /// Rate tokens taken from the bucket, a reservation until the `SPENT` bit is set.
    rate: u64,
}

/// The rate tokens of a permit are spent (the call happened), not refundable.
const SPENT: u64 = 1 << 63;
#[cfg(feature = "http")]
/// No actual cost reported.
const UNREPORTED: u64 = u64::MAX;

impl Permit {
    #[inline(always)]
    const fn new(compartment: Arc<Compartment>, tokens: u64, rate: u64) -> Self {
        Self {
            compartment: Some(compartment),
            tokens,
            rate,
        }
    }

    /// The request reached the inner service: its rate tokens are spent, whatever happens to
    /// the call from now on (an actual cost may still correct the amount).
    #[inline(always)]
    pub(crate) const fn sent(mut self) -> Self {
        self.rate |= SPENT;
        self
    }

    #[inline(always)]
    fn compartment(&self) -> &Compartment {
        self.compartment
            .as_deref()
            .expect("a permit is only released once")
    }

    /// Gives everything back now: what dropping the permit does, inlined.
    #[inline(always)]
    pub(crate) fn release(mut self) {
        let compartment = self.compartment.take();
        let (tokens, rate) = (self.tokens, self.rate);
        // Nothing is left to drop: skip the drop glue (an out-of-line call) altogether.
        std::mem::forget(self);
        if let Some(compartment) = compartment {
            compartment.release_permit(tokens, rate);
        }
    }

    /// Tokens this call holds in the in-flight budget (0 without one).
    #[must_use]
    pub const fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Replaces the estimate with the actual cost (when known) and spends the rate tokens.
    ///
    /// In-flight budget: the call now holds `actual` (more: debt that blocks admissions until
    /// it drains; less: the difference is given back at once). Rate budget: the difference is
    /// charged or given back. Without an actual cost the estimate stands.
    #[inline]
    pub(crate) fn settle(&mut self, actual: Option<u64>) {
        match actual {
            // The estimate stands: the rate tokens are spent (they were when it was sent).
            None => self.rate |= SPENT,
            Some(actual) if self.compartment().has_budgets() => self.settle_tokens(actual),
            Some(_) => {}
        }
    }

    fn settle_tokens(&mut self, actual: u64) {
        let Some(compartment) = self.compartment.clone() else {
            return;
        };
        let actual = actual.min(MAX_TOKENS);
        let mut freed = false;
        if let Some(budget) = &compartment.hot.budget {
            if actual > self.tokens {
                budget.add(actual - self.tokens);
                compartment
                    .common
                    .metrics
                    .tokens_changed(actual - self.tokens, 0);
            } else if actual < self.tokens {
                budget.give_back(self.tokens - actual);
                compartment
                    .common
                    .metrics
                    .tokens_changed(0, self.tokens - actual);
                freed = true;
            }
            self.tokens = actual;
        }
        if let Some(bucket) = &compartment.hot.rate {
            let taken = self.rate & !SPENT;
            if actual > taken {
                bucket.charge(actual - taken, compartment.common.now_ns());
            } else if actual < taken {
                bucket.give_back(taken - actual, compartment.common.now_ns());
                freed = true;
            }
            self.rate = actual;
        }
        self.rate |= SPENT;
        if freed {
            compartment.wake_waiters();
        }
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        if let Some(compartment) = self.compartment.take() {
            compartment.release_permit_cold(self.tokens, self.rate);
        }
    }
}

#[cfg(feature = "http")]
/// What a streamed response's body holds ([`UntilBodyEnd`](crate::UntilBodyEnd)): the call's
/// [`Permit`], and the cost its caller may report through the response's [`CostReport`],
/// applied when the body ends or is dropped.
pub struct StreamPermit {
    permit: Permit,
    report: Arc<AtomicU64>,
}

#[cfg(feature = "http")]
impl StreamPermit {
    /// Wraps `permit`, and gives the handle the caller reports the actual cost through.
    pub(crate) fn new(permit: Permit) -> (Self, CostReport) {
        let report = Arc::new(AtomicU64::new(UNREPORTED));
        let cell = Arc::clone(&report);
        (Self { permit, report }, CostReport { cell })
    }
}

#[cfg(feature = "http")]
impl Drop for StreamPermit {
    fn drop(&mut self) {
        let actual = self.report.load(Acquire);
        if actual != UNREPORTED {
            self.permit.settle(Some(actual));
        }
    }
}

#[cfg(feature = "http")]
impl tower_outcome::Settle for StreamPermit {
    /// The body ended: apply the reported cost, give everything back.
    fn settle(self, _outcome: tower_outcome::Outcome) {}
}

#[cfg(feature = "http")]
impl fmt::Debug for StreamPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamPermit")
            .field("permit", &self.permit)
            .field(
                "report",
                &CostReport {
                    cell: Arc::clone(&self.report),
                },
            )
            .finish()
    }
}

#[cfg(feature = "http")]
/// Reports what a streamed call actually cost, once the caller knows (for example from the
/// usage an LLM sends in the last event of its stream).
///
/// With [`hold_until_body_end`](crate::BulkheadLayer::hold_until_body_end), every admitted
/// response carries one in its extensions. The reported cost replaces the estimate (or the
/// cost settled from the response head) when the body ends or is dropped, as
/// [`ActualCost`](crate::ActualCost) would: report it before polling the body past its
/// end. A report after that is ignored; the last report wins.
///
/// ```
/// # async fn demo(response: http::Response<()>) {
/// use tower_bulkhead::CostReport;
///
/// let report = response.extensions().get::<CostReport>().cloned();
/// // … read the stream; its last event says `"usage": {"total_tokens": 742}` …
/// if let Some(report) = report {
///     report.actual_cost(742);
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct CostReport {
    cell: Arc<AtomicU64>,
}

#[cfg(feature = "http")]
impl CostReport {
    /// Records the call's actual cost, applied when the body ends.
    pub fn actual_cost(&self, tokens: u64) {
        self.cell.store(tokens.min(MAX_TOKENS), Release);
    }
}

#[cfg(feature = "http")]
impl fmt::Debug for CostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.cell.load(Acquire);
        f.debug_struct("CostReport")
            .field("actual", &(value != UNREPORTED).then_some(value))
            .finish()
    }
}

impl tower_outcome::Settle for Permit {
    /// The body ended: give everything back (the outcome does not matter to a bulkhead).
    fn settle(self, _outcome: tower_outcome::Outcome) {}
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field(
                "bulkhead",
                &self.compartment.as_ref().map(|c| &c.common.name),
            )
            .field("key", &self.compartment.as_ref().map(|c| &c.key))
            .field("tokens", &self.tokens)
            .field("rate", &(self.rate & !SPENT))
            .field("spent", &(self.rate & SPENT != 0))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;
    use crate::BulkheadConfig;

    fn compartment(config: BulkheadConfig) -> Arc<Compartment> {
        let limits = config.limits().unwrap();
        let common = Arc::new(Common::new("stress".into(), false));
        Arc::new(Compartment::new(&limits, common, None))
    }

    /// The race of the lost wake-up: one thread dispatches the queue (here through
    /// `wake_waiters`, as a settled call or a raised limit does) while the waiter's head
    /// cannot get its token, and the other releases that token and its slot. Whatever the
    /// interleaving, the waiter must end granted, never left queued with everything free.
    #[test]
    fn a_release_racing_with_a_dispatch_never_loses_the_waiters_wake_up() {
        const ROUNDS: usize = 200_000;
        let c = compartment(BulkheadConfig {
            max_concurrent: 2,
            token_budget: Some(1),
            max_wait_seconds: 60.0,
            ..BulkheadConfig::default()
        });
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let other = {
            let (c, started, finished) = (c.clone(), started.clone(), finished.clone());
            std::thread::spawn(move || {
                for round in 1..=ROUNDS {
                    let mut spins = 0u32;
                    while started.load(Acquire) < round {
                        spins = spins.wrapping_add(1);
                        if spins.is_multiple_of(4096) {
                            if std::time::Instant::now() > deadline {
                                return;
                            }
                            std::thread::yield_now();
                        }
                        std::hint::spin_loop();
                    }
                    c.wake_waiters();
                    finished.store(round, Release);
                }
            })
        };
        let mut cx = Context::from_waker(Waker::noop());
        let (mut lost, mut rounds) = (0, 0);
        for round in 1..=ROUNDS {
            if std::time::Instant::now() > deadline {
                break;
            }
            let permit = c.try_admit(1).unwrap();
            let id = c.enqueue(1).unwrap();
            started.store(round, Release);
            // A varying delay, so the release lands at every point of the other thread's
            // dispatch.
            for _ in 0..(round * 7) % 97 {
                std::hint::spin_loop();
            }
            drop(permit);
            while finished.load(Acquire) < round && std::time::Instant::now() <= deadline {
                std::hint::spin_loop();
                std::thread::yield_now();
            }
            match c.poll_grant(id, &mut cx, false) {
                Grant::Admitted(permit) => drop(permit),
                _ => {
                    lost += 1;
                    drop(c.leave(id));
                }
            }
            rounds = round;
        }
        started.store(usize::MAX, Release);
        other.join().unwrap();
        assert!(rounds >= 1000, "only {rounds} rounds ran");
        assert_eq!(
            lost, 0,
            "{lost} waiters of {rounds} left queued with room free"
        );
        assert_eq!(
            (c.in_flight(), c.waiters(), c.tokens_in_use()),
            (0, 0, Some(0))
        );
    }

    /// Records whether the queue's lock was free when it was woken.
    struct Probe {
        compartment: Arc<Compartment>,
        woken_unlocked: AtomicBool,
    }

    impl Wake for Probe {
        fn wake(self: Arc<Self>) {
            let free = self.compartment.queue.try_lock().is_ok();
            self.woken_unlocked.store(free, SeqCst);
        }
    }

    #[test]
    fn waiters_are_woken_after_the_queue_lock_is_released() {
        use std::sync::atomic::Ordering::SeqCst;
        let c = compartment(BulkheadConfig {
            max_concurrent: 1,
            max_wait_seconds: 60.0,
            ..BulkheadConfig::default()
        });
        let permit = c.try_admit(0).unwrap();
        let id = c.enqueue(0).unwrap();
        let probe = Arc::new(Probe {
            compartment: c.clone(),
            woken_unlocked: AtomicBool::new(false),
        });
        let waker = Waker::from(probe.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(
            c.poll_grant(id, &mut cx, false),
            Grant::Waiting(_)
        ));
        drop(permit);
        assert!(probe.woken_unlocked.load(SeqCst));
        assert!(matches!(
            c.poll_grant(id, &mut cx, false),
            Grant::Admitted(_)
        ));
    }
}

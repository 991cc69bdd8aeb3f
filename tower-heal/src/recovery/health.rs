//! The health monitor and the recovery it starts: shared by every clone of the service.
//!
//! Invariants:
//! - `rebuilding` is set only while `control.recovering` is, and both are cleared by `finish`,
//!   which runs exactly once per recovery: when the action ends, times out (`rebuild_timeout`),
//!   panics, or its task is dropped (the `Supervisor` guard).
//! - `generation` changes only under the `current` lock, so an instance read with its
//!   generation under that lock belongs to it. Outcomes carry the generation their call was
//!   sent to; those of an older generation are not counted.
//! - A waiter's waker is in `waiters` only while its future waits: a future that stops waiting
//!   (woken, timed out or dropped) takes its entry out, so the list never outgrows the calls
//!   waiting right now.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;
use tower_outcome::{BoxError, LayerKind, Reason, Rejected};

use super::config::Settings;
use crate::metrics::RecoveryMetrics;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a recovery does.
pub(crate) enum Action<S> {
    /// Run a hook (clear a cache, reset a pool); calls go on meanwhile.
    Hook(HookFn),
    /// Build a new inner service; calls wait or are rejected meanwhile.
    Rebuild(FactoryFn<S>),
}

/// Told to the escalation callback when recoveries stop helping.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Escalation<'a> {
    /// The component's name.
    pub name: &'a str,
    /// Recoveries run in a row without improvement.
    pub attempts: u32,
    /// The success rate over the current window.
    pub success_rate: f64,
}

pub(crate) type EscalationListener = Arc<dyn Fn(&Escalation<'_>) + Send + Sync>;

const LOW: u64 = 0xffff_ffff;
const FAILURE: u64 = 1 | (1 << 32);

/// Rare-path state, behind the lock.
struct Control {
    /// Recoveries in a row without an improvement seen in between.
    attempts: u32,
    escalated: bool,
    /// No recovery before this.
    not_before: Option<Instant>,
    recovering: bool,
    rng: fastrand::Rng,
}

pub(crate) struct Health<S> {
    pub(crate) name: Arc<str>,
    pub(crate) settings: Settings,
    /// Successes in the window.
    successes: AtomicU64,
    /// Failures in the window (low 32 bits) and failures in a row (high 32 bits).
    failures: AtomicU64,
    /// When the window opened, in nanoseconds after `base`.
    window_start: AtomicU64,
    base: Instant,
    control: Mutex<Control>,
    action: Action<S>,
    /// Set while a rebuild runs: no call goes to the old instance meanwhile.
    pub(crate) rebuilding: AtomicBool,
    /// Bumped when a recovery succeeds (and a rebuilt instance is in place); services refresh
    /// their copy, and outcomes of older generations are not counted.
    pub(crate) generation: AtomicU64,
    pub(crate) current: Mutex<Option<S>>,
    waiters: Mutex<Waiters>,
    escalation: Option<EscalationListener>,
    metrics: RecoveryMetrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below leaves its data consistent before anything can panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S> Health<S> {
    pub(crate) fn new(
        name: Arc<str>,
        settings: Settings,
        action: Action<S>,
        escalation: Option<EscalationListener>,
    ) -> Self {
        let rng = settings
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        let metrics = RecoveryMetrics::new(&name);
        Self {
            name,
            settings,
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            window_start: AtomicU64::new(0),
            base: Instant::now(),
            control: Mutex::new(Control {
                attempts: 0,
                escalated: false,
                not_before: None,
                recovering: false,
                rng,
            }),
            action,
            rebuilding: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            current: Mutex::new(None),
            waiters: Mutex::new(Waiters::default()),
            escalation,
            metrics,
        }
    }

    pub(crate) fn is_rebuild(&self) -> bool {
        matches!(self.action, Action::Rebuild(_))
    }

    pub(crate) fn rejection(&self) -> Rejected {
        Rejected::new(
            LayerKind::Heal,
            Reason::Other("is rebuilding its inner service"),
        )
        .with_name(Arc::clone(&self.name))
    }

    /// Whether an outcome of a call sent to `generation` still counts.
    #[inline]
    fn current_generation(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
    }

    /// The current instance and its generation (rebuild mode).
    pub(crate) fn current(&self) -> Option<(S, u64)>
    where
        S: Clone,
    {
        let current = lock(&self.current);
        let generation = self.generation.load(Ordering::Acquire);
        current.clone().map(|s| (s, generation))
    }

    /// A success of a call sent to `generation`: two loads and one shared increment (a store
    /// only after failures in a row).
    #[inline]
    pub(crate) fn success(&self, generation: u64) {
        if !self.current_generation(generation) {
            return;
        }
        self.successes.fetch_add(1, Ordering::Relaxed);
        if self.failures.load(Ordering::Relaxed) > LOW {
            self.failures.fetch_and(LOW, Ordering::Relaxed);
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn reset_window(&self, now: Instant) {
        self.successes.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.window_start.store(self.nanos(now), Ordering::Relaxed);
    }

    /// A failure of a call sent to `generation`: reads the clock, rolls the window if it is
    /// over, and recovers when due. A failure of an older generation is not counted.
    pub(crate) fn failure(self: &Arc<Self>, generation: u64)
    where
        S: Clone + Send + 'static,
    {
        if !self.current_generation(generation) {
            return;
        }
        let now = Instant::now();
        let start = self.window_start.load(Ordering::Relaxed);
        let window = u64::try_from(self.settings.window.as_nanos()).unwrap_or(u64::MAX);
        if self.nanos(now).saturating_sub(start) >= window {
            // The window is a tumbling one, rolled on the failure path so a success never
            // reads the clock. A healthy window behind us means the last recovery helped.
            let successes = self.successes.load(Ordering::Relaxed);
            let failed = self.failures.load(Ordering::Relaxed) & LOW;
            if !self.unhealthy(successes, failed, 0) {
                let mut control = lock(&self.control);
                control.attempts = 0;
                control.escalated = false;
                control.not_before = None;
            }
            let consecutive = self.failures.load(Ordering::Relaxed) >> 32;
            self.successes.store(0, Ordering::Relaxed);
            self.failures.store(consecutive << 32, Ordering::Relaxed);
            self.window_start.store(self.nanos(now), Ordering::Relaxed);
        }
        let word = self.failures.fetch_add(FAILURE, Ordering::Relaxed) + FAILURE;
        let successes = self.successes.load(Ordering::Relaxed);
        if self.unhealthy(successes, word & LOW, word >> 32) {
            self.maybe_recover(now, successes, word & LOW);
        }
    }

    fn unhealthy(&self, successes: u64, failed: u64, in_a_row: u64) -> bool {
        if self.settings.consecutive.is_some_and(|n| in_a_row >= n) {
            return true;
        }
        let total = successes + failed;
        total >= self.settings.min_calls
            && (successes as f64) < self.settings.threshold * total as f64
    }

    fn holdoff(&self, attempts: u32, rng: &mut fastrand::Rng) -> Duration {
        let doubled = self
            .settings
            .holdoff
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let full = doubled.min(self.settings.max_holdoff);
        // Up to 20 % less, so a fleet does not recover in lockstep.
        full.mul_f64(1.0 - 0.2 * rng.f64())
    }

    fn maybe_recover(self: &Arc<Self>, now: Instant, successes: u64, failed: u64)
    where
        S: Clone + Send + 'static,
    {
        let total = successes + failed;
        let rate = if total == 0 {
            0.0
        } else {
            successes as f64 / total as f64
        };
        let mut control = lock(&self.control);
        if control.recovering || control.not_before.is_some_and(|at| now < at) {
            return;
        }
        if control.attempts >= self.settings.max_attempts && !control.escalated {
            control.escalated = true;
            let attempts = control.attempts;
            drop(control);
            self.escalate(attempts, rate);
            control = lock(&self.control);
            if control.recovering {
                return;
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(target: "tower_heal", component = &*self.name, "recovery needed but no tokio runtime to run it");
            return;
        };
        control.recovering = true;
        control.attempts = control.attempts.saturating_add(1);
        let attempt = control.attempts;
        let holdoff = self.holdoff(attempt, &mut control.rng);
        control.not_before = Some(now + holdoff);
        drop(control);
        tracing::warn!(
            target: "tower_heal",
            component = &*self.name,
            success_rate = rate,
            attempt,
            holdoff_ms = u64::try_from(holdoff.as_millis()).unwrap_or(u64::MAX),
            "health degraded; recovery started"
        );
        if self.is_rebuild() {
            self.rebuilding.store(true, Ordering::Release);
        }
        let supervisor = Supervisor {
            health: Some(Arc::clone(self)),
        };
        let timeout = self.settings.rebuild_timeout;
        let run = match &self.action {
            Action::Hook(hook) => Run::Hook(Arc::clone(hook)),
            Action::Rebuild(factory) => Run::Rebuild(Arc::clone(factory)),
        };
        // The action is started inside the task, so a factory that panics as it is called
        // panics there too, and the supervisor cleans up either way.
        runtime.spawn(async move {
            let mut supervisor = supervisor;
            let action = async move {
                match run {
                    Run::Hook(hook) => hook().await.map(|()| None),
                    Run::Rebuild(factory) => factory().await.map(Some),
                }
            };
            let result = match tokio::time::timeout(timeout, action).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "the recovery action did not finish within {} ms",
                    timeout.as_millis()
                )
                .into()),
            };
            if let Some(health) = supervisor.health.take() {
                health.finish(result);
            }
        });
    }

    fn finish(&self, result: Result<Option<S>, BoxError>) {
        let now = Instant::now();
        let ok = result.is_ok();
        match result {
            Ok(instance) => {
                let mut current = lock(&self.current);
                if let Some(service) = instance {
                    *current = Some(service);
                }
                // Under the lock: an instance read with its generation belongs to it.
                self.generation.fetch_add(1, Ordering::AcqRel);
                drop(current);
                tracing::info!(target: "tower_heal", component = &*self.name, "recovery complete");
            }
            Err(error) => {
                tracing::error!(target: "tower_heal", component = &*self.name, %error, "recovery failed; the old instance keeps serving");
            }
        }
        self.metrics.recovery(ok);
        // A fresh window measures the recovered service alone.
        self.reset_window(now);
        {
            let mut control = lock(&self.control);
            control.recovering = false;
            if !ok {
                // The hold-off counts from the failure, so a factory that keeps failing (or
                // timing out) is not called again at once.
                let attempts = control.attempts;
                let holdoff = self.holdoff(attempts, &mut control.rng);
                let at = now + holdoff;
                control.not_before = Some(control.not_before.map_or(at, |t| t.max(at)));
            }
        }
        self.rebuilding.store(false, Ordering::Release);
        let waiters = std::mem::take(&mut lock(&self.waiters).wakers);
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    fn escalate(&self, attempts: u32, success_rate: f64) {
        self.metrics.escalation();
        tracing::error!(
            target: "tower_heal",
            component = &*self.name,
            attempts,
            success_rate,
            "recovery escalated: {attempts} recoveries did not help"
        );
        if let Some(listener) = &self.escalation {
            listener(&Escalation {
                name: &self.name,
                attempts,
                success_rate,
            });
        }
    }

    /// Ready once no rebuild runs. `slot` is this waiter's entry in the list; it is taken
    /// out when the wait ends here, or by [`Waiter`]'s `Drop`.
    pub(crate) fn poll_rebuilt(&self, slot: &mut Option<u64>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.rebuilding.load(Ordering::Acquire) {
            if let Some(id) = slot.take() {
                lock(&self.waiters).wakers.remove(&id);
            }
            return Poll::Ready(());
        }
        let mut waiters = lock(&self.waiters);
        // Checked again under the lock: `finish` clears the flag before it takes the wakers.
        if !self.rebuilding.load(Ordering::Acquire) {
            if let Some(id) = slot.take() {
                waiters.wakers.remove(&id);
            }
            return Poll::Ready(());
        }
        let id = *slot.get_or_insert_with(|| {
            waiters.next += 1;
            waiters.next
        });
        match waiters.wakers.get_mut(&id) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                waiters.wakers.insert(id, cx.waker().clone());
            }
        }
        Poll::Pending
    }

    fn forget_waiter(&self, id: u64) {
        lock(&self.waiters).wakers.remove(&id);
    }
}

/// The calls waiting for a rebuild, by id.
#[derive(Default)]
struct Waiters {
    next: u64,
    wakers: HashMap<u64, Waker>,
}

/// A call's place in the list of waiters: dropping it (the call timed out or was cancelled)
/// takes its waker out.
pub(crate) struct Waiter<S> {
    pub(crate) health: Arc<Health<S>>,
    pub(crate) slot: Option<u64>,
}

impl<S> Waiter<S> {
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.health.poll_rebuilt(&mut self.slot, cx)
    }
}

impl<S> Drop for Waiter<S> {
    fn drop(&mut self) {
        if let Some(id) = self.slot.take() {
            self.health.forget_waiter(id);
        }
    }
}

type HookFn = Arc<dyn Fn() -> BoxFuture<Result<(), BoxError>> + Send + Sync>;
type FactoryFn<S> = Arc<dyn Fn() -> BoxFuture<Result<S, BoxError>> + Send + Sync>;

/// The action a recovery task runs.
enum Run<S> {
    Hook(HookFn),
    Rebuild(FactoryFn<S>),
}

/// Finishes a recovery whose task ends without finishing it: the action panicked, or the task
/// was dropped (runtime shut down). The old instance keeps serving and waiters are released.
struct Supervisor<S> {
    health: Option<Arc<Health<S>>>,
}

impl<S> Drop for Supervisor<S> {
    fn drop(&mut self) {
        if let Some(health) = self.health.take() {
            health.finish(Err("the recovery action panicked or was cancelled".into()));
        }
    }
}

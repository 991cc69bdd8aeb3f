//! The layer's shared state and the per-request decision.

use std::fmt;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::decide::{Dist, fire_draw, fires, request_hash, threshold, with_fault};
use crate::fault::{Action, FaultKind, Predicate, Schedule, Stage};
use crate::guard::Guard;
use crate::metrics::{FaultMetrics, Metrics};

/// Maps a request to the number its decisions are drawn for (instead of its sequence number).
pub(crate) type KeyFn<Req> = Arc<dyn Fn(&Req) -> u64 + Send + Sync>;
/// Reads the per-request control string (such as an `x-chaos` header) from a request.
pub(crate) type ControlFn<Req> = Arc<dyn for<'a> Fn(&'a Req) -> Option<&'a str> + Send + Sync>;
/// Removes the control string from a request before the inner service sees it.
pub(crate) type StripFn<Req> = Arc<dyn Fn(&mut Req) + Send + Sync>;

/// A faulted call's place among the `max_active_faults`: dropping it frees the place. It
/// moves with the call (its response future, then its body for a body fault).
pub(crate) struct ActiveSlot(Arc<AtomicU32>);

impl Drop for ActiveSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AcqRel);
    }
}

/// The most faults one layer holds: a request's post-call faults are one bit each in a `u64`.
pub const MAX_FAULTS: usize = 64;

pub(crate) struct FaultState<Req, Res> {
    pub(crate) name: Arc<str>,
    pub(crate) kind: FaultKind,
    pub(crate) stage: Stage,
    /// The fault's identity mixed with the seed, once, when the layer is built.
    pub(crate) key: u64,
    pub(crate) threshold: AtomicU64,
    pub(crate) schedule: Schedule,
    pub(crate) when: Option<Predicate<Req>>,
    pub(crate) action: Action<Res>,
    pub(crate) dist: Option<Dist>,
    pub(crate) injected: AtomicU64,
    pub(crate) dry_run: AtomicU64,
    pub(crate) metrics: FaultMetrics,
}

/// Everything one layer value shares with the services it makes and their clones.
pub(crate) struct Shared<Req, Res> {
    pub(crate) name: Arc<str>,
    pub(crate) armed: AtomicBool,
    pub(crate) dry_run: AtomicBool,
    /// Requests seen since arming.
    pub(crate) seq: AtomicU64,
    pub(crate) base: Instant,
    /// When the layer was last armed, in nanoseconds after `base`.
    pub(crate) armed_at: AtomicU64,
    pub(crate) needs_clock: bool,
    /// Every fault is decided by its draw alone (always scheduled, no predicate, no
    /// per-request control): the armed fast path.
    pub(crate) plain: bool,
    pub(crate) faults: Box<[FaultState<Req, Res>]>,
    pub(crate) key: Option<KeyFn<Req>>,
    pub(crate) control: Option<ControlFn<Req>>,
    pub(crate) strip: Option<StripFn<Req>>,
    /// Whether a control string may ask for a hang (explicit opt-in).
    pub(crate) control_hang: bool,
    pub(crate) max_active: u32,
    pub(crate) active: Arc<AtomicU32>,
    pub(crate) overflow: AtomicU64,
    /// Faults not injected because the call was made outside a tokio runtime.
    pub(crate) no_runtime: AtomicU64,
    /// The faults whose injection needs tokio's timer, one bit per index.
    pub(crate) timer_faults: u64,
    pub(crate) guard: Option<Guard<Res>>,
    pub(crate) guard_tripped: AtomicBool,
    pub(crate) guard_trips: AtomicU64,
    /// The longest the layer stays armed, from arming.
    pub(crate) auto_disarm: Option<Duration>,
    /// Disarming releases the calls held by hang and latency faults.
    pub(crate) release_on_disarm: bool,
    /// Serialises arming and disarming (rare), so an expiry or a trip never disarms a layer
    /// armed again since.
    pub(crate) transition: Mutex<()>,
    pub(crate) hung: Arc<Notify>,
    /// Bumped to release hung calls.
    pub(crate) release_epoch: AtomicU64,
    /// Bumped to release delayed calls (a releasing disarm).
    pub(crate) delay_epoch: AtomicU64,
    pub(crate) metrics: Metrics,
}

impl<Req, Res> fmt::Debug for Shared<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("armed", &self.armed.load(Relaxed))
            .field("faults", &self.faults.len())
            .finish_non_exhaustive()
    }
}

/// What a request is in for, decided once, in `call`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) seq: u64,
    pub(crate) delay: Duration,
    /// The delay of the answer, once the service has answered.
    pub(crate) response_delay: Duration,
    pub(crate) hang: bool,
    /// The first terminal fault that fired, by index.
    pub(crate) terminal: Option<u8>,
    /// Post-call faults that fired, one bit per index.
    pub(crate) post: u64,
    /// Every fault that fired, one bit per index (for counting and events).
    pub(crate) fired: u64,
}

/// Which faults fired on a request, before the plan is worked out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scan {
    pub(crate) seq: u64,
    /// The number the decisions are drawn for: the sequence number, or the request's key.
    pub(crate) n: u64,
    pub(crate) fired: u64,
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What a [`Shared`] is made of: the settings a builder checked. The run-time state (armed,
/// counters, epochs) starts fresh in [`Shared::new`].
pub(crate) struct SharedParts<Req, Res> {
    pub(crate) name: Arc<str>,
    pub(crate) plain: bool,
    pub(crate) dry_run: bool,
    pub(crate) needs_clock: bool,
    pub(crate) faults: Box<[FaultState<Req, Res>]>,
    pub(crate) key: Option<KeyFn<Req>>,
    pub(crate) control: Option<ControlFn<Req>>,
    pub(crate) strip: Option<StripFn<Req>>,
    pub(crate) control_hang: bool,
    pub(crate) max_active: u32,
    pub(crate) timer_faults: u64,
    pub(crate) guard: Option<Guard<Res>>,
    pub(crate) auto_disarm: Option<Duration>,
    pub(crate) release_on_disarm: bool,
    pub(crate) metrics: Metrics,
}

impl<Req, Res> Shared<Req, Res> {
    /// A layer's state: the settings of `parts`, disarmed, every counter at zero.
    pub(crate) fn new(parts: SharedParts<Req, Res>) -> Self {
        Self {
            name: parts.name,
            plain: parts.plain,
            armed: AtomicBool::new(false),
            dry_run: AtomicBool::new(parts.dry_run),
            seq: AtomicU64::new(0),
            base: Instant::now(),
            armed_at: AtomicU64::new(0),
            needs_clock: parts.needs_clock,
            faults: parts.faults,
            key: parts.key,
            control: parts.control,
            strip: parts.strip,
            control_hang: parts.control_hang,
            max_active: parts.max_active,
            active: Arc::new(AtomicU32::new(0)),
            overflow: AtomicU64::new(0),
            no_runtime: AtomicU64::new(0),
            timer_faults: parts.timer_faults,
            guard: parts.guard,
            guard_tripped: AtomicBool::new(false),
            guard_trips: AtomicU64::new(0),
            auto_disarm: parts.auto_disarm,
            release_on_disarm: parts.release_on_disarm,
            transition: Mutex::new(()),
            hung: Arc::new(Notify::new()),
            release_epoch: AtomicU64::new(0),
            delay_epoch: AtomicU64::new(0),
            metrics: parts.metrics,
        }
    }
}

impl<Req, Res> Shared<Req, Res> {
    pub(crate) fn now_offset(&self) -> Duration {
        Instant::now().saturating_duration_since(self.base)
    }

    /// Decides every fault for `request`, each exactly once: which fire. The rest of the
    /// plan (delays, which terminal fault answers) is worked out by [`plan`](Self::plan) only
    /// for the few calls that meet a fault.
    #[inline]
    pub(crate) fn scan(&self, request: &Req) -> Scan {
        let seq = self.seq.fetch_add(1, Relaxed);
        let n = match &self.key {
            Some(key) => key(request),
            None => seq,
        };
        if self.plain {
            // One draw and one compare per fault; a zero threshold never fires.
            let mut fired = 0;
            let mut bit = 1_u64;
            for fault in &self.faults {
                if fires(fire_draw(n, fault.key), fault.threshold.load(Relaxed)) {
                    fired |= bit;
                }
                // At most 64 faults: the last shift leaves 0, never used.
                bit <<= 1;
            }
            return Scan { seq, n, fired };
        }
        self.scan_general(request, seq, n)
    }

    /// The scan with a per-request control string, schedules or predicates: out of line, so
    /// the plain fast path keeps a small frame.
    #[inline(never)]
    fn scan_general(&self, request: &Req, seq: u64, n: u64) -> Scan {
        let control = match &self.control {
            Some(control) => match control(request) {
                Some(value) => Some(value),
                // Header-driven control is opt-in: a request without it gets nothing.
                None => {
                    return Scan { seq, n, fired: 0 };
                }
            },
            None => None,
        };
        let clock = if self.needs_clock {
            let now = self.now_offset();
            Some((
                now,
                now.saturating_sub(Duration::from_nanos(self.armed_at.load(Relaxed))),
            ))
        } else {
            None
        };
        let mut fired = 0;
        for (index, fault) in self.faults.iter().enumerate() {
            let mut limit = fault.threshold.load(Relaxed);
            if let Some(control) = control {
                if fault.kind == FaultKind::Hang && !self.control_hang {
                    continue;
                }
                match control_rate(control, &fault.name) {
                    Some(rate) => limit = limit.min(threshold(rate)),
                    None => continue,
                }
            }
            if limit == 0
                || (!matches!(fault.schedule, Schedule::Always)
                    && !self.scheduled(&fault.schedule, seq, clock))
            {
                continue;
            }
            if let Some(when) = &fault.when
                && !when(request)
            {
                continue;
            }
            if fires(fire_draw(n, fault.key), limit) {
                fired |= 1_u64 << index;
            }
        }
        Scan { seq, n, fired }
    }

    /// The plan for a call some faults fired on.
    #[cold]
    #[inline(never)]
    pub(crate) fn plan(&self, scan: Scan) -> Plan {
        let mut plan = Plan {
            seq: scan.seq,
            ..Plan::default()
        };
        let hashed = request_hash(scan.n);
        let mut fired = scan.fired;
        while fired != 0 {
            let index = fired.trailing_zeros() as usize;
            fired &= fired - 1;
            let fault = &self.faults[index];
            let bit = 1_u64 << index;
            match fault.stage {
                Stage::Gate => {
                    if let Some(dist) = &fault.dist {
                        let delay = dist.sample(
                            with_fault(hashed, fault.key, 1),
                            with_fault(hashed, fault.key, 2),
                        );
                        plan.delay = plan.delay.saturating_add(delay);
                    } else {
                        plan.hang = true;
                    }
                    plan.fired |= bit;
                }
                Stage::Terminal => {
                    // The first terminal fault answers; a later one that also fired would
                    // answer a call that never happens, so it is not counted as injected.
                    if plan.terminal.is_none() {
                        plan.terminal = u8::try_from(index).ok();
                        plan.fired |= bit;
                    }
                }
                Stage::Post => {
                    if let Some(dist) = &fault.dist {
                        let delay = dist.sample(
                            with_fault(hashed, fault.key, 1),
                            with_fault(hashed, fault.key, 2),
                        );
                        plan.response_delay = plan.response_delay.saturating_add(delay);
                    } else {
                        plan.post |= bit;
                    }
                    plan.fired |= bit;
                }
            }
        }
        plan
    }

    #[inline]
    fn scheduled(
        &self,
        schedule: &Schedule,
        seq: u64,
        clock: Option<(Duration, Duration)>,
    ) -> bool {
        match *schedule {
            Schedule::Always => true,
            Schedule::FirstCalls(n) => seq < n,
            Schedule::EveryKth(k) => k > 0 && (seq + 1).is_multiple_of(k),
            Schedule::Between(start, end) => clock.is_some_and(|(now, _)| {
                let start = start.saturating_duration_since(self.base);
                let end = end.saturating_duration_since(self.base);
                start <= now && now < end
            }),
            Schedule::AfterArming { from, until } => {
                clock.is_some_and(|(_, since)| from <= since && since < until)
            }
        }
    }

    /// Whether injecting `plan` needs tokio's timer: a delay, a stalled body, or a held call
    /// with a deadline (`auto_disarm_after`) or a latency bound to watch.
    pub(crate) fn needs_timer(&self, plan: &Plan) -> bool {
        plan.fired & self.timer_faults != 0
            || (plan.hang
                && ((self.auto_disarm.is_some() && self.release_on_disarm)
                    || self.guard.as_ref().is_some_and(|g| g.latency.is_some())))
    }

    /// A fault that needs a runtime met a call made outside one: not injected, and said so.
    #[cold]
    pub(crate) fn no_runtime(&self, plan: &Plan) {
        self.no_runtime.fetch_add(1, Relaxed);
        tracing::warn!(
            target: "tower_chaos",
            chaos = true,
            layer = &*self.name,
            seq = plan.seq,
            "chaos: a fault needing a tokio runtime met a call made outside one: not injected"
        );
    }

    /// Takes an active-fault slot, or counts the overflow.
    pub(crate) fn try_activate(&self) -> Option<ActiveSlot> {
        let before = self.active.fetch_add(1, AcqRel);
        // The slot exists from here: whatever happens next, dropping it gives the place back.
        let slot = ActiveSlot(Arc::clone(&self.active));
        if before < self.max_active {
            Some(slot)
        } else {
            drop(slot);
            self.overflow.fetch_add(1, Relaxed);
            self.metrics.overflow.increment(1);
            None
        }
    }

    /// Counts and reports the faults of `plan` (live or dry run).
    pub(crate) fn record(&self, plan: &Plan, dry_run: bool) {
        let mut fired = plan.fired;
        while fired != 0 {
            let index = fired.trailing_zeros() as usize;
            fired &= fired - 1;
            let fault = &self.faults[index];
            if dry_run {
                fault.dry_run.fetch_add(1, Relaxed);
                fault.metrics.dry_run.increment(1);
                tracing::info!(
                    target: "tower_chaos",
                    chaos = true,
                    dry_run = true,
                    layer = &*self.name,
                    fault = &*fault.name,
                    kind = fault.kind.as_str(),
                    seq = plan.seq,
                    "chaos: would inject a fault (dry run)"
                );
            } else {
                fault.injected.fetch_add(1, Relaxed);
                fault.metrics.injected.increment(1);
                tracing::info!(
                    target: "tower_chaos",
                    chaos = true,
                    dry_run = false,
                    layer = &*self.name,
                    fault = &*fault.name,
                    kind = fault.kind.as_str(),
                    seq = plan.seq,
                    "chaos: injected a fault"
                );
            }
        }
    }
}

/// The rate a control string (`name`, `name=0.5`, comma separated) gives fault `name`, if it
/// names it. A malformed rate is ignored (the fault stays off).
fn control_rate(control: &str, name: &str) -> Option<f64> {
    control.split(',').find_map(|part| {
        let part = part.trim();
        match part.split_once('=') {
            Some((n, rate)) if n.trim() == name => rate
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r >= 0.0)
                .map(|r| r.min(1.0)),
            None if part == name => Some(1.0),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::control_rate;

    #[test]
    fn control_strings() {
        assert_eq!(control_rate("latency, http_503=0.5", "http_503"), Some(0.5));
        assert_eq!(control_rate("latency, http_503=0.5", "latency"), Some(1.0));
        assert_eq!(control_rate("latency", "abort"), None);
        assert_eq!(control_rate("abort=garbage", "abort"), None);
        assert_eq!(control_rate("abort=-1", "abort"), None);
        assert_eq!(control_rate("abort=7", "abort"), Some(1.0));
    }
}

//! The kill switch: arming, disarming (by the handle, the guard, `auto_disarm_after`), and
//! releasing the calls held by hang and latency faults.
//!
//! Invariants: arming and disarming happen under `Shared::transition`, so a disarm decided
//! from an older arming (an expiry, a guard trip) never disarms a newer one; a disarm stores
//! `armed = false` before it bumps the release epochs (both `SeqCst`), and a faulted call
//! reads the epochs before it checks `armed` (see `Faulted::new`), so a releasing disarm
//! never misses a call that is about to be held.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::core::{Shared, nanos};
use crate::guard::{Guard, Trip};

impl<Req, Res> Shared<Req, Res> {
    fn lock_transition(&self) -> MutexGuard<'_, ()> {
        self.transition
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn arm(&self) {
        let _transition = self.lock_transition();
        self.seq.store(0, Relaxed);
        let now = self.now_offset();
        self.armed_at.store(nanos(now), Relaxed);
        if let Some(guard) = &self.guard {
            guard.reset();
        }
        self.guard_tripped.store(false, Relaxed);
        self.armed.store(true, Relaxed);
        self.metrics.armed.set(1.0);
        tracing::info!(target: "tower_chaos", chaos = true, layer = &*self.name, "chaos: armed");
    }

    /// Disarms (if armed) and, when `release`, lets every call held by a hang or latency
    /// fault go on at once. True when this call disarmed the layer.
    pub(crate) fn disarm(&self, why: &'static str, release: bool) -> bool {
        let disarmed = {
            let _transition = self.lock_transition();
            self.disarm_locked(why)
        };
        if release {
            self.release_held();
        }
        disarmed
    }

    fn disarm_locked(&self, why: &'static str) -> bool {
        // `SeqCst`, with the release epochs: see `Faulted::new`.
        if self.armed.swap(false, SeqCst) {
            self.metrics.armed.set(0.0);
            tracing::info!(target: "tower_chaos", chaos = true, layer = &*self.name, reason = why, "chaos: disarmed");
            true
        } else {
            false
        }
    }

    /// When the layer disarms by itself at the latest (`auto_disarm_after`), as an instant.
    pub(crate) fn disarm_deadline(&self) -> Option<Instant> {
        self.auto_disarm.map(|limit| {
            self.base + Duration::from_nanos(self.armed_at.load(Relaxed)).saturating_add(limit)
        })
    }

    /// Disarms the layer if it has been armed for `auto_disarm_after`; true when it is (now)
    /// disarmed. Costs a clock read, only when `auto_disarm_after` is set.
    pub(crate) fn expire(&self) -> bool {
        let Some(limit) = self.auto_disarm else {
            return !self.armed.load(Relaxed);
        };
        if !self.armed.load(Relaxed) {
            return true;
        }
        let since = |s: &Self| {
            s.now_offset()
                .saturating_sub(Duration::from_nanos(s.armed_at.load(Relaxed)))
        };
        if since(self) < limit {
            return false;
        }
        let disarmed = {
            let _transition = self.lock_transition();
            // Checked again under the lock: the layer may have been armed again meanwhile.
            if since(self) >= limit {
                self.disarm_locked("auto_disarm_after")
            } else {
                false
            }
        };
        if disarmed && self.release_on_disarm {
            self.release_held();
        }
        !self.armed.load(Relaxed)
    }

    /// Tells the guard about one real outcome: `counted` when the call was already counted
    /// (as slow, while held), `latency` when the guard watches it. Ignored once disarmed.
    pub(crate) fn observe(&self, failed: bool, latency: Option<Duration>, counted: bool) {
        let Some(guard) = &self.guard else { return };
        if !self.armed.load(Relaxed) {
            return;
        }
        let slow = guard.is_slow(latency);
        if let Some(trip) = guard.record(self.now_offset(), !counted, failed, slow) {
            self.trip(guard, trip);
        }
    }

    /// Tells the guard about one real call that succeeded (the guard does not watch latency,
    /// and its classifier never fails an `Ok`). Ignored once disarmed.
    #[inline]
    pub(crate) fn observe_success(&self, guard: &Guard<Res>) {
        if self.armed.load(Relaxed) {
            guard.count_success(|| self.now_offset());
        }
    }

    /// Tells the guard a held call has passed its latency bound (counted as a call, slow).
    pub(crate) fn observe_slow(&self) {
        let Some(guard) = &self.guard else { return };
        if !self.armed.load(Relaxed) {
            return;
        }
        if let Some(trip) = guard.record(self.now_offset(), true, false, true) {
            self.trip(guard, trip);
        }
    }

    /// Disarms for the guard: one trip, one event, however many calls saw the limit passed.
    #[cold]
    fn trip(&self, guard: &Guard<Res>, trip: Trip) {
        let tripped = {
            let _transition = self.lock_transition();
            let tripped = self.disarm_locked("guard");
            if tripped {
                self.guard_tripped.store(true, Relaxed);
                self.guard_trips.fetch_add(1, Relaxed);
            }
            tripped
        };
        if !tripped {
            return;
        }
        self.metrics.guard_trips.increment(1);
        match trip {
            Trip::ErrorRate(rate) => tracing::warn!(
                target: "tower_chaos",
                chaos = true,
                layer = &*self.name,
                error_rate = rate,
                error_rate_limit = guard.limit,
                window_seconds = guard.window.as_secs_f64(),
                "chaos: guard disarmed the layer: the real error rate passed its limit"
            ),
            Trip::Latency(bound) => tracing::warn!(
                target: "tower_chaos",
                chaos = true,
                layer = &*self.name,
                p99_limit_ms = bound.as_secs_f64() * 1000.0,
                window_seconds = guard.window.as_secs_f64(),
                "chaos: guard disarmed the layer: the p99 latency passed its limit"
            ),
        }
        if self.release_on_disarm {
            self.release_held();
        }
    }

    pub(crate) fn release_hung(&self) {
        self.release_epoch.fetch_add(1, SeqCst);
        self.hung.notify_waiters();
    }

    /// Releases every call held by a hang or a latency fault.
    pub(crate) fn release_held(&self) {
        self.release_epoch.fetch_add(1, SeqCst);
        self.delay_epoch.fetch_add(1, SeqCst);
        self.hung.notify_waiters();
    }
}

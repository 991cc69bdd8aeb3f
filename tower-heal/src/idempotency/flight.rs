//! Calls in flight per key: duplicates wait for the first instead of running again.
//!
//! Invariant: a duplicate's waker is in its flight's list only while it waits; one that stops
//! waiting (timed out, cancelled) takes it out, so the list never outgrows the duplicates
//! waiting right now, however long the first call runs.

use crate::store::ResultStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct FlightState {
    done: bool,
    next: u64,
    wakers: HashMap<u64, Waker>,
}

/// One key's call in flight; duplicates wait on it.
#[derive(Default)]
pub(crate) struct Flight {
    state: Mutex<FlightState>,
}

impl Flight {
    fn lock(&self) -> std::sync::MutexGuard<'_, FlightState> {
        // The state is a flag and a list: consistent after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ready once the first call has finished (stored, failed or been dropped). `slot` is
    /// this waiter's entry in the list.
    fn poll_done(&self, slot: &mut Option<u64>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if state.done {
            if let Some(id) = slot.take() {
                state.wakers.remove(&id);
            }
            return Poll::Ready(());
        }
        let id = *slot.get_or_insert_with(|| {
            state.next += 1;
            state.next
        });
        match state.wakers.get_mut(&id) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                state.wakers.insert(id, cx.waker().clone());
            }
        }
        Poll::Pending
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().wakers.len()
    }

    fn finish(&self) {
        let wakers = {
            let mut state = self.lock();
            state.done = true;
            std::mem::take(&mut state.wakers)
        };
        for (_, waker) in wakers {
            waker.wake();
        }
    }
}

/// A duplicate waiting on a flight; dropping it takes its waker out of the list.
pub(crate) struct Waiter {
    flight: Arc<Flight>,
    slot: Option<u64>,
}

impl Waiter {
    pub(crate) fn new(flight: Arc<Flight>) -> Self {
        Self { flight, slot: None }
    }

    pub(crate) fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.flight.poll_done(&mut self.slot, cx)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(id) = self.slot.take() {
            self.flight.lock().wakers.remove(&id);
        }
    }
}

/// The calls in flight, by key. Bounded by the requests in progress.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

/// What claiming a key gave.
pub(crate) enum Claim {
    /// This call runs; the guard releases the key when dropped.
    Leader(Leader),
    /// Another call with this key is running: wait for it.
    Wait(Arc<Flight>),
}

impl Flights {
    pub(crate) fn claim(self: &Arc<Self>, key: &str) -> Claim {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let flight = match map.entry(key.to_owned()) {
            std::collections::hash_map::Entry::Occupied(entry) => {
                return Claim::Wait(Arc::clone(entry.get()));
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                Arc::clone(entry.insert(Arc::new(Flight::default())))
            }
        };
        Claim::Leader(Leader {
            flights: Arc::clone(self),
            key: key.to_owned(),
            flight,
            fleet: None,
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The first call with a key. Dropping it (finished or cancelled) releases the key and wakes
/// the duplicates, which then find the stored response or, if none was stored, run themselves.
pub(crate) struct Leader {
    flights: Arc<Flights>,
    key: String,
    flight: Arc<Flight>,
    /// The claim on a store shared by other processes, released before the local waiters wake.
    fleet: Option<FleetHold>,
}

/// A claim held on a shared store (`ResultStore::claim`).
struct FleetHold {
    store: Arc<dyn ResultStore>,
    store_key: String,
    token: u64,
}

impl Leader {
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Keeps the shared store's claim on `store_key` until this leader is dropped.
    pub(crate) fn hold_fleet(
        &mut self,
        store: Arc<dyn ResultStore>,
        store_key: String,
        token: u64,
    ) {
        self.fleet = Some(FleetHold {
            store,
            store_key,
            token,
        });
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Some(hold) = self.fleet.take() {
            hold.store.release(&hold.store_key, hold.token);
        }
        {
            let mut map = self
                .flights
                .map
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if map
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.key);
            }
        }
        self.flight.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_leader_releases_its_key_and_wakes_the_waiters() {
        let flights = Arc::new(Flights::default());
        let Claim::Leader(leader) = flights.claim("k") else {
            panic!("the first claim leads");
        };
        let Claim::Wait(flight) = flights.claim("k") else {
            panic!("the second claim waits");
        };
        let mut waiter = Waiter::new(Arc::clone(&flight));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(waiter.poll_done(&mut cx).is_pending());
        assert_eq!(flights.len(), 1);
        drop(leader);
        assert_eq!(flights.len(), 0);
        assert!(waiter.poll_done(&mut cx).is_ready());
    }

    #[test]
    fn duplicates_that_stop_waiting_leave_the_list() {
        let flights = Arc::new(Flights::default());
        let Claim::Leader(_leader) = flights.claim("k") else {
            panic!("the first claim leads");
        };
        let Claim::Wait(flight) = flights.claim("k") else {
            panic!("the second claim waits");
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..100 {
            let mut waiter = Waiter::new(Arc::clone(&flight));
            assert!(waiter.poll_done(&mut cx).is_pending());
            assert!(waiter.poll_done(&mut cx).is_pending());
            assert_eq!(flight.waiting(), 1, "one entry per waiter, polled twice");
            drop(waiter);
        }
        assert_eq!(flight.waiting(), 0);
    }
}

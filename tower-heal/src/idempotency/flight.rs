//! Calls in flight per key: duplicates wait for the first instead of running again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct FlightState {
    done: bool,
    wakers: Vec<Waker>,
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

    /// Ready once the first call has finished (stored, failed or been dropped).
    pub(crate) fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        if state.done {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn finish(&self) {
        let wakers = {
            let mut state = self.lock();
            state.done = true;
            std::mem::take(&mut state.wakers)
        };
        for waker in wakers {
            waker.wake();
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
}

impl Leader {
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
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
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(flight.poll_done(&mut cx).is_pending());
        assert_eq!(flights.len(), 1);
        drop(leader);
        assert_eq!(flights.len(), 0);
        assert!(flight.poll_done(&mut cx).is_ready());
    }
}

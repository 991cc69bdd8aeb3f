//! The breaker without tower: acquire a permit, run your code, record how it went.

use std::fmt;
use std::future::Future;

use tower_outcome::{BoxError, BoxErrorAnswer, Classify, Outcome, Rejected, Settle};

use crate::CircuitBreakerLayer;
use crate::call_event::{CallListener, NoCallListener};
use crate::future::finish;
use crate::slot::Slot;
use crate::ticket::Ticket;

/// The old name of [`CallPermit`] (it read like the bulkhead's permit, which is an obligation
/// the response future holds).
#[deprecated(since = "0.1.0", note = "renamed to `CallPermit`")]
pub type Permit<C, L = NoCallListener> = CallPermit<C, L>;

/// Leave to make one call through a breaker, from [`CircuitBreakerLayer::acquire`].
///
/// Record how the call went with [`success`](Self::success), [`failure`](Self::failure),
/// [`ignore`](Self::ignore) or [`record`](Self::record). Dropped without recording (your code
/// panicked, or its future was dropped), it counts for nothing and frees the half-open probe
/// slot it may hold, as a cancelled call through the service does.
#[must_use = "a permit records nothing unless you say how the call went"]
pub struct CallPermit<C, L = NoCallListener> {
    ticket: Ticket<C, L>,
    /// When the call started ([`Ticket::start`]).
    start_ns: u64,
}

impl<C, L: CallListener> CallPermit<C, L> {
    /// The call succeeded.
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// The call failed: it counts against the trip rules.
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// The call says nothing about the dependency's health (the caller's fault, say).
    pub fn ignore(self) {
        self.record(Outcome::Ignore);
    }

    /// Records `outcome`.
    pub fn record(mut self, outcome: Outcome) {
        self.ticket.stop(self.start_ns);
        self.ticket.settle(outcome);
    }
}

impl<C, L> fmt::Debug for CallPermit<C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallPermit")
            .field("ticket", &self.ticket)
            .finish()
    }
}

impl<C, A, L: CallListener> CircuitBreakerLayer<C, A, L> {
    /// Asks the breaker for leave to make one call, for code that has no tower `Service`
    /// (as resilience4j's `acquirePermission`).
    ///
    /// The same rules as a call through the service: refused while open (with the time
    /// left), one of `half_open_max_calls` probes while half-open, counted in
    /// `breaker_calls_total`. The call's clock starts now, for the slow-call rule.
    ///
    /// ```
    /// use tower_breaker::{CircuitBreakerLayer, State};
    ///
    /// let breaker = CircuitBreakerLayer::builder().failure_threshold(2).build().unwrap();
    /// for _ in 0..2 {
    ///     let permit = breaker.acquire().unwrap();
    ///     // ... your call, which failed:
    ///     permit.failure();
    /// }
    /// assert_eq!(breaker.handle().state(), State::Open);
    /// let refused = breaker.acquire().unwrap_err();
    /// assert!(refused.retry_after().is_some());
    /// ```
    ///
    /// # Errors
    /// The breaker's [`Rejected`] when the call may not be made now.
    pub fn acquire(&self) -> Result<CallPermit<C, L>, Rejected> {
        let core = self.core();
        let mut slot = Slot::new();
        slot.fill(core);
        match slot.take(core) {
            Ok(ticket) => {
                let start_ns = ticket.start();
                Ok(CallPermit { ticket, start_ns })
            }
            Err(refusal) => Err(core.rejection(refusal).into_rejected()),
        }
    }

    /// Runs `call` through the breaker, for code that has no tower `Service` (as
    /// resilience4j's `executeSupplier` or Polly's `Execute`): admitted when first polled,
    /// classified by the breaker's classifier, with the same rules, metrics and cancellation
    /// as a call through the service (dropping the returned future before it finishes counts
    /// for nothing and frees its probe slot).
    ///
    /// Errors come as in the default answer mode: your error boxed, or the breaker's
    /// [`Rejected`] (without `call` being polled).
    ///
    /// ```
    /// use tower_breaker::{CircuitBreakerLayer, Rejected};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let breaker = CircuitBreakerLayer::builder().failure_threshold(1).build().unwrap();
    /// let rows = breaker.run(async { Err::<u32, _>(std::io::Error::other("db down")) }).await;
    /// assert!(rows.is_err());
    /// let again = breaker.run(async { Ok::<u32, std::io::Error>(7) }).await;
    /// assert!(again.unwrap_err().downcast_ref::<Rejected>().is_some());
    /// # }
    /// ```
    ///
    /// # Errors
    /// Your call's error, or the breaker's [`Rejected`].
    pub async fn run<F, T, E>(&self, call: F) -> Result<C::Response<Ticket<C, L>>, BoxError>
    where
        F: Future<Output = Result<T, E>>,
        C: Classify<T> + Clone,
        E: Into<BoxError>,
    {
        let permit = self.acquire().map_err(BoxError::from)?;
        let result = call.await;
        finish::<C, BoxErrorAnswer, L, T, E>(result, permit.ticket, permit.start_ns)
    }

    /// The old name of [`run`](Self::run) (it read like `Service::call`).
    ///
    /// # Errors
    /// Your call's error, or the breaker's [`Rejected`].
    #[deprecated(since = "0.1.0", note = "renamed to `run`")]
    pub async fn call<F, T, E>(&self, call: F) -> Result<C::Response<Ticket<C, L>>, BoxError>
    where
        F: Future<Output = Result<T, E>>,
        C: Classify<T> + Clone,
        E: Into<BoxError>,
    {
        self.run(call).await
    }
}

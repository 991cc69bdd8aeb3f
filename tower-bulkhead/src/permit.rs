//! What an admitted call holds, and, for streams, what its body holds and how the caller reports
//! the cost. Dropping a permit gives back the slot and the in-flight tokens (and the rate
//! reservation of a call never sent).

use std::fmt;
use std::sync::Arc;
#[cfg(feature = "http")]
use std::sync::atomic::{AtomicU64, Ordering::*};

use crate::compartment::Compartment;
use crate::config::MAX_TOKENS;

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
pub(crate) const SPENT: u64 = 1 << 63;
#[cfg(feature = "http")]
/// No actual cost reported.
const UNREPORTED: u64 = u64::MAX;

impl Permit {
    #[inline(always)]
    pub(crate) const fn new(compartment: Arc<Compartment>, tokens: u64, rate: u64) -> Self {
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

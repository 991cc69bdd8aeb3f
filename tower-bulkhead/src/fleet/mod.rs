//! Fleet budgets: one rate budget and one in-flight budget shared by every replica of a
//! service, through Redis (the `redis` feature).
//!
//! # When you outgrow one machine
//!
//! A [`BulkheadLayer`](crate::BulkheadLayer)'s budgets live in its process: N replicas behind
//! a load balancer spend N times a provider's tokens-per-minute quota. A fleet budget keeps
//! the budget in Redis instead, so that the whole fleet spends it once:
//!
//! - **shared**: the rate budget (GCRA, weighted by the call's cost, in one Lua script that
//!   reads the server's clock with `TIME`, so clock skew between hosts cannot over-grant) and
//!   the in-flight budget (leases with an expiry, so the share of a replica that dies comes
//!   back within `lease_time`; [`RedisBudget::renew`] keeps a long stream's lease alive);
//! - **local**: the concurrency limit (`max_concurrent` protects this process's memory and
//!   sockets, which other replicas do not share), and the breakers' counters;
//! - **on failure** (Redis down or slower than `timeout`, 50 ms by default, on every call):
//!   the configured [`FailureMode`]: let calls pass, refuse them with a `Retry-After`, or
//!   fall back to an in-process budget of the fleet budget divided by the replica count. The
//!   switch and the return are a `tracing` event and the `bulkhead_fleet_degraded` gauge;
//!   while degraded, Redis is tried again once per `probe_interval`, not on every call.
//! - **keys** are `<prefix>{<budget name>}:rate` and `…:leases`: the hash tag keeps one
//!   budget on one Redis Cluster shard, so every script is atomic.
//!
//! Redis OSS 7 or later and Valkey 7.2 or later work, and so do managed services offering
//! them (ElastiCache, MemoryDB, Memorystore, Azure Cache for Redis, Upstash): only `EVAL` /
//! `EVALSHA`, `TIME` and core data types are used, no modules.
//!
//! The layer's own budgets stay in-process by default; a fleet budget is a
//! [`RedisBudget`] checked through the [`BudgetStore`] trait, in front of the inner service
//! with a [`FleetBudgetLayer`] (inside the [`BulkheadLayer`](crate::BulkheadLayer) that keeps
//! the local concurrency limit).

mod layer;
mod local;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::redis::{FLEET_DEGRADED, RedisBudget, RedisBudgetBuilder};
pub use layer::{FleetBudget, FleetBudgetLayer, FleetFuture};
pub use local::LocalBudget;

use std::future::Future;
use std::time::Duration;

/// What a budget said to a request for tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Whether the tokens were granted.
    pub allowed: bool,
    /// Tokens left in the budget after this request (0 when refused).
    pub remaining: u64,
    /// When refused: how long until the request would be granted (the rejection's
    /// `Retry-After`). Zero when allowed.
    pub retry_after: Duration,
}

impl Grant {
    /// Granted, with `remaining` tokens left.
    #[must_use]
    pub const fn allowed(remaining: u64) -> Self {
        Self {
            allowed: true,
            remaining,
            retry_after: Duration::ZERO,
        }
    }

    /// Refused; granted after `retry_after`.
    #[must_use]
    pub const fn refused(retry_after: Duration) -> Self {
        Self {
            allowed: false,
            remaining: 0,
            retry_after,
        }
    }

    /// For a refusal, the family's rejection (`budget_exhausted`, HTTP 429 with
    /// `Retry-After`) of the bulkhead named `name`; `None` when granted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_bulkhead::Reason;
    /// use tower_bulkhead::fleet::Grant;
    ///
    /// let rejected = Grant::refused(Duration::from_secs(3)).rejection("llm").unwrap();
    /// assert_eq!(rejected.reason(), Reason::BudgetExhausted);
    /// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(3)));
    /// assert!(Grant::allowed(10).rejection("llm").is_none());
    /// ```
    #[must_use]
    pub fn rejection(&self, name: &str) -> Option<crate::Rejected> {
        (!self.allowed).then(|| {
            crate::Rejected::new(crate::LayerKind::Bulkhead, crate::Reason::BudgetExhausted)
                .with_name(name)
                .with_retry_after(self.retry_after)
        })
    }
}

/// What a fleet budget does while its shared store cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureMode {
    /// Let every call pass: availability first, the quota unenforced meanwhile.
    FailOpen,
    /// Refuse every call (HTTP 429 or 503 with `Retry-After: probe_interval`).
    FailClosed,
    /// Enforce an in-process budget of the fleet budget divided by `replicas`.
    LocalFallback {
        /// How many replicas share the budget (at least 1).
        replicas: u32,
    },
}

/// Where a budget's tokens are kept: in this process ([`LocalBudget`]) or shared by a fleet
/// (`RedisBudget`).
///
/// The rate budget spends tokens (`take`, then `settle` the actual cost); the in-flight budget
/// leases them (`lease`, `release`), with an expiry for shared stores.
pub trait BudgetStore: Send + Sync + 'static {
    /// Spends `cost` tokens of the rate budget, or says when they would be there.
    fn take(&self, cost: u64) -> impl Future<Output = Grant> + Send;

    /// Settles a call that took `estimate` tokens and cost `actual`: a lower cost gives the
    /// difference back, a higher one is charged as debt.
    fn settle(&self, estimate: u64, actual: u64) -> impl Future<Output = ()> + Send;

    /// Leases `cost` tokens of the in-flight budget under `id` (unique per call).
    fn lease(&self, id: u64, cost: u64) -> impl Future<Output = Grant> + Send;

    /// Gives back the lease `id` of `cost` tokens.
    fn release(&self, id: u64, cost: u64) -> impl Future<Output = ()> + Send;
}

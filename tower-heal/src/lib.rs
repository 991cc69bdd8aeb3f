//! Self-healing for tower services: retry with backoff and jitter, per-error-class policies,
//! Retry-After, retry budgets, fallback, and recovery when health degrades.
//!
//! This crate is a placeholder: the layers are not built yet. They will honour the family's
//! [`Rejected::retry_after`] and read `Retry-After` with [`parse_retry_after`].
//!
//! # Fallback, recovery, idempotency keys and checkpoints
//!
//! The other three kinds of self-healing, and graceful degradation: "80 % functionality with
//! 100 % uptime beats 100 % functionality with 80 % uptime".
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_heal::{Degradable, DegradationLevel, FallbackLayer, LastGood, Marked, RecoveryLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_heal::BoxError> {
//! // The last good answer per key, served at level 1 when the live service fails.
//! let cache = LastGood::new(10_000, |id: &u32| *id);
//! let mut svc = ServiceBuilder::new()
//!     // Outermost: answer from the cache, marked `Degraded { component, level }`.
//!     .layer(FallbackLayer::new("templates", DegradationLevel::Slight, cache.clone()))
//!     // Below 80 % success over 30 s (or 5 failures in a row): run the recovery hook.
//!     .layer(RecoveryLayer::builder()
//!         .name("templates")
//!         .hook(|| async { /* clear caches, reset the pool */ Ok::<_, std::io::Error>(()) })?)
//!     .layer(cache.record())
//!     .service(service_fn(|id: u32| async move {
//!         if id < 100 { Ok(Marked::new(format!("template {id}"))) }
//!         else { Err(std::io::Error::other("github down")) }
//!     }));
//!
//! let fresh = svc.ready().await?.call(7).await?;
//! assert!(fresh.degraded().is_none());
//! # Ok(()) }
//! ```
//!
//! - [`FallbackLayer`]: a fallback service used on a classified failure, an error or a
//!   family rejection ([`FallbackOn`]); its answer carries a [`Degraded`] marker with the
//!   component and the [`DegradationLevel`] (1 slight: cached, 2 moderate: partial or
//!   read-only, 3 minimal: static, 4: nothing answered). `.http()` adds the
//!   [`DEGRADED_HEADER`] header. [`FallbackChain`] tries live → cache → static in order;
//!   [`LastGood`] keeps the last good answer per key. If every fallback fails, the primary's
//!   own result is returned.
//! - [`DegradationReport`]: for a handler calling several dependencies, what each answered
//!   (`full`, or the `degraded_components` and the worst level), serializable into the answer.
//! - [`RecoveryLayer`]: a health monitor; below the threshold it runs an async hook or rebuilds
//!   the inner service from a factory (calls during a rebuild wait or are rejected, never sent
//!   to the old instance), with a hold-off of 5 s doubling to 300 s (jittered, seedable), and
//!   escalates after `max_attempts` recoveries without improvement.
//! - [`IdempotencyLayer`] (server side): a request repeating an `Idempotency-Key` gets the
//!   stored answer of the first completed call; concurrent duplicates wait for it; a key reused
//!   with another request is answered 422; failures are not stored; entries expire.
//! - [`store`]: the [`ResultStore`](store::ResultStore) trait behind idempotency and
//!   checkpoints: [`MemoryStore`](store::MemoryStore) (bounded), and with the `sqlite` feature
//!   `SqliteStore`, durable across a crash (committed before the caller sees a result; damage
//!   detected on open or per record, never returned).
//! - `checkpoint` (feature `checkpoint`): multi-step workflows that skip the steps completed
//!   before a crash and resume at the first unfinished one.
//!
//! Where they go, outermost first: fallback → retry → breaker → bulkhead → recovery →
//! per-attempt timeout → transport; on a server, the idempotency layer sits right above the
//! handler. Fallback outside the breaker, so an open breaker's rejection is answered by the
//! fallback.
//!
//! **Cost.** A healthy call through a fallback costs the request's keep (a clone by default),
//! one reference-count increment and decrement, and the classifier's verdict; through a
//! recovery layer, the same plus one shared atomic increment and one load. Neither takes a
//! lock, allocates or reads the clock on success; a recovery layer reads the clock on a
//! failure, to roll its window. Measured figures are in the repository's `benches/README.md`.
//!
//! **Metrics** ([`metrics_part2`]): `heal_fallbacks_total{component,level}`,
//! `heal_degradation_level{component}`, `heal_recoveries_total{component,result}`,
//! `heal_escalations_total{component}`, `heal_idempotent_replays_total`,
//! `heal_checkpoint_resumes_total`. **Events** (target `tower_heal`): every fallback (info;
//! warn when none answered), recovery (warn when it starts, info when done, error when it
//! fails), escalation (error), replay (info) and resume (info).
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | yes | the `Degraded` header, the HTTP idempotency codec, `.http()` answers |
//! | `serde` | no | `Deserialize`/`Serialize` for [`RecoveryConfig`], `Serialize` for [`DegradationReport`] |
//! | `sqlite` | no | `store::SqliteStore` (SQLite compiled from the crate: nothing to install) |
//! | `checkpoint` | no | `checkpoint::Workflow` (step results as serde data) |
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use tower_outcome::{Rejected, parse_retry_after};

// part 2: fallback, recovery, idempotency, checkpoints
#[cfg(feature = "checkpoint")]
pub mod checkpoint;
pub mod fallback;
pub mod idempotency;
pub mod metrics_part2;
pub mod recovery;
pub mod store;

pub use idempotency::IdempotencyLayer;
pub use recovery::{
    ConfigError as RecoveryConfigError, DuringRebuild, Escalation, Recovery, RecoveryConfig,
    RecoveryLayer,
};

pub use fallback::{
    CloneRequest, DEGRADED_HEADER, Degradable, DegradationLevel, DegradationReport, Degraded,
    Fallback, FallbackBuilder, FallbackChain, FallbackLayer, FallbackOn, KeepRequest, LastGood,
    Marked,
};
pub use tower_outcome::BoxError;

//! Isolation compartments for tower services: so that one runaway caller (an agent stuck in a
//! loop, a tenant's flood) cannot exhaust what every other caller needs.
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_bulkhead::{BulkheadLayer, Reason, Rejected};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_bulkhead::BoxError> {
//! let bulkhead = BulkheadLayer::builder()
//!     .name("research_agent")
//!     .max_concurrent(4)        // 4 calls in flight at once
//!     .token_budget(1000)       // and at most 1000 tokens in flight
//!     .cost(|prompt: &String| prompt.len() as u64)
//!     .build()?;
//! let handle = bulkhead.handle();
//!
//! let mut svc = ServiceBuilder::new()
//!     .layer(bulkhead)
//!     .service_fn(|prompt: String| async move { Ok::<_, std::io::Error>(prompt.len()) });
//!
//! assert_eq!(svc.ready().await?.call("hello".to_owned()).await?, 5);
//! assert_eq!(handle.in_flight(), 0); // the permit and tokens are back
//!
//! // A request costing more than the whole budget is refused at once, never queued.
//! let err = svc.ready().await?.call("x".repeat(1500)).await.unwrap_err();
//! let rejected = err.downcast_ref::<Rejected>().unwrap();
//! assert_eq!(rejected.reason(), Reason::CostExceedsCapacity);
//! # Ok(()) }
//! ```
//!
//! # Compartments
//!
//! A compartment has a **concurrency limit**, `max_concurrent` calls in flight (default 25),
//! and may add token budgets over a [cost](Cost) of the request (estimated LLM tokens read
//! from a header with [`HeaderCost`], the body size with [`BodySize`], a closure):
//!
//! - an **in-flight budget** (`token_budget`): a call holds its cost while it runs and gives it
//!   back when it ends, a weighted semaphore;
//! - a **rate budget** (`refill_tokens` per `refill_period_seconds`, up to `burst_tokens`,
//!   starting full): tokens are spent, not given back, as tokens-per-minute quotas work. The
//!   budget refills continuously from the time elapsed (`tokio::time`; GCRA, the generic
//!   cell rate algorithm, so no period boundary lets a burst be spent twice); no background
//!   task runs.
//!
//! A compartment may have either budget, both, or none. A call is admitted only when the
//! concurrency limit and every budget admit it, and a refusal by one takes nothing from the
//! others. A request costing more than a budget's capacity (or burst) is rejected at once
//! ([`Reason::CostExceedsCapacity`]), never queued; a zero-cost request is always admitted by a
//! budget. A cost read from the request itself ([`HeaderCost`], [`BodySize`]) is written by
//! the client: it has a floor (`min_cost`, default 1), so a claimed cost of 0 does not pass an
//! exhausted budget.
//!
//! # Estimate, reserve, settle
//!
//! The estimate is reserved before the inner call, so concurrent requests can never overshoot
//! a budget. When the response arrives, the [actual cost](ActualCost) read from it (for example
//! a usage header with [`HeaderCost`], or a closure over an LLM answer) replaces the estimate,
//! in both directions: a lower cost gives the difference back at once; a higher one is carried
//! as debt (the in-flight budget holds more than its capacity until the call ends; the rate
//! budget goes below zero and the next refills pay it first), never lost. Without an actual
//! cost the estimate stands. For streams whose usage is only known at their end (an LLM's last
//! event), the response carries a [`CostReport`] to settle from the stream itself.
//!
//! # Cancellation
//!
//! A call cancelled (its future dropped) before it reached the inner service gives its whole
//! reservation back. Once the request has been handed to the inner service, its rate tokens
//! are **spent**: dropping the response future after that (a client disconnecting, an outer
//! timeout) gives back its slot and in-flight tokens but not the rate tokens, as quotas
//! count what reached the upstream. Nothing leaks in any state.
//!
//! # Full: reject or wait
//!
//! By default a full compartment rejects at once ([`Reason::BulkheadFull`] or
//! [`Reason::BudgetExhausted`]). With `max_wait` a call waits up to that long in **strict FIFO
//! order** (a later call is never admitted before an earlier one still waiting, even if it
//! would fit), then is rejected with [`Reason::WaitTimedOut`]. The wait happens in the response
//! future; a waiter dropped while queued leaves the queue intact. At most `max_waiters`
//! (default 1024) wait at once. A call blocked by a rate budget that cannot refill within
//! `max_wait` is rejected at once (`429`), even when others are queued. A waiter that can no
//! longer fit because a handle lowered a budget below its cost is refused at once
//! ([`Reason::CostExceedsCapacity`]) and the queue moves on.
//!
//! Every rejection that waiting can cure carries a `retry_after`: the configured
//! `retry_after_seconds` for a full compartment (or a full key map), the time until enough
//! tokens refill when the rate budget is the cause (also after a wait timed out).
//!
//! # Where permits are taken
//!
//! Admission happens once a request exists, in `call`, **never in `poll_ready`**: hyper polls
//! a connection's service ready before a request arrives, so a limit reserved there lets idle
//! keep-alive connections hoard every permit (as with tower's `ConcurrencyLimit`). A refused or
//! waiting call reserves nothing of the inner service: [`Bulkhead::poll_ready`](tower_service::Service::poll_ready)
//! polls the inner service only when the compartment has room, and a call admitted later
//! drives a clone of the inner service to readiness itself (the inner service must be
//! `Clone`). `poll_ready` never fails or waits because of the bulkhead.
//!
//! The permit (slot, in-flight tokens) is given back when the response future completes or
//! is dropped; for streams (SSE, gRPC server streaming),
//! [`hold_until_body_end`](BulkheadLayer::hold_until_body_end) moves it into the response
//! body (the family's [`EosBody`]), which gives it back when the stream ends or is dropped.
//!
//! # Per-key compartments
//!
//! [`KeyedBulkheadLayer`] ([`BulkheadBuilder::build_keyed`],
//! [`BulkheadLayer::keyed_from_config`]) gives each key of the request (an agent's name, a
//! tenant, axum's `MatchedPath`) its own compartment, with per-key configurations and a
//! default, a cap on live keys, idle eviction and an [`Overflow`] policy. One key saturated
//! never slows another. Eviction never resets a limit: a key with a call in flight or
//! waiting, in-flight tokens held or a rate budget that is not full stays, and a key with a
//! configuration of its own keeps it for the layer's life.
//!
//! Keys and costs often come from the client (a header): bound both. Costs read from a
//! request have a floor (above); a key whose `Debug` form is longer than `max_key_length`
//! (default 256 bytes) is never stored, and goes to the overflow compartment (or is
//! rejected, with [`Overflow::Reject`]).
//!
//! # Where it goes in a stack
//!
//! On the client side, outermost first (a `ServiceBuilder` runs top to bottom):
//! fallback → retry → breaker → **bulkhead** → per-attempt timeout → (chaos, when testing) →
//! transport. A breaker in front never counts the bulkhead's rejections as failures: they are
//! the family's [`Rejected`], which every classifier of the family ignores.
//!
//! # Answers
//!
//! | mode | error type | a refusal answers |
//! |---|---|---|
//! | default | [`BoxError`] | `Err`, downcastable to [`Rejected`] |
//! | [`.http()`](BulkheadLayer::http) | the inner error, unchanged | `503` + `Retry-After` when full or after a wait timed out; `429` + `Retry-After` (time until enough refill) for an exhausted budget; `503` without `Retry-After` for a request costing more than a budget's capacity (waiting never helps) |
//! | [`.grpc()`](BulkheadLayer::grpc) | the inner error, unchanged | Trailers-Only, `grpc-status: 8` (`RESOURCE_EXHAUSTED`), `grpc-message`, `grpc-retry-pushback-ms` |
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_bulkhead::BulkheadLayer;
//!
//! let bulkhead = BulkheadLayer::builder().name("reports").max_concurrent(5).http().build().unwrap();
//! let app: Router = Router::new()
//!     .route("/reports", get(|| async { "ok" }))
//!     .route_layer(bulkhead);
//! ```
//!
//! An HTTP or gRPC answer carries the [`Rejected`] in its extensions, so a layer above (or a
//! test) can tell why it was refused.
//!
//! Per tenant (or agent), from a JSON configuration, with the cost read from a header, `.http()`
//! answers for axum, and the handle kept in the application's state:
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use axum::{Router, body::Body, routing::post};
//! use http::Request;
//! use tower::ServiceExt;
//! use tower_bulkhead::{BulkheadLayer, HeaderCost, KeyedBulkheadConfig, KeyedBulkheadHandle, Reason, Rejected};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     bulkheads: KeyedBulkheadHandle<String>, // the key type of the layer
//! }
//!
//! fn agent(req: &Request<Body>) -> String {
//!     // `/agents/{agent}/run`: route_layer runs before axum extracts the path.
//!     req.uri().path().split('/').nth(2).unwrap_or("unknown").to_owned()
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let config: KeyedBulkheadConfig = serde_json::from_str(r#"{"name": "agents", "bulkheads": {
//!     "research_agent": {"max_concurrent": 4, "token_budget": 1000, "max_wait_seconds": 2},
//!     "writing_agent": {"max_concurrent": 2, "token_budget": 500}
//! }}"#)?;
//! let layer = BulkheadLayer::keyed_from_config(config, agent)?
//!     .cost(HeaderCost::new("x-estimated-tokens").fallback(100))
//!     .http();
//! let state = AppState { bulkheads: layer.handle() };
//! let app: Router = Router::new()
//!     .route("/agents/{agent}/run", post(|| async { "done" }))
//!     .route_layer(layer);
//!
//! let req = Request::post("/agents/research_agent/run").header("x-estimated-tokens", "300").body(Body::empty())?;
//! assert_eq!(app.clone().oneshot(req).await?.status(), 200);
//!
//! // More than the whole budget: refused at once, 503 without Retry-After.
//! let req = Request::post("/agents/research_agent/run").header("x-estimated-tokens", "1500").body(Body::empty())?;
//! let res = app.oneshot(req).await?;
//! assert_eq!(res.status(), 503);
//! assert!(res.headers().get("retry-after").is_none());
//! assert_eq!(res.extensions().get::<Rejected>().unwrap().reason(), Reason::CostExceedsCapacity);
//!
//! // Keys are looked up by the key type (here `&String`).
//! let research = state.bulkheads.get(&"research_agent".to_owned()).unwrap();
//! assert_eq!((research.max_concurrent(), research.token_budget()), (4, Some(1000)));
//! assert_eq!(research.in_flight(), 0);
//! # Ok(()) }
//! # }
//! ```
//!
//! # Handles
//!
//! [`BulkheadHandle`] and [`KeyedBulkheadHandle`] read in-flight calls, tokens in use and
//! waiters, per compartment and per key, and change limits live. Lowering a limit never blocks
//! and never cancels: the excess calls drain, and nothing is admitted until the compartment is
//! under the new limit.
//!
//! # Cost
//!
//! A call through a concurrency-only compartment takes one atomic load in `poll_ready`, one
//! compare-and-swap to admit, one subtraction to release and one reference-count increment and
//! decrement (the response future owns a handle on the compartment); no lock, no allocation,
//! no clock read. An in-flight budget adds a compare-and-swap and a subtraction; a rate budget
//! a clock read and a compare-and-swap (one word: GCRA's theoretical arrival time). Waiting takes the queue's lock and allocates a timer.
//! Measured figures are in the repository's `benches/README.md`.
//!
//! # Observability
//!
//! A rejection emits a `debug` event, a wait that times out an `info` event, an eviction of
//! keys a `debug` event (target `tower_bulkhead`, fields `bulkhead`, `key`, `reason`).
//! Metrics ([`metrics`], install the recorder before building layers):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `bulkhead_in_flight` | gauge | `bulkhead` |
//! | `bulkhead_tokens_in_use` | gauge | `bulkhead` |
//! | `bulkhead_rejected_total` | counter | `bulkhead`, `reason` = `bulkhead_full` \| `budget_exhausted` \| `cost_exceeds_capacity` \| `wait_timed_out` |
//! | `bulkhead_wait_seconds` | histogram | `bulkhead` |
//! | `bulkhead_keys` | gauge | `bulkhead` (per-key layers) |
//!
//! # Configuration from JSON
//!
//! With the `serde` feature, [`BulkheadConfig`] reads one compartment and
//! [`KeyedBulkheadConfig`] per-key compartments (`bulkheads`, `default`, `max_keys`…):
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use tower_bulkhead::{BulkheadLayer, KeyedBulkheadConfig};
//!
//! let config: KeyedBulkheadConfig = serde_json::from_str(r#"{"bulkheads": {
//!     "research_agent": {"max_concurrent": 4, "token_budget": 1000, "max_wait_seconds": 2},
//!     "writing_agent": {"max_concurrent": 2, "token_budget": 500,
//!                       "refill_tokens": 10000, "refill_period_seconds": 60}
//! }}"#).unwrap();
//! let layer = BulkheadLayer::keyed_from_config(config, |agent: &String| agent.clone()).unwrap();
//! # }
//! ```
//!
//! Unknown fields are a deserialization error naming the field; invalid values (a zero limit,
//! a negative duration, a refill period without refill tokens…) are a [`ConfigError`] naming
//! the field when the layer is built, never a panic.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | yes | `.http()`, `.grpc()`, [`HeaderCost`], [`BodySize`], [`UntilBodyEnd`] |
//! | `serde` | no | `Deserialize`/`Serialize` for the configuration types |
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod budget;
mod builder;
mod compartment;
mod config;
mod cost;
mod error;
pub mod future;
mod handle;
mod hold;
mod keyed;
mod layer;
pub mod metrics;
mod service;

pub use builder::BulkheadBuilder;
pub use compartment::Permit;
#[cfg(feature = "http")]
pub use compartment::{CostReport, StreamPermit};
pub use config::{
    BulkheadConfig, KeyedBulkheadConfig, MAX_CONCURRENT, MAX_DURATION, MAX_KEY_LENGTH, MAX_KEYS,
    MAX_TOKENS, MIN_PERIOD, Overflow,
};
pub use cost::{ActualCost, Cost, EstimateStands, PerRequest};
#[cfg(feature = "http")]
pub use cost::{BodySize, HeaderCost};
pub use error::{ConfigError, LayerKind, Reason, Rejected};
pub use handle::BulkheadHandle;
#[cfg(feature = "http")]
pub use hold::{BodyEnd, UntilBodyEnd};
pub use hold::{Hold, UntilResponse};
pub use keyed::{KeyedBulkhead, KeyedBulkheadHandle, KeyedBulkheadLayer};
pub use layer::BulkheadLayer;
pub use service::Bulkhead;

pub use tower_outcome::{BoxError, BoxErrorAnswer, find_rejected};

/// The README's examples, compiled and run as doctests.
#[cfg(all(doctest, feature = "http", feature = "serde"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
#[cfg(feature = "http")]
pub use tower_outcome::{EosBody, GrpcAnswer, HttpAnswer};

//! Self-healing for tower services: retry with back-off and jitter, per-error-class policies,
//! `Retry-After` and gRPC pushback, retry budgets, body replay and hedging; fallback with
//! degradation levels, automatic recovery, idempotency keys and checkpointed workflows.
//!
//! Most failures are transient: a dropped connection, a 503 during a deploy, a 429 from a
//! rate-limited API. Retrying them is the cheapest healing there is, and the most dangerous
//! when done naively: clients retrying in lockstep keep a recovering dependency down, a
//! retried POST charges a card twice, a retried validation error never succeeds. This crate
//! retries with jitter, within a budget shared by every clone, only what is safe to retry.
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_heal::{Jitter, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), std::io::Error> {
//! let retry = RetryLayer::builder()
//!     .name("inventory")
//!     .max_retries(3)                           // 4 attempts at most
//!     .initial_delay(Duration::from_millis(200)) // 200 ms, 400 ms, 800 ms ...
//!     .jitter(Jitter::Full)                     // ... each drawn uniformly below that
//!     .build()
//!     .unwrap();
//!
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let seen = calls.clone();
//! let mut svc = ServiceBuilder::new().layer(retry).service_fn(move |n: u32| {
//!     let attempt = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         if attempt < 2 { Err(std::io::Error::other("connection reset")) } else { Ok(n * 2) }
//!     }
//! });
//! assert_eq!(svc.ready().await?.call(21).await?, 42);
//! assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
//! # Ok(()) }
//! ```
//!
//! # Retry
//!
//! Attempts = 1 + `max_retries` (default 2). Before retry `n` (from 0) the layer waits
//! `min(max_delay, initial_delay × multiplier^n)` (defaults 100 ms, × 2, 10 s), randomised by
//! a [`Jitter`] mode (`none`, `full` = the default, `equal`, `decorrelated`,
//! `proportional(f)`) drawn from a seedable [`fastrand::Rng`]; a zero back-off
//! ([`Backoff::none`]) retries at once, in the same poll, without a timer. `max_total_delay`
//! bounds the summed back-off, and a [`Deadline`] in an HTTP request's extensions (or a gRPC
//! request's `grpc-timeout`) bounds the call: a back-off that would reach either is not
//! started. A failed attempt's response is dropped before the back-off; dropping the response future during a back-off returns at
//! once and makes no further attempt. Each retry emits a tracing event at `INFO`
//! (`attempt 2/3 failed: api_errors_5xx (503); waiting 2000 ms`) and calls the
//! [`on_retry`](RetryBuilder::on_retry) hook.
//!
//! # Classes and per-class policies
//!
//! A [classifier](ClassifyRetry) puts each failed attempt in a [`Class`]: `network_error`,
//! `timeout`, `api_errors_5xx`, `rate_limit_429`, `validation_error`, `grpc_unavailable`,
//! `rejected`, `circuit_open`, or one of your own ([`FnClasses`]). Each class has its own
//! [`ClassPolicy`] (retries and back-off); `validation_error` and `circuit_open` are never
//! retried unless configured. The
//! configuration reads from JSON ([`RetryConfig`], with the `serde` feature):
//!
//! ```json
//! {"retry_policies": {
//!   "network_error": {"max_retries": 5, "backoff": "exponential", "initial_delay_ms": 1000, "max_delay_ms": 30000, "jitter": true},
//!   "rate_limit_429": {"max_retries": 3, "backoff": "fixed", "delay_ms": 60000},
//!   "validation_error": {"max_retries": 0}}}
//! ```
//!
//! A call's retries are counted across classes: retry `n` is allowed when `n` is below the
//! `max_retries` of the class of the attempt that just failed, and its exponential back-off
//! uses that `n`.
//!
//! # Server pushback and the family's rejections
//!
//! `Retry-After` (seconds or HTTP-date, on 429 and 5xx) and gRPC's `grpc-retry-pushback-ms`
//! replace the computed delay, without jitter (a retry never fires early). How long a call
//! waits for what it meets:
//!
//! | the attempt meets | class | with the defaults |
//! |---|---|---|
//! | `Retry-After` or pushback | its response's (`api_errors_5xx`, `rate_limit_429`, `grpc_unavailable`) | waited out up to `max_retry_after` (60 s); beyond it, or too large to parse, the response is returned without retry; a negative or garbage pushback stops the retries |
//! | an open circuit breaker (also forced open, or half-open without a free probe slot) | `circuit_open` | returned at once, whatever its `retry_after`, so a fallback above answers; configure `circuit_open` retries to wait it out within the next row's limits |
//! | a full bulkhead, an exhausted token budget, another family rejection | `rejected` | waited out when its `retry_after` fits both `max_rejection_wait` (10 s) and `max_retry_after`; returned at once beyond them, or without a `retry_after` |
//!
//! A wait is also bounded by the call's deadline, `max_total_delay` and the budget, as every
//! back-off is.
//!
//! # Retry budget
//!
//! On by default ([`RetryBudget`]): each first attempt deposits `ratio` (0.2) of a retry,
//! each retry withdraws one, `min_per_second` (10) are always allowed, deposits expire after
//! `ttl` (10 s) and live that long however idle the layer was. An exhausted budget returns
//! the failed result at once (it never waits); a retry waiting in back-off has already
//! withdrawn. gRPC's [`Throttle`] is the alternative.
//!
//! # What is retried
//!
//! A [`RetryGate`] decides before the first attempt. [`RetryBuilder::http_client`] retries only
//! idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or requests carrying an
//! `Idempotency-Key`; [`RetryBuilder::retry_if`] takes a predicate for other services.
//!
//! A failure that may have reached the server (a timeout, a connection lost after the
//! request went out: [`Failure::maybe_sent`]) is retried only for a request the gate calls
//! [idempotent](RetryGate::idempotent); a refused connection, an answer such as a 503, and a
//! family rejection never ran the request and are retried by their class's policy. This holds
//! for every constructor: over an `http::Request`, the default gate of [`RetryLayer::new`]
//! and [`RetryLayer::from_config`] ([`AnyRequest`]) does not send a POST that timed out
//! twice. `retry_non_idempotent` ([`RetryConfig`], [`RetryBuilder::retry_non_idempotent`])
//! says otherwise.
//!
//! [`RetryBuilder::grpc_client`] follows gRPC's retry design (A6): `UNAVAILABLE` answers and RPCs that
//! never left the client are retried for every method; a timeout only for the methods marked
//! [`idempotent_method`](RetryBuilder::idempotent_method). The RPC's deadline (its
//! `grpc-timeout`, or a [`Deadline`] extension) bounds every back-off, and a retry carries
//! the time left as its `grpc-timeout`. tonic's `Channel` fails with an error type the
//! classes cannot look into: map it into a `BoxError` under the layer
//! (`channel.map_err(BoxError::from)`) so a refused connection is retried too.
//!
//! Requests are kept for another attempt by [`Replay`]: cloned by default, or, for HTTP
//! bodies that are not `Clone` (axum, hyper, reqwest, tonic), buffered up to a bound as
//! they are sent and replayed ([`ReplayBodies`]; [`RetryBuilder::grpc_client`] does this).
//!
//! # Hedging
//!
//! Opt-in, for tail latency: a [`HedgeLayer`] sends up to `max_hedges` more copies of a
//! request that has had no answer after `hedge_delay` (fixed, or a percentile of the latencies
//! it tracks), takes the first good answer and cancels the rest. Only requests its gate allows
//! and calls idempotent are hedged, and each copy sent withdraws from a retry budget (its own, or a retry layer's
//! with [`share_budget_with`](HedgeBuilder::share_budget_with)); a copy that is due but not
//! sent (the service not ready, the request not replayable) costs nothing. A call answered on
//! its first poll costs no timer.
//!
//! # Sharing and clones
//!
//! Each layer's state (a retry's budget and counters, a hedge's latency tracker, a recovery's
//! health window) is created with the layer value: every service the layer wraps, and every
//! clone of those services, share it. A clone never inherits the readiness of the service it
//! was cloned from.
//!
//! # Backpressure
//!
//! A retry's and a hedge's `poll_ready` is the inner service's: they never pend or fail
//! because of themselves. A retry or a hedged copy drives a clone of the inner service to
//! readiness itself before calling it (the inner service must be `Clone`), so the caller's
//! readiness is never spent on an attempt it did not ask for.
//!
//! # Cancellation
//!
//! Dropping a retry's response future (a caller gone, an outer timeout) drops the attempt in
//! flight or the back-off: no further attempt is made. Dropping a hedge's future drops every
//! copy still in flight; once a good answer arrives, the other copies are dropped.
//!
//! # Cost
//!
//! A request the gate does not allow to be retried is passed through as it is. One that may be
//! retried is kept for another attempt (a clone, or its body in a bounded replay buffer) until
//! its call ends; the budget is atomics, dated without a clock read per call; a back-off sleeps
//! on tokio's timer. Measured figures are in the repository's `benches/README.md`.
//!
//! # Where it goes in a stack
//!
//! On the client side, outermost first: fallback → **retry** → breaker → bulkhead →
//! per-attempt timeout → (chaos, when testing) → transport. Retry outside the breaker: each
//! attempt is seen by the breaker, and its open rejection carries the time left as
//! `retry_after`.
//!
//! **An open breaker ends the call at once** (the table above): its rejection is returned,
//! so a fallback above answers, even when the breaker's `reset_timeout` is short. A full
//! bulkhead's short `retry_after` is waited out. To never wait for any rejection, give the
//! `rejected` class no retries too:
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_breaker::CircuitBreakerLayer;
//! use tower_heal::{Class, ClassPolicy, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let retry = RetryLayer::builder()
//!     .max_retries(3)
//!     .policy(Class::REJECTED, ClassPolicy::never()) // a full bulkhead ends the call too
//!     .build()
//!     .unwrap();
//! let breaker = CircuitBreakerLayer::builder()
//!     .failure_threshold(1)
//!     .reset_timeout(Duration::from_secs(2))
//!     .build()
//!     .unwrap();
//! let mut svc = ServiceBuilder::new()
//!     .layer(retry)
//!     .layer(breaker)
//!     .service_fn(|_: u32| async { Err::<u32, _>(std::io::Error::other("connection reset")) });
//!
//! let _ = svc.ready().await.unwrap().call(1).await;      // trips the breaker
//! let start = tokio::time::Instant::now();
//! let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
//! assert!(tower_heal::find_rejected(&*err).is_some());    // the breaker's rejection...
//! assert_eq!(start.elapsed(), Duration::ZERO);            // ...at once, not after 2 s
//! # }
//! ```
//!
//! # HTTP clients, reqwest
//!
//! [`RetryBuilder::http_client`] needs an `http::Request<B>` → `http::Response<B>` service: its
//! classes read the status and `Retry-After`, its gate the method. Build it from a JSON
//! configuration with [`RetryBuilder::config`]; [`RetryLayer::from_config`] keeps the
//! default classes, which never retry a response (a 503 is returned at once):
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_heal::{RetryConfig, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let config: RetryConfig = serde_json::from_str(r#"{"retry_policies": {
//!     "api_errors_5xx": {"max_retries": 3, "backoff": "exponential", "initial_delay_ms": 200},
//!     "validation_error": {"max_retries": 0}}}"#).unwrap();
//! let retry = RetryLayer::builder().http_client().config(config).name("payments-api").build().unwrap();
//!
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let seen = calls.clone();
//! let mut client = ServiceBuilder::new().layer(retry).service_fn(move |_req: http::Request<String>| {
//!     let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         let status = if n == 0 { 503 } else { 200 };
//!         Ok::<_, std::io::Error>(http::Response::builder().status(status).body(String::new()).unwrap())
//!     }
//! });
//! let req = http::Request::get("http://inventory/items").body(String::new()).unwrap();
//! assert_eq!(client.ready().await.unwrap().call(req).await.unwrap().status(), 200);
//! assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2); // the 503 was retried
//! # }
//! # }
//! ```
//!
//! `reqwest::Client` is a `Service<reqwest::Request>`, not an HTTP-types service: wrap it in
//! a `service_fn` that converts both ways (reqwest 0.13; a `String` or `Bytes` request body is
//! `Clone`, so no body replay is needed), and put the layers on that:
//!
//! ```text
//! let client = reqwest::Client::new();
//! let transport = tower::service_fn(move |req: http::Request<String>| {
//!     let client = client.clone();
//!     async move {
//!         let res = client.execute(reqwest::Request::try_from(req)?).await?;
//!         Ok::<_, reqwest::Error>(http::Response::from(res)) // http::Response<reqwest::Body>
//!     }
//! });
//! let client = ServiceBuilder::new().layer(retry).layer(breaker).service(transport);
//! ```
//!
//! # Metrics
//!
//! See [`metrics`] for the names (`heal_attempts_total`, `heal_retries_total`,
//! `heal_backoff_seconds`, `heal_retries_refused_total`, `heal_hedges_total`).
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
//!
//!   For an HTTP client, classify by status with [`HttpStatus`], so a 503 falls back too:
//!
//!   ```
//!   # #[cfg(feature = "http")] {
//!   use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!   use tower_heal::{Degradable, FallbackLayer, HttpStatus};
//!
//!   # #[tokio::main(flavor = "current_thread")]
//!   # async fn main() -> Result<(), tower_heal::BoxError> {
//!   let cached = service_fn(|_: http::Request<()>| async {
//!       Ok::<_, std::io::Error>(http::Response::new(String::from("cached")))
//!   });
//!   let mut client = ServiceBuilder::new()
//!       .layer(FallbackLayer::builder("catalog").classifier(HttpStatus::new()).build(cached))
//!       .service_fn(|_: http::Request<()>| async {
//!           let mut unavailable = http::Response::new(String::new());
//!           *unavailable.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
//!           Ok::<_, std::io::Error>(unavailable)
//!       });
//!   let res = client.ready().await?.call(http::Request::new(())).await?;
//!   assert_eq!(res.body(), "cached");
//!   assert!(res.degraded().is_some());
//!   # Ok(()) }
//!   # }
//!   ```
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
//! **Metrics** ([`metrics`]): `heal_fallbacks_total{component,level}`,
//! `heal_degradation_level{component}`, `heal_recoveries_total{component,result}`,
//! `heal_escalations_total{component}`, `heal_idempotent_replays_total`,
//! `heal_checkpoint_resumes_total`. **Events** (target `tower_heal`): every fallback (info;
//! warn when none answered), recovery (warn when it starts, info when done, error when it
//! fails), escalation (error), replay (info) and resume (info).
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | yes | [`HttpClasses`], [`GrpcClasses`], [`IdempotentMethods`], [`GrpcGate`], [`ReplayBodies`]; the `Degraded` header, the HTTP idempotency codec, `.http()` answers |
//! | `serde` | no | `Deserialize` / `Serialize` for [`RetryConfig`] and [`RecoveryConfig`], `Serialize` for [`DegradationReport`] |
//! | `sqlite` | no | `store::SqliteStore` (SQLite compiled from the crate: nothing to install) |
//! | `redis` | no | `store::RedisStore`: one result store for every replica, idempotency keys claimed fleet-wide (Redis OSS 7+ or Valkey) |
//! | `checkpoint` | no | `checkpoint::Workflow` (step results as serde data) |
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod budget;
mod hedge;
mod jitter;
pub mod metrics;
mod replay;
mod retry;

pub use backoff::{Backoff, BackoffKind};
pub use budget::{RetryBudget, Throttle};
pub use hedge::{Hedge, HedgeBuilder, HedgeFuture, HedgeLayer};
pub use jitter::Jitter;
pub use replay::{CloneRequest, Replay};
#[cfg(feature = "http")]
pub use replay::{Kept, ReplayBodies, ReplayBody};
pub use retry::*;

// What users name when they configure the layers: classifiers (the fallback's and the
// recovery's), answer modes, rejections and the `Retry-After` / pushback readers.
pub use tower_outcome::{
    Answer, BoxError, BoxErrorAnswer, Classify, ErrorsAsFailures, FnClassifier, LayerKind, Outcome,
    Reason, Rejected, find_rejected,
};
#[cfg(feature = "http")]
pub use tower_outcome::{
    GrpcAnswer, GrpcStatus, HttpAnswer, HttpStatus, Pushback, parse_grpc_pushback,
    parse_retry_after,
};

#[cfg(feature = "checkpoint")]
pub mod checkpoint;
pub mod fallback;
pub mod idempotency;
pub mod recovery;
pub mod store;

pub use idempotency::{IdempotencyBuilder, IdempotencyLayer};
pub use recovery::{
    ConfigError as RecoveryConfigError, DuringRebuild, Escalation, Recovery, RecoveryBuilder,
    RecoveryConfig, RecoveryLayer,
};

pub use fallback::{
    DEGRADED_HEADER, Degradable, DegradationLevel, DegradationReport, Degraded, Fallback,
    FallbackBuilder, FallbackChain, FallbackLayer, FallbackOn, KeepRequest, LastGood, Marked,
};

// The README's examples must keep compiling: they are checked as doctests here (they use the
// `http` and `serde` features, as CI's `--all-features` run has them).
#[cfg(all(doctest, feature = "http", feature = "serde"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// What does not compile, and gets a hint naming the fix (`#[diagnostic::on_unimplemented]`).
///
/// A request that is not `Clone` behind a fallback, without `.keep(..)`:
///
/// ```compile_fail,E0277
/// use tower::{Service, ServiceBuilder, service_fn};
/// use tower_heal::{DegradationLevel, FallbackLayer};
///
/// struct Query; // not Clone
/// let fallback = service_fn(|_: Query| async { Ok::<u32, std::io::Error>(0) });
/// let mut svc = ServiceBuilder::new()
///     .layer(FallbackLayer::new("q", DegradationLevel::Minimal, fallback))
///     .service_fn(|_: Query| async { Ok::<u32, std::io::Error>(1) });
/// let _ = svc.call(Query);
/// ```
///
/// An `.http()` answer over a body that cannot hold its text:
///
/// ```compile_fail,E0277
/// use tower::{Service, ServiceBuilder, service_fn};
/// use tower_heal::FallbackLayer;
///
/// struct Frames; // no From<String>
/// let answer = || async { Ok::<_, std::io::Error>(http::Response::new(Frames)) };
/// let mut svc = ServiceBuilder::new()
///     .layer(FallbackLayer::builder("q").http().build(service_fn(move |_: u32| answer())))
///     .service_fn(move |_: u32| answer());
/// let _ = svc.call(1);
/// ```
#[cfg(all(doctest, feature = "http"))]
struct CompileFailHints;

//! A circuit breaker for tower services: when a dependency keeps failing, fail fast for a
//! while instead of piling more calls onto it, then probe it and close again once it recovers.
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_breaker::{CircuitBreakerLayer, Rejected, State};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_breaker::BoxError> {
//! let breaker = CircuitBreakerLayer::builder()
//!     .name("inventory")
//!     .failure_threshold(3)                    // open after 3 failures in a row
//!     .reset_timeout(Duration::from_secs(30))  // then fail fast for 30 s
//!     .build()?;
//! let handle = breaker.handle();
//!
//! let mut svc = ServiceBuilder::new()
//!     .layer(breaker)
//!     .service_fn(|n: u32| async move {
//!         if n == 0 { Err(std::io::Error::other("dependency down")) } else { Ok(n) }
//!     });
//!
//! for _ in 0..3 {
//!     assert!(svc.ready().await?.call(0).await.is_err());
//! }
//! assert_eq!(handle.state(), State::Open);
//!
//! // While open, calls are rejected at once, without reaching the dependency.
//! let err = svc.ready().await?.call(1).await.unwrap_err();
//! let rejected = err.downcast_ref::<Rejected>().unwrap();
//! assert!(rejected.retry_after().unwrap() <= Duration::from_secs(30));
//! # Ok(()) }
//! ```
//!
//! # States
//!
//! - **Closed**: calls pass; their outcomes feed the trip rules. The circuit opens when any
//!   configured rule fires: `failure_threshold` consecutive failures (default 5); a failure
//!   rate of at least `failure_rate_threshold` over the window; a slow-call rate of at least
//!   `slow_call_rate_threshold` (slow = taking `slow_call_duration` or more). Rate rules need
//!   `minimum_calls` (default 20) in the window first. The window is the last N calls (default
//!   100) or the last T seconds in buckets (default 10 s in 10); it really is the last N, not
//!   "since the last transition".
//! - **Open**: calls are rejected at once with [`Rejected`] ([`Reason::CircuitOpen`]) whose
//!   `retry_after` is the time left when the call is made (in `call`, however long after
//!   `poll_ready` decided to refuse it; zero if the open time ran out meanwhile). After `reset_timeout` (default 60 s) the next call moves
//!   the breaker to half-open; no background task runs. A state read through the handle
//!   reports the due half-open without making the transition.
//!   With `open_backoff`, each consecutive re-open doubles the open time, up to 10 × the reset
//!   timeout, less up to 10 % jitter from a seedable source.
//! - **HalfOpen**: at most `half_open_max_calls` probes in flight (default 1); other calls are
//!   rejected ([`Reason::HalfOpenFull`]). `success_threshold` successful probes (default 1)
//!   close the circuit with clean windows; any failed (or slow) probe re-opens it. A
//!   cancelled probe frees its slot and counts for nothing; when every slot is held by a probe
//!   admitted `half_open_max_wait` ago or more (default: the reset timeout; measured per probe
//!   from its admission), the next call re-opens it.
//! - Set through a [`CircuitBreakerHandle`]: **ForcedOpen** (reject everything),
//!   **Disabled** (pass everything, record metrics), **MetricsOnly** (pass everything, evaluate
//!   the rules and report when one would trip). [`reset`](CircuitBreakerHandle::reset)
//!   returns to Closed with clean windows. Forcing the state the breaker is already in is no
//!   transition and is not reported (a reset of a closed breaker still cleans its windows).
//!
//! Outcomes of calls admitted before a transition never steer the new state: every count is
//! tagged with the breaker's generation. Nor does an admission outlive its state: a call
//! admitted in `poll_ready` whose inner service became ready only after a transition is
//! decided again when it is made (refused if the circuit opened meanwhile), as in the keyed
//! breaker, which decides again once the inner service is ready. A readiness error of the
//! inner service ends the admitted call and counts as that call's error would, in both.
//! Slow calls are timed to the nanosecond on tokio's clock, from `call` to the response (its
//! head, when a classifier waits for the end of a streamed body); an ignored call is never slow.
//!
//! # What counts as a failure
//!
//! A [classifier](Classify) decides. Unless you set one with
//! [`classifier`](CircuitBreakerBuilder::classifier), the answer mode implies it
//! ([`DefaultClassifier`]): [`ErrorsAsFailures`] in the default mode, [`HttpStatus`] with
//! [`.http()`](CircuitBreakerBuilder::http), [`GrpcStatus`] with
//! [`.grpc()`](CircuitBreakerBuilder::grpc). [`ErrorsAsFailures`] counts every error except
//! the family's own rejections. [`HttpStatus`] counts 500, 502, 503, 504 and 408, and
//! ignores 429, 501, 505 and other 4xx. [`GrpcStatus`] reads `grpc-status` from the headers, or
//! else from the trailers at the end of the stream (the response body is then wrapped); it
//! counts `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNKNOWN` and
//! `DATA_LOSS`. `ReqwestStatus` (feature `reqwest`) reads a `reqwest::Response`'s status as
//! [`HttpStatus`] does and counts connect errors and timeouts. [`FnClassifier`] takes a closure.
//!
//! # Where it goes in a stack
//!
//! On the client side, outermost first (a `ServiceBuilder` runs top to bottom):
//! fallback → retry → **breaker** → bulkhead → per-attempt timeout → (chaos, when testing) →
//! transport. Retry outside the breaker: each attempt is counted, and an open breaker stops
//! the retries. A timeout inside the breaker makes a hung dependency count as a failure.
//!
//! # Answers
//!
//! | mode | error type | an open circuit answers |
//! |---|---|---|
//! | default | [`BoxError`] | `Err`, downcastable to [`Rejected`] |
//! | [`.http()`](CircuitBreakerBuilder::http) | the inner error, unchanged | `503 Service Unavailable` with `Retry-After` (whole seconds, rounded up) and a `text/plain` line naming the breaker |
//! | [`.grpc()`](CircuitBreakerBuilder::grpc) | the inner error, unchanged | Trailers-Only, `grpc-status: 14` (`UNAVAILABLE`), `grpc-message` naming the breaker, `grpc-retry-pushback-ms` |
//!
//! The answer mode is chosen on the builder, before [`build`](CircuitBreakerBuilder::build),
//! because it also implies the classifier (see above).
//!
//! In the default mode an axum router needs `HandleErrorLayer` (axum requires `Infallible`
//! errors) and a tonic client sees `Code::Unknown` with the [`Rejected`] in `source()`. With
//! `.http()` axum needs nothing more; with `.grpc()` a tonic client sees `Code::Unavailable`
//! and a tonic server answers instead of resetting the stream.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_breaker::CircuitBreakerLayer;
//!
//! let breaker = CircuitBreakerLayer::builder()
//!     .name("reports")
//!     .http() // answers 503 itself, and counts 5xx answers as failures
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/reports", get(|| async { "ok" }))
//!     .route_layer(breaker); // unknown paths still answer 404
//! ```
//!
//! # Without tower
//!
//! Code that has no `Service` (a database driver, an SDK) uses the layer itself:
//! [`run`](CircuitBreakerLayer::run) runs a future through the breaker, or
//! [`acquire`](CircuitBreakerLayer::acquire) gives a [`CallPermit`] to record by hand. The rules,
//! metrics and cancellation are those of a call through the service.
//!
//! ```
//! use tower_breaker::{CircuitBreakerLayer, Rejected};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_breaker::BoxError> {
//! let breaker = CircuitBreakerLayer::builder().name("db").build()?;
//! let rows = breaker.run(async { Ok::<_, std::io::Error>(vec![1, 2, 3]) }).await?;
//! assert_eq!(rows.len(), 3);
//!
//! match breaker.acquire() {
//!     Ok(permit) => {
//!         // ... your call; then say how it went:
//!         permit.success();
//!     }
//!     Err(rejected) => println!("not now: {rejected}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # Keeping a breaker in a struct
//!
//! Every type is nameable, so a breaker-wrapped client can be a field of your own client
//! struct. The classifiers are named types ([`ErrorsAsFailures`], [`HttpStatus`],
//! [`GrpcStatus`], `ReqwestStatus`); the service is [`CircuitBreaker<S, C, A>`](CircuitBreaker)
//! (inner service, classifier, answer mode); give it a short name with a type alias:
//!
//! ```
//! # #[cfg(feature = "reqwest")] {
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_breaker::{BoxError, CircuitBreaker, CircuitBreakerLayer, ReqwestStatus};
//!
//! /// `reqwest::Client` behind a breaker that counts 5xx answers and connect errors.
//! type Guarded = CircuitBreaker<reqwest::Client, ReqwestStatus>;
//!
//! struct Inventory {
//!     base: String,
//!     http: Guarded,
//! }
//!
//! impl Inventory {
//!     fn new(base: String) -> Result<Self, BoxError> {
//!         let breaker = CircuitBreakerLayer::builder()
//!             .name("inventory")
//!             .reset_timeout(Duration::from_secs(30))
//!             .classifier(ReqwestStatus::new())
//!             .build()?;
//!         let http = ServiceBuilder::new()
//!             .layer(breaker)
//!             .service(reqwest::Client::new());
//!         Ok(Self { base, http })
//!     }
//!
//!     async fn stock(&mut self, item: u32) -> Result<reqwest::Response, BoxError> {
//!         let url = format!("{}/stock/{item}", self.base).parse()?;
//!         let request = reqwest::Request::new(reqwest::Method::GET, url);
//!         self.http.ready().await?.call(request).await
//!     }
//! }
//! # let _ = Inventory::new("http://127.0.0.1:1".into()).unwrap();
//! # }
//! ```
//!
//! A classifier of your own is nameable when it is a type, or a [`FnClassifier`] over a
//! function pointer (a closure's type has no name):
//!
//! ```
//! use std::error::Error;
//! use tower_breaker::{FnClassifier, Outcome, default_error_outcome};
//!
//! fn rows(result: Result<&Option<u32>, &(dyn Error + 'static)>) -> Outcome {
//!     match result {
//!         Ok(_) => Outcome::Success,
//!         Err(err) => default_error_outcome(err),
//!     }
//! }
//! type RowsClassifier =
//!     FnClassifier<fn(Result<&Option<u32>, &(dyn Error + 'static)>) -> Outcome, Option<u32>>;
//! let classifier: RowsClassifier = FnClassifier::new(rows);
//! # let _ = classifier;
//! ```
//!
//! For a whole stack (breaker, timeout, closures), box it once, where it is built:
//! `tower::util::BoxCloneService<Request, Response, BoxError>` is one nameable, cloneable
//! type whatever the layers inside:
//!
//! ```
//! use std::time::Duration;
//! use tower::util::BoxCloneService;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_breaker::{BoxError, CircuitBreakerLayer};
//!
//! struct Quotes {
//!     svc: BoxCloneService<String, String, BoxError>,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), BoxError> {
//! let breaker = CircuitBreakerLayer::builder().name("quotes").build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(breaker)
//!     .service_fn(|symbol: String| async move { Ok::<_, BoxError>(format!("{symbol}: 42")) });
//! let mut quotes = Quotes { svc: BoxCloneService::new(svc) };
//! assert_eq!(quotes.svc.ready().await?.call("ACME".into()).await?, "ACME: 42");
//! # Ok(()) }
//! ```
//!
//! # Sharing and clones
//!
//! The breaker's state is created with the layer value: every service it makes, and every
//! clone of those (axum clones per request, tonic per connection), share one breaker. A clone
//! never inherits readiness: it must be polled ready itself. For one breaker per host, tenant
//! or route, use [`KeyedCircuitBreakerLayer`] ([`CircuitBreakerBuilder::build_keyed`]).
//!
//! # Backpressure
//!
//! `poll_ready` reads the state with one atomic load. A call to be refused returns ready at
//! once **without polling the inner service**, so it reserves nothing downstream (a tonic
//! `Channel`'s buffer slot, a concurrency permit), and is answered from the response future.
//! An admitted call forwards the inner `poll_ready`. The breaker never fails `poll_ready` and
//! never waits.
//!
//! # Cancellation
//!
//! What an admitted call holds (its half-open probe slot) is released when the response
//! future, or the wrapped response body, is dropped. A dropped call counts for nothing.
//!
//! # Panics in your code
//!
//! A listener or classifier that panics leaves the breaker exactly as if it had returned, and
//! its panic carries on to the caller: a transition listener runs after its transition is
//! made (the transitions queued behind it are still reported, in order); a call listener runs
//! after the outcome is recorded; a classifier that panics leaves its call without an
//! outcome, counted for nothing, as a cancelled call, its probe slot freed once.
//!
//! # Cost
//!
//! A closed call takes one atomic load in `poll_ready`, one reference-count increment and
//! decrement (the response future must own a handle on the breaker to record the outcome), one
//! `breaker_calls_total` increment (a no-op without a recorder), and on success one more load;
//! no lock, no allocation, no clock read. A rate window adds one
//! shared atomic increment per call (count window) or a clock read (time window); a slow-call
//! rule adds two clock reads. An open breaker reads the clock once to decide a rejection (has
//! the reset timeout passed?) and once more when answering it (the time left, for
//! `retry_after`); the default answer mode boxes the rejection. Measured figures, beside peer
//! crates, are in the repository's `benches/README.md`.
//!
//! # Observability
//!
//! Every transition emits a `tracing` event (target `tower_breaker`, fields `breaker`, `key`,
//! `from`, `to`, `reason`; `warn` when opening, `info` otherwise) and calls the listener given
//! to [`on_transition`](CircuitBreakerBuilder::on_transition). A per-call listener, opt-in
//! with [`on_call`](CircuitBreakerBuilder::on_call), is told each call's outcome (success,
//! failure, ignored, rejected) and duration; without one nothing is spent on it (it is a type
//! parameter, [`NoCallListener`] by default). Metrics (install the recorder before building
//! layers):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `breaker_calls_total` | counter | `breaker`, `outcome` = `success` \| `failure` \| `ignored` \| `rejected` |
//! | `breaker_state` | gauge, one-hot | `breaker`, `state` = `closed` \| `open` \| `half_open` \| `forced_open` \| `disabled` \| `metrics_only` |
//! | `breaker_transitions_total` | counter | `breaker`, `from`, `to` |
//! | `breaker_keys` | gauge | `breaker` (per-key layers) |
//!
//! # Configuration from JSON
//!
//! With the `serde` feature, [`CircuitBreakerConfig`] reads the shape of your JSON, and
//! [`CircuitBreakerProfiles`] a map of named profiles:
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use tower_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
//!
//! #[derive(serde::Deserialize)]
//! struct Settings {
//!     circuit_breaker: CircuitBreakerConfig,
//! }
//! let settings: Settings = serde_json::from_str(r#"{"circuit_breaker": {
//!     "name": "mcp_filesystem", "failure_threshold": 5,
//!     "reset_timeout_seconds": 60, "half_open_max_calls": 1
//! }}"#).unwrap();
//! let layer = CircuitBreakerLayer::from_config(settings.circuit_breaker).unwrap();
//! assert_eq!(layer.name(), "mcp_filesystem");
//! # }
//! ```
//!
//! Invalid values (a zero threshold, a rate outside (0, 1], a zero window…) are a
//! [`ConfigError`] naming the field when the layer is built, never a panic.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `http` | yes | [`HttpStatus`], [`GrpcStatus`], `.http()`, `.grpc()` |
//! | `reqwest` | no | `ReqwestStatus`, a classifier for a breaker in front of `reqwest::Client` (implies `http`) |
//! | `serde` | no | `Deserialize`/`Serialize` for the configuration types |
//! | `redis` | no | `fleet::FleetOverrides`: force-open, disable or reset a named breaker on every replica through Redis; the counters stay local |
//!
//! # Supported Rust versions
//!
//! The workspace's `rust-version`; raised only with a minor release.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod call_event;
mod classifier;
mod clock;
mod common;
mod config;
#[cfg(feature = "serde")]
mod config_serde;
mod error;
mod event;
#[cfg(feature = "redis")]
pub mod fleet;
pub mod future;
mod handle;
mod keyed;
mod layer;
mod machine;
pub mod metrics;
mod padded;
mod permit;
mod profiles;
mod refusal;
mod service;
mod slot;
mod state;
mod ticket;
mod window;
mod word;

pub use builder::CircuitBreakerBuilder;
pub use call_event::{CallEvent, CallListener, CallOutcome, NoCallListener};
pub use classifier::{Chosen, ClassifierChoice, DefaultClassifier, ImplyClassifier};
pub use config::{
    CircuitBreakerConfig, MAX_COUNT_WINDOW, MAX_DURATION, MAX_PROBES, MAX_TIME_BUCKETS,
    WindowConfig,
};
pub use error::{ConfigError, LayerKind, Reason, Rejected};
pub use event::{Transition, TransitionReason};
pub use handle::CircuitBreakerHandle;
pub use keyed::{
    KeyedCircuitBreaker, KeyedCircuitBreakerHandle, KeyedCircuitBreakerLayer, KeyedResponseFuture,
};
pub use layer::CircuitBreakerLayer;
#[allow(deprecated)]
pub use permit::{CallPermit, Permit};
pub use profiles::CircuitBreakerProfiles;
pub use service::CircuitBreaker;
pub use state::State;

#[cfg(feature = "reqwest")]
pub use tower_outcome::ReqwestStatus;
pub use tower_outcome::{
    BoxError, BoxErrorAnswer, Classify, ErrorsAsFailures, FnClassifier, Outcome, Settle,
    default_error_outcome, find_rejected,
};
#[cfg(feature = "http")]
pub use tower_outcome::{EosBody, GrpcAnswer, GrpcStatus, HttpAnswer, HttpStatus};

// The README's examples must keep compiling: they are checked as doctests here (they use the
// `http` and `serde` features, as CI's `--all-features` run has them).
#[cfg(all(doctest, feature = "http", feature = "serde"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

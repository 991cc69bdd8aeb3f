//! Fault injection for tower services, and chaos experiments that say whether your breakers,
//! bulkheads and retries really hold: "break it in testing so it doesn't break in production".
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_chaos::{ChaosLayer, Fault, Latency, Schedule};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_chaos::BoxError> {
//! let chaos = ChaosLayer::<u32, u32>::builder()
//!     .name("inventory-chaos")
//!     .seed(42)                                                 // same seed, same faulted calls
//!     .fault(Fault::latency(Latency::Fixed(Duration::from_secs(2))).rate(0.25))
//!     .fault(Fault::error(|| "connection refused".into()).rate(1.0).schedule(Schedule::FirstCalls(2)))
//!     .build()?;                                                // not armed yet: injects nothing
//! let handle = chaos.handle();
//!
//! let mut svc = ServiceBuilder::new()
//!     .layer(chaos)
//!     .service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
//!
//! handle.arm();
//! assert!(svc.ready().await?.call(1).await.is_err());          // the first two calls fail
//! assert!(svc.ready().await?.call(2).await.is_err());
//! assert_eq!(svc.ready().await?.call(3).await?, 3);            // then pass (a quarter delayed)
//! handle.disarm();                                              // the kill switch
//! # Ok(()) }
//! ```
//!
//! # Faults
//!
//! | constructor | does | stage |
//! |---|---|---|
//! | [`Fault::error`] | fails the call with your error, without calling the service | terminal |
//! | [`Fault::abort`] | refuses at once with the family's [`Rejected`] ([`LayerKind::Chaos`], [`Reason::Injected`]) | terminal |
//! | [`Fault::http_status`] (+ [`retry_after`](Fault::retry_after)) | answers 503, 429, 500… with `Retry-After` | terminal |
//! | [`Fault::grpc_status`] | answers a Trailers-Only gRPC status (HTTP 200, `grpc-status: 14`…) | terminal |
//! | [`Fault::latency`] | delays the request (the service is called after the delay): [`Latency::Fixed`], [`Latency::Uniform`], [`Latency::LogNormal`] from a p50 and a p99 | gate |
//! | [`Fault::response_delay`] | delays the service's answer (the service is called at once) | post |
//! | [`Fault::hang`] | holds the request until released ([`ChaosHandle::release_hung`], a disarm) or dropped | gate |
//! | [`Fault::mutate`] | passes the service's answer through your closure: corrupt, truncate, replace | post |
//! | [`Fault::slow_body`], [`Fault::cut_off_body`] | stalls the response body, or ends it early with an error | post |
//!
//! Injected HTTP statuses and gRPC codes look to the layers above **exactly like the real
//! thing**: they carry no [`Rejected`] extension, so a breaker with an `HttpStatus` classifier
//! counts an injected 503 as the failure a real one is. Only [`Fault::abort`] is marked as
//! injected (the family's classifiers ignore it), for when you want a refusal the layers above
//! must not count.
//!
//! # How stacked faults combine
//!
//! Every fault is decided **once per request**, in `call`, independently of the others, so each
//! keeps its configured rate: a 30 % latency and a 10 % error stacked give 30 % delayed calls,
//! 10 % failed calls, and about 3 % that are both. (Deciding a fault twice, once per stage, is
//! how a 50 % abort becomes 75 %.) On one request they act in stage order:
//!
//! 1. **gates**, in order, before the service is called: the delays of every latency fault
//!    that fired add up, then a hang. The request waits in the layer with the service
//!    `poll_ready` made ready (a clone takes its place, so the wrapped service must be
//!    `Clone`), and is sent when the gates pass;
//! 2. **terminal**: the first terminal fault that fired (in the order they were added) answers
//!    instead of the service; a later terminal fault that also fired is not injected (there is
//!    no call left for it) and not counted;
//! 3. **post**: the response delays that fired add up and hold the service's answer (or
//!    error), then the mutations and body faults that fired act on it, in order (errors pass
//!    unchanged).
//!
//! So "delay first, then abort/error" holds: a call meeting both waits, then fails.
//!
//! # When
//!
//! - A rate per fault, always explicit ([`Fault::rate`]; a fault without one is a
//!   [`ConfigError`]).
//! - A predicate over the request ([`Fault::when`]: a header, a route, a tenant).
//! - A [`Schedule`]: the first N calls, every k-th, between two instants, for a duration
//!   after arming. Counts restart when the layer is armed.
//! - Header-driven opt-in ([`ChaosBuilder::header_control`], or [`ChaosBuilder::control`] for
//!   any request type): only requests naming a fault (`x-chaos: http_503=0.5, latency`) can meet
//!   it, at the rate they ask for capped by the configured rate, and only while the layer is
//!   armed. With it, `max_active_faults` defaults to [`DEFAULT_CONTROL_MAX_ACTIVE_FAULTS`], a
//!   header cannot ask for a hang unless [`ChaosBuilder::control_allows_hang`], and the
//!   header is removed before the inner service sees the request.
//! - [`max_active_faults`](ChaosBuilder::max_active_faults): at most that many faulted calls in
//!   progress (a body fault until its body ends); a fault past it is not injected and is
//!   counted as overflow.
//!
//! # Deterministic
//!
//! A decision is a pure function of `(seed, fault name, request number)`: a splitmix64 hash,
//! not a shared random stream, so the same seed faults the same requests whatever the task
//! interleaving and worker count. The request number is the call's sequence number since
//! arming, or [`ChaosBuilder::key`] of the request (an id), which makes the faulted set the
//! same even when concurrent tasks reach the layer in another order. Latency samples come from
//! the same hash. Renaming a fault changes which requests it hits; adding one does not change
//! the others. (`max_active_faults` is the exception: overflow depends on what is in
//! progress.)
//!
//! # Safe by default
//!
//! - A layer **injects nothing until armed** ([`ChaosBuilder::armed`] or [`ChaosHandle::arm`]).
//! - **Dry run** ([`ChaosBuilder::dry_run`], [`ChaosHandle::set_dry_run`]) decides, counts
//!   and logs every fault, and injects none.
//! - **Kill switch**: [`ChaosHandle::disarm`], re-arm, change rates live
//!   ([`ChaosHandle::set_rate`]). Disarming also releases the calls held by hang and latency
//!   faults ([`ChaosBuilder::release_on_disarm`], on by default;
//!   [`ChaosHandle::disarm_with`] chooses per call).
//! - **Bounded**: [`auto_disarm_after`](ChaosBuilder::auto_disarm_after) disarms the layer
//!   that long after arming, whatever happened to the code that armed it, with no background
//!   task: each armed call checks it, and each held call has a timer for it.
//! - **Guard**: the layer disarms itself when the inner service's *real* (non-injected) error
//!   rate over a window (default 30 s) passes a limit (default 50 %, once 10 calls are in the
//!   window), or, with [`ChaosBuilder::guard_latency`], when the p99 latency callers see
//!   passes a bound (a held call counts as slow once held that long, so a 100 % hang trips
//!   it), with a `warn` event; only the handle re-arms it ([`ChaosBuilder::guard`],
//!   [`ChaosBuilder::guard_classifier`]). Every real call that ended in the window counts,
//!   successes included; calls answered by a terminal fault do not. It acts only while the
//!   layer is armed, and trips once per arming.
//! - **No runtime, no timer fault**: a call made outside a tokio runtime does not meet the
//!   faults that need a timer (a delay, a stalled body); they are counted
//!   ([`ChaosStats::no_runtime`]) and take no `max_active_faults` place.
//! - **Compiled out**: without the `inject` cargo feature (on by default) the layer's
//!   `layer(svc)` returns `svc` itself, so a production build with
//!   `default-features = false` carries no injection code; handles and configs still compile.
//!
//! # Answers
//!
//! | mode | error type | abort | error fault |
//! |---|---|---|---|
//! | default | [`BoxError`] | `Err(Rejected)` | your error |
//! | [`.http()`](ChaosBuilder::http) | the inner error, unchanged (axum's `Infallible` stays) | 503 carrying `Rejected` | a bare 500 |
//! | [`.grpc()`](ChaosBuilder::grpc) | the inner error, unchanged | Trailers-Only 14 carrying `Rejected` | Trailers-Only 13 with the message |
//!
//! Status faults answer the same in every mode.
//!
//! # Sharing and clones
//!
//! The state (armed or not, rates, counters, the guard) is created with the layer value: every
//! service the layer wraps, and every clone of those services, share it, so one handle arms
//! and disarms them all. A clone never inherits the readiness of the service it was cloned
//! from.
//!
//! # Backpressure
//!
//! `poll_ready` is the inner service's: the chaos layer never pends or fails it. Faults are
//! decided in `call` and answered from the response future, so an aborted call reserves
//! nothing of the inner service.
//!
//! # Cancellation
//!
//! Dropping a faulted call's future (or a faulted body) gives back what it holds: its
//! active-fault slot, its timer, and a held call's request. A stalled or cut-off body holds its
//! slot until it ends or is dropped.
//!
//! # Where it goes in a stack
//!
//! Next to the transport, inside everything it tests (a `ServiceBuilder` runs top to bottom):
//! fallback → retry → breaker → bulkhead → per-attempt timeout → **chaos** → transport. Inside
//! a retry, each attempt meets the chaos layer and is decided on its own.
//!
//! # Experiments
//!
//! The [`experiment`] module runs the chaos cycle: check the steady state, arm, observe (with
//! [`stop_on_failure`](experiment::Experiment::stop_on_failure)), disarm, measure recovery,
//! and write a Markdown report in the "Chaos Test Results" form, with an Expected vs Actual
//! table, measured figures, the chaos events captured, issues found, recommendations, a
//! weighted score and "Hypothesis confirmed?". Recovery counts real answers only, a run that
//! injected nothing is inconclusive, and a run cancelled, timed out or panicking still
//! disarms the layer. It runs in real time or under paused tokio time, with one caller or
//! several at once. Suites read from JSON ([`experiment::SuiteConfig`]).
//! For an HTTP service, count its statuses with
//! [`.classify(RunnerOutcome::from_http)`](experiment::RunnerOutcome::from_http): by default the
//! runner counts every `Ok` answer, an injected 503 included, as a success.
//!
//! # Profiles and configuration
//!
//! [`profiles`] has one fault set per common failure mode of a dependency (dependency
//! unavailable, AI response timeout, API rate limit, malformed response, partial failure,
//! resource exhaustion). [`ChaosConfig`] reads a layer from JSON (`serde` feature); invalid
//! values are a [`ConfigError`] naming the field, never a panic.
//!
//! # Observability
//!
//! Each injected fault is a `tracing` event, target `tower_chaos`, field `chaos = true` (and
//! `dry_run`, `layer`, `fault`, `kind`, `seq`); arming, disarming and guard trips are events
//! too. Metrics ([`metrics`]; install the recorder before building layers):
//! `chaos_injected_total{chaos,fault}`, `chaos_dry_run_total{chaos,fault}`,
//! `chaos_overflow_total{chaos}`, `chaos_armed{chaos}`, `chaos_guard_trips_total{chaos}` (one
//! per trip).
//!
//! # Cost
//!
//! Disarmed, a call takes one relaxed atomic load and a branch over the bare service (and,
//! with header control, the header's removal), and its response future carries nothing but
//! the inner one. Armed, one shared atomic increment (the sequence number), one hash and one
//! compare per fault, and with the guard on a reference-count increment and decrement and an
//! atomic increment when the call ends (the guard counts every real call in its window; a
//! success reads the clock once in 8 calls, a failure every time), plus a clock read when the
//! call starts and when it ends if the guard watches latency. No lock
//! (but once per window slice), no allocation, no float math. With `auto_disarm_after`, one
//! clock read per armed call. A faulted call allocates its state (and its timer); a held one
//! also boxes the request with the service it will go to.
//! Compiled out (no `inject` feature) it costs nothing: the service is the bare one.
//! Measured figures are in the repository's `benches/README.md`.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `inject` | yes | the injection itself (without it, the layer returns the service unchanged) |
//! | `http` | yes | status, gRPC and body faults, header control, `.http()` / `.grpc()` |
//! | `serde` | no | `Deserialize`/`Serialize` for configs, profiles, suites; `from_json` |
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without injection (or HTTP) compiled in, parts of the decision machinery go unused.
#![cfg_attr(not(all(feature = "inject", feature = "http")), allow(dead_code))]

mod answer;
mod builder;
mod config;
mod core;
mod decide;
mod error;
pub mod experiment;
mod fault;
#[cfg(feature = "inject")]
pub mod future;
mod guard;
mod handle;
#[cfg(feature = "http")]
mod http;
mod layer;
pub mod metrics;
pub mod profiles;
#[cfg(feature = "inject")]
mod service;
mod switch;

pub use answer::ChaosAnswer;
pub use builder::{
    ChaosBuilder, DEFAULT_CONTROL_MAX_ACTIVE_FAULTS, DEFAULT_GUARD_ERROR_RATE,
    DEFAULT_GUARD_MINIMUM_CALLS, DEFAULT_GUARD_WINDOW,
};
pub use config::{ChaosConfig, FaultConfig, GuardConfig, LatencyConfig, ScheduleConfig};
pub use core::MAX_FAULTS;
pub use error::{ConfigError, LayerKind, MAX_DURATION, Reason, Rejected};
pub use fault::{Fault, FaultKind, Latency, Schedule};
pub use handle::{ChaosHandle, ChaosStats, FaultStats};
#[cfg(feature = "http")]
pub use http::{BodyCutOff, ChaosBody};
pub use layer::ChaosLayer;
pub use profiles::FaultProfile;
#[cfg(feature = "inject")]
pub use service::Chaos;

pub use tower_outcome::{BoxError, BoxErrorAnswer, find_rejected};
#[cfg(feature = "http")]
pub use tower_outcome::{GrpcAnswer, HttpAnswer};

// The README's examples must keep compiling: they are checked as doctests here.
#[cfg(all(doctest, feature = "http", feature = "inject"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

//! Runnable examples of the tower resilience family, and the scaffolding they share.
//!
//! Run the main demo with `cargo run --release -p examples --bin reliability-report`: an agent
//! gateway and its two upstreams on 127.0.0.1, driven through a suite of chaos experiments
//! without and then with the family's protection stack; it writes a Reliability Engineering
//! Report and a timeline chart from the figures of that run. Its core is [`reliability`], so
//! `tests/` can run a short suite and check the report.
//!
//! `breaker_axum` is a flaky upstream and an axum front server whose route is protected by a
//! circuit breaker. The breaker and the axum wiring are in the example file; the upstream, the
//! scenario and the table it prints are here, in [`breaker_demo`], so `tests/` can run the same
//! scenario with paused time and check every step.
//!
//! `chaos-proxy` puts tower-chaos in front of any HTTP/1.1 upstream, with an admin route that
//! switches faults live: [`chaos_proxy`].
//!
//! tower-heal: `heal_degradation_axum` (an axum handler whose dependencies sit behind
//! fallbacks, answering with a degradation report in its JSON body: [`heal_incident`]) and
//! `heal_checkpoint_agent` (a three-step agent workflow checkpointed in SQLite, killed in step 3
//! and resumed: `heal_agent`, with the `sqlite` feature).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod breaker_demo;
pub mod chaos_proxy;
#[cfg(feature = "sqlite")]
pub mod heal_agent;
pub mod heal_incident;
pub mod reliability;

// The README's example must keep compiling: it is checked as a doctest here.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

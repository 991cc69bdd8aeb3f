//! Runnable examples of the tower resilience family, and the scaffolding they share.
//!
//! Run the main demo with `cargo run -p examples --example breaker_axum`: a flaky upstream and
//! an axum front server whose route is protected by a circuit breaker, all on 127.0.0.1. The
//! breaker and the axum wiring are in the example file; the upstream, the scenario and the
//! table it prints are here, in [`breaker_demo`], so `tests/` can run the same scenario with
//! paused time and check every step.
//!
//! tower-heal: `heal_degradation_axum` (an axum handler whose dependencies sit behind
//! fallbacks, answering with a degradation report in its JSON body: [`heal_incident`]) and
//! `heal_checkpoint_agent` (a three-step agent workflow checkpointed in SQLite, killed in step 3
//! and resumed: [`heal_agent`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod breaker_demo;
pub mod heal_agent;
pub mod heal_incident;
pub mod reliability;

// The README's example must keep compiling: it is checked as a doctest here.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

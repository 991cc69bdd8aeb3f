//! Property tests: the bulkhead against a reference model over random sequences of calls,
//! answers, cancellations (of calls in flight and of waiters) and clock moves.
//!
//! The model: a call is admitted at once when fewer than `max_concurrent` are in flight, no
//! call waits before it, and (with a token budget) its cost fits in the tokens left; otherwise
//! it waits in FIFO order if `max_wait` is not zero and fewer than `max_waiters` wait, and is
//! rejected if not. A call ending (answered or dropped) frees its permit and tokens, and a
//! freed permit goes to the waiter at the head of the queue, whatever order the waiting
//! futures are polled in. A waiter gives up after `max_wait`. Checked after every step: which
//! calls reached the inner service, which were rejected, `in_flight`, `waiters` and
//! `tokens_in_use`; at the end, after every call is dropped, the compartment is back to full
//! capacity.

use std::collections::{BTreeMap, VecDeque};
use std::task::Poll;
use std::time::Duration;

use proptest::prelude::*;
use tokio_test::task::Spawn;
use tower_bulkhead::BulkheadLayer;
use tower_test::mock;

#[derive(Debug, Clone)]
enum Op {
    /// A call costing `1..=4` tokens.
    Start(u64),
    /// The inner service answers the `n`-th call in flight (modulo their number).
    Finish(usize),
    /// The `n`-th call in flight is dropped.
    DropInFlight(usize),
    /// The `n`-th waiter is dropped.
    DropWaiter(usize),
    /// Whole seconds pass.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u64..=4).prop_map(Op::Start),
        3 => any::<usize>().prop_map(Op::Finish),
        1 => any::<usize>().prop_map(Op::DropInFlight),
        1 => any::<usize>().prop_map(Op::DropWaiter),
        1 => (1u64..=3).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_concurrent: u32,
    max_waiters: u32,
    /// Whole seconds; the layer waits this plus half a second, so a deadline never falls on
    /// the whole seconds the clock moves by.
    max_wait: Option<u64>,
    token_budget: Option<u64>,
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        (1u32..=4, 1u32..=4, 0u64..=4).prop_map(|(c, w, d)| Limits {
            max_concurrent: c,
            max_waiters: w,
            max_wait: Some(d),
            token_budget: None,
        }),
        (1u32..=6, 1u64..=10).prop_map(|(c, b)| Limits {
            max_concurrent: c,
            max_waiters: 1,
            max_wait: None,
            token_budget: Some(b),
        }),
    ]
}

type Fut = Spawn<
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, tower_bulkhead::BoxError>>>>,
>;

struct Call {
    id: u64,
    cost: u64,
    fut: Fut,
}

#[derive(Default)]
struct Model {
    in_flight: Vec<u64>,
    tokens: u64,
    /// `(id, cost, deadline in half seconds)`.
    queue: VecDeque<(u64, u64, u64)>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

async fn check(limits: Limits, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut builder = BulkheadLayer::builder()
        .max_concurrent(limits.max_concurrent)
        .max_waiters(limits.max_waiters)
        .cost(|request: &u64| request % 10);
    builder = match limits.max_wait {
        Some(d) => builder.max_wait(Duration::from_millis(d * 1000 + 500)),
        None => builder.max_wait(Duration::ZERO),
    };
    if let Some(b) = limits.token_budget {
        builder = builder.token_budget(b);
    }
    let layer = builder.build().unwrap();
    let handle = layer.handle();
    let (mut svc, mut inner) = mock::spawn_layer::<u64, u64, _>(layer);
    let mut model = Model::default();
    let mut calls: Vec<Call> = Vec::new();
    let mut answers = BTreeMap::new();
    let mut now_half_secs = 0u64;
    let mut next_id = 1u64;
    let waiting = limits.max_wait.is_some();

    for (step, op) in ops.into_iter().enumerate() {
        let mut rejected_now = Vec::new();
        match op {
            Op::Start(cost) => {
                let id = next_id;
                next_id += 1;
                tokio_test::assert_ready_ok!(svc.poll_ready());
                let fut = tokio_test::task::spawn(Box::pin(svc.call(id * 10 + cost)) as _);
                calls.push(Call { id, cost, fut });
                let fits = model.in_flight.len() < limits.max_concurrent as usize
                    && limits.token_budget.is_none_or(|b| model.tokens + cost <= b);
                if fits && model.queue.is_empty() {
                    model.in_flight.push(id);
                    model.tokens += cost;
                } else if waiting && model.queue.len() < limits.max_waiters as usize {
                    let deadline = now_half_secs + limits.max_wait.unwrap() * 2 + 1;
                    model.queue.push_back((id, cost, deadline));
                } else {
                    rejected_now.push(id);
                }
            }
            Op::Finish(n) | Op::DropInFlight(n) if !model.in_flight.is_empty() => {
                let id = model.in_flight.remove(n % model.in_flight.len());
                let index = calls.iter().position(|c| c.id == id).unwrap();
                let call = calls.remove(index);
                model.tokens -= call.cost;
                if matches!(op, Op::Finish(_)) {
                    let send: mock::SendResponse<u64> = answers.remove(&id).expect("reached");
                    send.send_response(id);
                    let mut fut = call.fut;
                    let answer = fut.poll();
                    prop_assert!(
                        matches!(answer, Poll::Ready(Ok(v)) if v == id),
                        "step {}: answer",
                        step
                    );
                } else {
                    answers.remove(&id);
                    drop(call.fut);
                }
            }
            Op::DropWaiter(n) if !model.queue.is_empty() => {
                let (id, _, _) = model.queue.remove(n % model.queue.len()).unwrap();
                let index = calls.iter().position(|c| c.id == id).unwrap();
                drop(calls.remove(index));
            }
            Op::Advance(secs) => {
                tokio::time::advance(Duration::from_secs(secs)).await;
                now_half_secs += secs * 2;
                model.queue.retain(|&(id, _, deadline)| {
                    let alive = deadline > now_half_secs;
                    if !alive {
                        rejected_now.push(id);
                    }
                    alive
                });
            }
            _ => {}
        }
        // Permits freed go to the head of the queue.
        while let Some(&(id, cost, _)) = model.queue.front() {
            let fits = model.in_flight.len() < limits.max_concurrent as usize
                && limits.token_budget.is_none_or(|b| model.tokens + cost <= b);
            if !fits {
                break;
            }
            model.queue.pop_front();
            model.in_flight.push(id);
            model.tokens += cost;
        }

        // Poll every pending call, the latest first, so polling order cannot stand in for FIFO.
        let mut finished = Vec::new();
        for call in calls.iter_mut().rev() {
            if let Poll::Ready(result) = call.fut.poll() {
                prop_assert!(
                    result.is_err(),
                    "step {}: call {} answered unasked",
                    step,
                    call.id
                );
                finished.push(call.id);
            }
        }
        calls.retain(|c| !finished.contains(&c.id));
        finished.sort_unstable();
        rejected_now.sort_unstable();
        prop_assert_eq!(&finished, &rejected_now, "step {}: rejected", step);
        while let Poll::Ready(Some((request, send))) = inner.poll_request() {
            answers.insert(request / 10, send);
        }
        let mut reached: Vec<u64> = answers.keys().copied().collect();
        let mut expected = model.in_flight.clone();
        reached.sort_unstable();
        expected.sort_unstable();
        prop_assert_eq!(
            reached,
            expected,
            "step {}: calls that reached the inner service",
            step
        );
        prop_assert_eq!(
            handle.in_flight() as usize,
            model.in_flight.len(),
            "step {}: in_flight",
            step
        );
        prop_assert_eq!(
            handle.waiters() as usize,
            model.queue.len(),
            "step {}: waiters",
            step
        );
        if limits.token_budget.is_some() {
            prop_assert_eq!(
                handle.tokens_in_use(),
                Some(model.tokens),
                "step {}: tokens",
                step
            );
        }
    }

    // Everything dropped: full capacity again.
    drop(calls);
    drop(answers);
    prop_assert_eq!(handle.in_flight(), 0);
    prop_assert_eq!(handle.waiters(), 0);
    if limits.token_budget.is_some() {
        prop_assert_eq!(handle.tokens_in_use(), Some(0));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn bulkhead_matches_the_reference_model(
        limits in limits(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        runtime().block_on(check(limits, ops))?;
    }
}

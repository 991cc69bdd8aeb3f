//! Fleet budgets through a real Redis (the `redis` feature): three budget instances with their
//! own connections play three replicas.
#![cfg(feature = "redis")]

use test_support::redis_server as server;

use std::sync::Arc;
use std::time::Duration;

use tower_bulkhead::fleet::{BudgetStore, FailureMode, RedisBudget};

/// Takes one token until granted, for at most 2 s (a reconnect, then a probe, once per
/// `probe_interval`).
async fn take_until_granted(budget: &RedisBudget) -> tower_bulkhead::fleet::Grant {
    let started = std::time::Instant::now();
    loop {
        let grant = budget.take(1).await;
        if grant.allowed || started.elapsed() > Duration::from_secs(2) {
            return grant;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `burst` tokens, refilled at one token a minute (nothing refills during a test).
async fn budget(url: &str, name: &str, burst: u64, failure: FailureMode) -> RedisBudget {
    RedisBudget::builder(name)
        .prefix("test:")
        .refill(60, Duration::from_secs(3600))
        .burst(burst)
        .capacity(5)
        .lease_time(Duration::from_millis(300))
        .timeout(Duration::from_millis(50))
        .probe_interval(Duration::from_millis(100))
        .failure(failure)
        .connect(url)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_rate_budget_and_never_over_admit() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let burst = 60;
    let mut tasks = Vec::new();
    for replica in 0..3_u64 {
        let budget = Arc::new(budget(&server.url(), "llm", burst, FailureMode::FailClosed).await);
        for call in 0..30_u64 {
            let budget = Arc::clone(&budget);
            let cost = 1 + (replica + call) % 3;
            tasks.push(tokio::spawn(async move { (cost, budget.take(cost).await) }));
        }
    }
    let mut admitted = 0;
    for task in tasks {
        let (cost, grant) = task.await.unwrap();
        if grant.allowed {
            admitted += cost;
        } else {
            assert!(grant.retry_after > Duration::ZERO);
            // At one token a minute, at most `cost` minutes (plus rounding).
            assert!(grant.retry_after <= Duration::from_secs(60 * cost + 1));
        }
    }
    // Demand (180 tokens) is three times the budget: the fleet fills it and never more.
    assert!(admitted <= burst, "over-admitted: {admitted}");
    assert!(admitted > burst - 3, "under-admitted: {admitted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_layered_replicas_share_one_budget_and_reject_with_retry_after() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tower::{BoxError, ServiceExt, service_fn};
    use tower_bulkhead::fleet::FleetBudgetLayer;
    use tower_bulkhead::{Reason, find_rejected};
    use tower_layer::Layer;

    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let spent = Arc::new(AtomicU64::new(0));
    let mut calls = Vec::new();
    for _ in 0..3 {
        let budget = Arc::new(budget(&server.url(), "layered", 20, FailureMode::FailClosed).await);
        let layer = FleetBudgetLayer::new("layered", budget, |cost: &u64| *cost);
        let spent = Arc::clone(&spent);
        let svc = layer.layer(service_fn(move |cost: u64| {
            spent.fetch_add(cost, Ordering::SeqCst);
            async move { Ok::<_, BoxError>(cost) }
        }));
        for cost in [1, 2, 3, 1, 2, 3] {
            calls.push(tokio::spawn(svc.clone().oneshot(cost)));
        }
    }
    let mut rejected = 0;
    for call in calls {
        if let Err(err) = call.await.unwrap() {
            let refusal = find_rejected(&*err).expect("the family's rejection");
            assert_eq!(refusal.reason(), Reason::BudgetExhausted);
            assert!(refusal.retry_after().is_some_and(|d| d > Duration::ZERO));
            rejected += 1;
        }
    }
    let spent = spent.load(Ordering::SeqCst);
    assert!(spent <= 20, "the inner services together spent {spent}");
    assert!(
        spent > 17 && rejected > 0,
        "spent {spent}, rejected {rejected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_refunds_below_the_estimate_and_charges_debt_above_it() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let a = budget(&server.url(), "llm", 60, FailureMode::FailClosed).await;
    let b = budget(&server.url(), "llm", 60, FailureMode::FailClosed).await;
    assert_eq!(a.take(30).await.remaining, 30);
    a.settle(30, 10).await;
    assert_eq!(b.take(1).await.remaining, 49, "20 refunded, seen by b");
    a.settle(1, 60).await;
    let refused = b.take(1).await;
    assert!(!refused.allowed, "59 tokens of debt");
    assert!(refused.retry_after > Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_leases_come_back_after_the_lease_time() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let a = budget(&server.url(), "db", 60, FailureMode::FailClosed).await;
    let b = budget(&server.url(), "db", 60, FailureMode::FailClosed).await;
    for id in 0..5 {
        assert!(a.lease(id, 1).await.allowed);
    }
    // Replica a dies holding all 5: b is refused until the leases expire.
    drop(a);
    let started = std::time::Instant::now();
    let refused = b.lease(100, 1).await;
    assert!(!refused.allowed);
    assert!(refused.retry_after <= Duration::from_millis(300));
    let mut granted = false;
    while started.elapsed() < Duration::from_secs(2) {
        if b.lease(100, 1).await.allowed {
            granted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(granted, "the dead replica's share came back");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // Released leases come back at once; renewal keeps a lease past its time.
    for id in 101..105 {
        assert!(b.lease(id, 1).await.allowed);
    }
    assert!(!b.lease(105, 1).await.allowed);
    b.release(101, 1).await;
    assert!(b.lease(105, 1).await.allowed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(b.renew(105, 1).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 100, 102..104 expired; 105 was renewed.
    assert!(b.lease(106, 4).await.allowed);
    assert!(
        !b.lease(107, 1).await.allowed,
        "the renewed lease still counts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_switches_to_the_failure_mode_and_back() {
    let Some(mut server) = server::RedisServer::start() else {
        return;
    };
    let url = server.url();
    let closed = budget(&url, "llm", 60, FailureMode::FailClosed).await;
    let open = budget(&url, "llm", 60, FailureMode::FailOpen).await;
    let local = budget(&url, "llm", 60, FailureMode::LocalFallback { replicas: 3 }).await;
    assert!(closed.take(1).await.allowed);
    server.kill();

    let started = std::time::Instant::now();
    let refused = closed.take(1).await;
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Duration::from_millis(100));
    assert!(closed.is_degraded());
    assert!(open.take(1000).await.allowed, "fail open admits");
    // Local fallback: 60 / 3 replicas = 20 tokens here.
    let mut admitted = 0;
    for _ in 0..30 {
        if local.take(1).await.allowed {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 20);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the timeout"
    );

    server.restart();
    let grant = take_until_granted(&closed).await;
    assert!(grant.allowed, "shared again");
    assert!(!closed.is_degraded());
    assert_eq!(grant.remaining, 59, "a fresh Redis: the full burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_to_the_failure_mode_and_back_shows_in_the_degraded_gauge() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let Some(mut server) = server::RedisServer::start() else {
        return;
    };
    // The only test of this binary that installs a recorder.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();
    let gauge = || {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find(|(k, ..)| {
                k.key().name() == tower_bulkhead::fleet::FLEET_DEGRADED
                    && k.key().labels().any(|l| l.value() == "gauged")
            })
            .map(|(.., v)| match v {
                DebugValue::Gauge(g) => g.into_inner(),
                _ => -1.0,
            })
    };
    let budget = budget(&server.url(), "gauged", 60, FailureMode::FailClosed).await;
    assert!(budget.take(1).await.allowed);
    server.kill();
    assert!(!budget.take(1).await.allowed);
    assert_eq!(gauge(), Some(1.0));
    server.restart();
    assert!(take_until_granted(&budget).await.allowed);
    assert_eq!(gauge(), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_made_while_redis_stalls_is_applied_when_it_answers_again() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let a = budget(&server.url(), "llm", 60, FailureMode::FailClosed).await;
    assert_eq!(a.take(30).await.remaining, 30);
    // Stall Redis for longer than the budget's timeout.
    let client = redis::Client::open(server.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(300)
        .arg("ALL")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    a.settle(30, 10).await;
    assert!(a.is_degraded());
    tokio::time::sleep(Duration::from_millis(450)).await;
    let grant = a.take(1).await;
    assert!(grant.allowed);
    assert_eq!(
        grant.remaining, 49,
        "the 20 refunded during the stall were applied"
    );
}

/// The body of a child replica of `three_child_processes_share_one_budget_exactly`: it runs
/// only with `FLEET_CHILD_URL` set (by that test), and prints what it was granted.
#[tokio::test]
async fn child_replica() {
    let Ok(url) = std::env::var("FLEET_CHILD_URL") else {
        return;
    };
    let budget = budget(&url, "children", 30, FailureMode::FailClosed).await;
    let mut admitted = 0;
    for _ in 0..20 {
        if budget.take(1).await.allowed {
            admitted += 1;
        }
    }
    println!("admitted={admitted}");
}

#[test]
fn three_child_processes_share_one_budget_exactly() {
    use std::process::{Command, Stdio};
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_replica",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("FLEET_CHILD_URL", server.url())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Bounded: each child is done within 10 s or is killed (and the test fails).
    let started = std::time::Instant::now();
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        if started.elapsed() > Duration::from_secs(10) {
            for child in &mut children {
                let _ = child.kill();
            }
            panic!("a child replica did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut admitted = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text
            .split_once("admitted=")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .expect("the child's count");
        admitted += line.parse::<u64>().unwrap();
    }
    // Three processes asking 60 tokens of a 30-token budget get exactly 30.
    assert_eq!(admitted, 30);
}

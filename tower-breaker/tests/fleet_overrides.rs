//! Operator overrides across replicas through a real Redis (the `redis` feature): three
//! layer instances with their own connections play three replicas.
#![cfg(feature = "redis")]

use test_support::redis_server as server;

use std::time::Duration;

use tower_breaker::fleet::{FleetOverrides, Override};
use tower_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, State};

fn breaker(name: &str) -> CircuitBreakerHandle {
    CircuitBreakerLayer::builder()
        .name(name)
        .build()
        .unwrap()
        .handle()
}

async fn overrides(url: &str, poll: Duration) -> FleetOverrides {
    FleetOverrides::builder(url, "test")
        .poll_interval(poll)
        .connect()
        .await
        .unwrap()
}

/// Waits up to 2 s for every handle to read `state`.
async fn all_reach(handles: &[CircuitBreakerHandle], state: State) -> bool {
    for _ in 0..200 {
        if handles.iter().all(|h| h.state() == state) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_force_open_on_one_replica_reaches_the_others_and_a_reset_undoes_it() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    // A long poll: only pub/sub can deliver within the bounded wait.
    let poll = Duration::from_secs(60);
    let mut handles = Vec::new();
    let mut fleets = Vec::new();
    let mut watches = Vec::new();
    for _ in 0..3 {
        let fleet = overrides(&server.url(), poll).await;
        let handle = breaker("payments");
        watches.push(fleet.watch(handle.clone()));
        handles.push(handle);
        fleets.push(fleet);
    }
    let other = breaker("search");
    watches.push(fleets[2].watch(other.clone()));
    // Let the watchers subscribe (bounded).
    tokio::time::sleep(Duration::from_millis(200)).await;

    fleets[0].force_open("payments").await.unwrap();
    assert!(all_reach(&handles, State::ForcedOpen).await);
    assert_eq!(other.state(), State::Closed, "another name is untouched");

    fleets[1].disable("payments").await.unwrap();
    assert!(all_reach(&handles, State::Disabled).await);
    fleets[2].reset("payments").await.unwrap();
    assert!(all_reach(&handles, State::Closed).await);
}

#[tokio::test]
async fn a_replica_started_later_applies_the_current_override_and_polling_recovers_a_lost_message()
{
    let Some(mut server) = server::RedisServer::start() else {
        return;
    };
    let fleet = overrides(&server.url(), Duration::from_millis(50)).await;
    fleet.set("payments", Override::ForceOpen).await.unwrap();
    let late = breaker("payments");
    let _watch = fleet.watch(late.clone());
    assert!(all_reach(std::slice::from_ref(&late), State::ForcedOpen).await);

    // Redis restarts empty: the subscription is lost; a new override set afterwards reaches
    // the watcher by its resubscription or its polling.
    server.restart();
    let fresh = overrides(&server.url(), Duration::from_millis(50)).await;
    fresh.disable("payments").await.unwrap();
    assert!(all_reach(std::slice::from_ref(&late), State::Disabled).await);
}

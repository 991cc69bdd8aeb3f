//! The incident-details handler reports what degraded, in its JSON body, over a real socket
//! on 127.0.0.1.

use std::sync::atomic::Ordering;

use examples::heal_incident::{Health, serve};
use serde_json::{Value, json};

async fn incident(addr: std::net::SocketAddr) -> Value {
    let reply = reqwest::get(format!("http://{addr}/incidents/42"))
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    serde_json::from_str(&reply.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn the_report_says_full_then_what_degraded_and_how_far() {
    let health = Health::default();
    let addr = serve(&health).await.unwrap();

    let body = incident(addr).await;
    assert_eq!(body["status"], "full");
    assert_eq!(body["level"], 0);
    assert_eq!(body["degraded_components"], json!([]));
    assert_eq!(body["metrics"]["source"], "metrics");

    health.metrics.store(false, Ordering::Relaxed);
    let body = incident(addr).await;
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["degraded_components"], json!(["metrics"]));
    assert_eq!(body["level"], 1, "metrics from the last good answer");
    assert_eq!(body["metrics"]["incident"], "42");

    health.logs.store(false, Ordering::Relaxed);
    let body = incident(addr).await;
    assert_eq!(body["degraded_components"], json!(["metrics", "logs"]));
    assert_eq!(body["level"], 3, "logs as a static notice");
    assert_eq!(body["logs"]["notice"], "logs are unavailable right now");

    health.alerts.store(false, Ordering::Relaxed);
    let body = incident(addr).await;
    assert_eq!(
        body["degraded_components"],
        json!(["metrics", "logs", "alerts"])
    );
    assert_eq!(body["level"], 4, "alerts have no fallback");
    assert_eq!(body["alerts"]["error"], "unavailable");
}

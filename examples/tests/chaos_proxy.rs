//! The chaos proxy over 127.0.0.1: it forwards any request to its upstream while disarmed,
//! injects the faults of its file once armed through the admin route, changes a fault's rate
//! live, disarms everything at once, and answers no admin request without the token.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::any;
use examples::chaos_proxy::{ProxyConfig, start};
use tower_chaos::ChaosConfig;

const TOKEN: &str = "s3cret-token";

async fn echo(
    State(hits): State<Arc<AtomicUsize>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> String {
    hits.fetch_add(1, Ordering::SeqCst);
    let marker = headers
        .get("x-marker")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let hop = if headers.contains_key("x-hop") {
        " x-hop"
    } else {
        ""
    };
    format!("{method} {uri} {marker} {body}{hop}")
}

async fn upstream() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(any(echo)).with_state(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr.to_string(), hits)
}

async fn proxy(upstream: String, faults: &str) -> examples::chaos_proxy::Proxy {
    start(ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream,
        admin: "127.0.0.1:0".parse().unwrap(),
        token: TOKEN.to_owned(),
        chaos: ChaosConfig::from_json(faults).unwrap(),
    })
    .await
    .unwrap()
}

const FAULTS: &str = r#"{"name": "proxy-chaos", "seed": 3, "guard": {"enabled": false},
    "faults": [{"name": "unavailable", "rate": 1.0, "http_status": 503, "retry_after_seconds": 2}]}"#;

#[tokio::test]
async fn the_proxy_forwards_injects_once_armed_and_disarms_on_the_admin_route() {
    let (upstream, hits) = upstream().await;
    let proxy = proxy(upstream, FAULTS).await;
    assert!(proxy.admin_addr.ip().is_loopback());
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/things?page=2", proxy.addr);
    let admin = |path: &str| format!("http://{}{path}", proxy.admin_addr);

    // Disarmed: method, path, query, headers and body reach the upstream.
    let answer = client
        .post(&url)
        .header("x-marker", "m1")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.text().await.unwrap(),
        "POST /v1/things?page=2 m1 payload"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // No token, or the wrong one: refused, and nothing changes.
    let refused = client.post(admin("/chaos/arm")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let refused = client
        .post(admin("/chaos/arm"))
        .bearer_auth("wrong-token!")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let refused = client
        .get(admin("/chaos"))
        .bearer_auth("s3cret-toke")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(!proxy.chaos.is_armed());

    // Armed: the file's fault answers 503 with Retry-After, without reaching the upstream.
    let armed = client
        .post(admin("/chaos/arm"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(armed.status(), 200);
    let state: serde_json::Value = serde_json::from_str(&armed.text().await.unwrap()).unwrap();
    assert_eq!(state["armed"], true);
    let answer = client.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "2");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A rate set live: 0 lets calls through while armed.
    let set = client
        .put(admin("/chaos/faults/unavailable/rate"))
        .bearer_auth(TOKEN)
        .body("0")
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Bad input: a rate out of range, a rate that is not a number, an unknown fault.
    for (path, body) in [
        ("/chaos/faults/unavailable/rate", "1.5"),
        ("/chaos/faults/unavailable/rate", "lots"),
        ("/chaos/faults/nope/rate", "0.5"),
    ] {
        let bad = client
            .put(admin(path))
            .bearer_auth(TOKEN)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400, "{path} {body}");
    }

    // Back to 1, then disarm everything at once: calls pass again.
    let set = client
        .put(admin("/chaos/faults/unavailable/rate"))
        .bearer_auth(TOKEN)
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 503);
    let disarmed = client
        .post(admin("/chaos/disarm"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(disarmed.status(), 200);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);

    let state = client
        .get(admin("/chaos"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["armed"], false);
    assert_eq!(state["injected"], 2);
    assert_eq!(state["faults"][0]["name"], "unavailable");
    assert_eq!(state["faults"][0]["rate"], 1.0);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_dead_upstream_is_a_bad_gateway_and_bad_faults_or_tokens_are_refused() {
    // Nothing listens on the upstream's port any more.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap().to_string();
    drop(listener);
    let proxy = proxy(dead, FAULTS).await;
    let answer = reqwest::get(format!("http://{}/", proxy.addr))
        .await
        .unwrap();
    assert_eq!(answer.status(), 502);

    let refused = start(ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: "127.0.0.1:1".to_owned(),
        admin: "127.0.0.1:0".parse().unwrap(),
        token: String::new(),
        chaos: ChaosConfig::default(),
    })
    .await;
    assert!(refused.is_err(), "an empty token is refused");
    assert!(
        ChaosConfig::from_json(r#"{"faults": [{"rate": 2, "abort": true}]}"#)
            .unwrap()
            .http_layer::<axum::body::Body, axum::body::Body>()
            .is_err()
    );
}

#[test]
fn the_shipped_faults_file_builds() {
    let config = ChaosConfig::from_json(include_str!("../faults.json")).unwrap();
    let layer = config
        .http_layer::<axum::body::Body, axum::body::Body>()
        .unwrap();
    let stats = layer.handle().stats();
    assert!(!stats.armed, "the proxy starts disarmed");
    let names: Vec<&str> = stats.faults.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["errors", "slow", "throttled"]);
}

#[tokio::test]
async fn hop_by_hop_headers_stay_on_their_hop() {
    let (upstream, _) = upstream().await;
    let proxy = proxy(upstream, FAULTS).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/", proxy.addr);
    // An ordinary header goes through...
    let passed = client.get(&url).header("x-hop", "1").send().await.unwrap();
    assert_eq!(passed.text().await.unwrap(), "GET / -  x-hop");
    // ...unless `Connection` names it.
    let dropped = client
        .get(&url)
        .header("x-hop", "1")
        .header("connection", "keep-alive, x-hop")
        .send()
        .await
        .unwrap();
    assert_eq!(dropped.text().await.unwrap(), "GET / - ");
}

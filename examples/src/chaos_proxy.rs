//! The core of the `chaos-proxy` binary: tower-chaos in front of any HTTP/1.1 upstream, with
//! an admin route that switches faults live.
//!
//! ```text
//! cargo run -p examples --bin chaos-proxy -- --listen 127.0.0.1:9000 --upstream 127.0.0.1:8080 --faults faults.json
//! ```
//!
//! Every request to `listen` goes through a [`ChaosLayer`](tower_chaos::ChaosLayer) built from
//! the faults file (a [`ChaosConfig`]: `name`, `seed`, `armed`, `faults`, `profiles`, `guard`),
//! then to the upstream over reqwest. The layer starts disarmed unless the file says `armed`.
//!
//! The admin server (on 127.0.0.1 unless told otherwise) answers only requests that carry
//! `Authorization: Bearer <token>`:
//!
//! | route | does |
//! |---|---|
//! | `GET /chaos` | the layer's state and counters, as JSON (`armed`, `dry_run`, `guard_tripped`, `calls`, `injected`, `faults` with `name`, `kind`, `rate`, `injected`) |
//! | `POST /chaos/arm` | arms the layer |
//! | `POST /chaos/disarm` | disarms it: nothing is injected any more, whatever the rates |
//! | `PUT /chaos/faults/{name}/rate` | sets a fault's rate from the body (`0.25`) |

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_chaos::{BoxError, ChaosConfig, ChaosHandle};

/// The largest request or response body the proxy forwards.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// What the proxy needs to start.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where it listens for traffic.
    pub listen: SocketAddr,
    /// The upstream, `host:port`.
    pub upstream: String,
    /// Where the admin route listens (127.0.0.1 by default).
    pub admin: SocketAddr,
    /// The admin token (`Authorization: Bearer …`); never empty.
    pub token: String,
    /// The faults.
    pub chaos: ChaosConfig,
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Where it listens for traffic.
    pub addr: SocketAddr,
    /// Where the admin route listens.
    pub admin_addr: SocketAddr,
    /// The chaos layer's handle.
    pub chaos: ChaosHandle,
}

type Stack = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>;

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    // The headers `Connection` names are hop-by-hop too.
    let listed: Vec<HeaderName> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for (name, value) in from {
        if !HOP_BY_HOP.contains(name)
            && !listed.contains(name)
            && name != header::HOST
            && name != header::CONTENT_LENGTH
        {
            to.append(name.clone(), value.clone());
        }
    }
}

type Transport = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, std::io::Error>;

/// The transport: the request, whole, to the upstream over reqwest; its answer, whole, back.
/// Its errors are `io::Error`s (the chaos layer's HTTP answer mode passes a concrete error on).
fn transport(upstream: String) -> Result<Transport, BoxError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok(BoxCloneSyncService::new(tower::service_fn(
        move |request: http::Request<Body>| {
            let client = client.clone();
            let upstream = upstream.clone();
            async move {
                forward_once(&client, &upstream, request)
                    .await
                    .map_err(std::io::Error::other)
            }
        },
    )))
}

async fn forward_once(
    client: &reqwest::Client,
    upstream: &str,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, BoxError> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    let answer = client
        .request(parts.method, format!("http://{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await?;
    let mut response = http::Response::builder().status(answer.status());
    if let Some(headers) = response.headers_mut() {
        copy_headers(answer.headers(), headers);
    }
    let body = answer.bytes().await?;
    Ok(response.body(Body::from(body))?)
}

async fn forward(State(stack): State<Stack>, request: http::Request<Body>) -> Response {
    match stack.oneshot(request).await {
        Ok(answer) => answer.into_response(),
        Err(error) => (StatusCode::BAD_GATEWAY, format!("chaos-proxy: {error}")).into_response(),
    }
}

#[derive(Clone)]
struct Admin {
    chaos: ChaosHandle,
    token: String,
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorised(admin: &Admin, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.as_bytes(), admin.token.as_bytes()))
}

fn status_json(chaos: &ChaosHandle) -> serde_json::Value {
    let stats = chaos.stats();
    serde_json::json!({
        "name": chaos.name(),
        "armed": stats.armed,
        "dry_run": stats.dry_run,
        "guard_tripped": stats.guard_tripped,
        "calls": stats.calls,
        "injected": stats.injected(),
        "faults": stats.faults.iter().map(|f| serde_json::json!({
            "name": f.name,
            "kind": f.kind.as_str(),
            "rate": f.rate,
            "injected": f.injected,
        })).collect::<Vec<_>>(),
    })
}

fn answer(
    admin: &Admin,
    headers: &HeaderMap,
    act: impl FnOnce(&ChaosHandle) -> Result<(), String>,
) -> Response {
    if !authorised(admin, headers) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response();
    }
    match act(&admin.chaos) {
        Ok(()) => (
            [(header::CONTENT_TYPE, "application/json")],
            status_json(&admin.chaos).to_string(),
        )
            .into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, error).into_response(),
    }
}

async fn show(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    answer(&admin, &headers, |_| Ok(()))
}

async fn arm(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    answer(&admin, &headers, |chaos| {
        chaos.arm();
        Ok(())
    })
}

async fn disarm(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    answer(&admin, &headers, |chaos| {
        chaos.disarm();
        Ok(())
    })
}

async fn set_rate(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&admin, &headers, |chaos| {
        let rate: f64 = std::str::from_utf8(&body)
            .ok()
            .and_then(|b| b.trim().parse().ok())
            .ok_or_else(|| "the body must be a rate, such as 0.25".to_owned())?;
        chaos.set_rate(&name, rate).map_err(|e| e.to_string())
    })
}

/// Starts the proxy and its admin server.
///
/// # Errors
/// An empty token, a faults configuration the layer refuses, or an address it cannot bind.
pub async fn start(config: ProxyConfig) -> Result<Proxy, BoxError> {
    if config.token.is_empty() {
        return Err("the admin token must not be empty".into());
    }
    let layer = config.chaos.http_layer::<Body, Body>()?;
    let chaos = layer.handle();
    let stack: Stack = BoxCloneSyncService::new(
        tower::ServiceBuilder::new()
            .map_err(BoxError::from)
            .layer(layer)
            .service(transport(config.upstream)?),
    );

    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(any(forward)).with_state(stack);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let admin = Admin {
        chaos: chaos.clone(),
        token: config.token,
    };
    let listener = tokio::net::TcpListener::bind(config.admin).await?;
    let admin_addr = listener.local_addr()?;
    let app = Router::new()
        .route("/chaos", get(show))
        .route("/chaos/arm", post(arm))
        .route("/chaos/disarm", post(disarm))
        .route("/chaos/faults/{name}/rate", put(set_rate))
        .with_state(admin);
    tokio::spawn(async move { axum::serve(listener, app).await });

    Ok(Proxy {
        addr,
        admin_addr,
        chaos,
    })
}

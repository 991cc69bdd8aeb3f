//! The course's incident-details example, graceful: an axum handler calls three dependencies
//! (metrics, logs, alerts), each behind fallbacks, and answers with what it could get plus a
//! degradation report in the JSON body: `"status": "full"`, or `"degraded"` with the
//! `degraded_components` and the worst `level`.
//!
//! - metrics: live → the last good answer per incident ([`LastGood`], level 1);
//! - logs: live → a static "logs unavailable" notice (level 3);
//! - alerts: live only (a failure is level 4, reported as such).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_heal::{BoxError, DegradationLevel, DegradationReport, FallbackLayer, LastGood, Marked};

type Dependency = BoxCloneSyncService<String, Marked<Value>, BoxError>;

/// Switches for the three dependencies, to take them down and bring them back.
#[derive(Clone, Debug)]
pub struct Health {
    /// The metrics service answers.
    pub metrics: Arc<AtomicBool>,
    /// The logs service answers.
    pub logs: Arc<AtomicBool>,
    /// The alerts service answers.
    pub alerts: Arc<AtomicBool>,
}

impl Default for Health {
    fn default() -> Self {
        let up = || Arc::new(AtomicBool::new(true));
        Self {
            metrics: up(),
            logs: up(),
            alerts: up(),
        }
    }
}

/// A dependency that answers `{"<name>": ..., "incident": id}` while `up`, else fails.
fn live(
    name: &'static str,
    up: Arc<AtomicBool>,
) -> impl tower::Service<String, Response = Marked<Value>, Error = BoxError, Future: Send>
+ Clone
+ Send
+ Sync {
    service_fn(move |id: String| {
        let up = up.load(Ordering::Relaxed);
        async move {
            if up {
                Ok(Marked::new(json!({ "source": name, "incident": id })))
            } else {
                Err(BoxError::from(format!("{name} service unavailable")))
            }
        }
    })
}

#[derive(Clone)]
struct Deps {
    metrics: Dependency,
    logs: Dependency,
    alerts: Dependency,
}

/// The router: `GET /incidents/{id}`.
pub fn app(health: &Health) -> Router {
    let cache = LastGood::new(1000, |id: &String| id.clone());
    let metrics = ServiceBuilder::new()
        .layer(FallbackLayer::new(
            "metrics",
            DegradationLevel::Slight,
            cache.clone(),
        ))
        .layer(cache.record())
        .service(live("metrics", health.metrics.clone()));
    let logs_static = service_fn(|_id: String| async {
        Ok::<_, BoxError>(Marked::new(
            json!({ "notice": "logs are unavailable right now" }),
        ))
    });
    let logs = ServiceBuilder::new()
        .layer(FallbackLayer::new(
            "logs",
            DegradationLevel::Minimal,
            logs_static,
        ))
        .service(live("logs", health.logs.clone()));
    let deps = Deps {
        metrics: BoxCloneSyncService::new(metrics),
        logs: BoxCloneSyncService::new(logs),
        alerts: BoxCloneSyncService::new(live("alerts", health.alerts.clone())),
    };
    Router::new()
        .route("/incidents/{id}", get(incident))
        .with_state(deps)
}

async fn incident(State(deps): State<Deps>, Path(id): Path<String>) -> impl IntoResponse {
    let mut report = DegradationReport::new();
    let mut body = serde_json::Map::new();
    for (name, dependency) in [
        ("metrics", deps.metrics),
        ("logs", deps.logs),
        ("alerts", deps.alerts),
    ] {
        let result = dependency.oneshot(id.clone()).await;
        report.observe_result(name, &result);
        let value =
            result.map_or_else(|_| json!({ "error": "unavailable" }), |answer| answer.value);
        body.insert(name.to_owned(), value);
    }
    let mut answer = serde_json::to_value(&report).unwrap_or_default();
    if let Value::Object(fields) = &mut answer {
        fields.extend(body);
    }
    ([(CONTENT_TYPE, "application/json")], answer.to_string())
}

/// Serves [`app`] on 127.0.0.1 (port 0: any free one) and returns the address.
///
/// # Errors
/// If it cannot bind.
pub async fn serve(health: &Health) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = app(health);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

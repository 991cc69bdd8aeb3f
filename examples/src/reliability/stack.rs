//! The client stacks in front of each upstream: bare (chaos → transport) or with the whole
//! family, outermost first: fallback → retry → breaker → bulkhead → timeout → chaos →
//! transport.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_breaker::{
    CircuitBreakerConfig, CircuitBreakerHandle, CircuitBreakerLayer, HttpStatus, LayerKind, State,
    WindowConfig,
};
use tower_bulkhead::{BulkheadConfig, BulkheadHandle, BulkheadLayer, KeyedBulkheadHandle};
use tower_chaos::{ChaosHandle, ChaosLayer, Fault};
use tower_heal::{BoxError, DegradationLevel, FallbackLayer, LastGood, RetryConfig, RetryLayer};

use super::TENANT;

/// A request to an upstream.
pub(crate) type Req = http::Request<String>;
/// Its answer, whole.
pub(crate) type Res = http::Response<String>;
/// A client stack, boxed.
pub(crate) type Svc = BoxCloneSyncService<Req, Res, BoxError>;

tokio::task_local! {
    /// The attempts of the gateway request being served (the retry's polls run in its task).
    pub(crate) static ATTEMPTS: Arc<Attempts>;
}

/// Attempts one gateway request made, across both upstreams.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    pub(crate) total: AtomicU32,
    pub(crate) failed: AtomicU32,
}

/// What the layers did, counted from their hooks and their errors.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) retries: AtomicU64,
    pub(crate) breaker_trips: AtomicU64,
    pub(crate) breaker_rejections: AtomicU64,
    pub(crate) bulkhead_rejections: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
}

impl Counters {
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The configuration each protected stack is built from (the report prints these values).
#[derive(Debug, Clone)]
pub(crate) struct Configs {
    pub(crate) breaker: CircuitBreakerConfig,
    pub(crate) retry: RetryConfig,
    pub(crate) llm_bulkhead: BulkheadConfig,
    pub(crate) tool_bulkhead: BulkheadConfig,
    pub(crate) llm_timeout: Duration,
    pub(crate) tool_timeout: Duration,
}

impl Configs {
    pub(crate) fn new(seed: u64) -> Self {
        let breaker = CircuitBreakerConfig {
            name: "upstream".to_owned(),
            failure_threshold: None,
            failure_rate_threshold: Some(0.5),
            window: WindowConfig::Count { size: 20 },
            minimum_calls: 5,
            reset_timeout_seconds: 0.4,
            ..CircuitBreakerConfig::default()
        };
        let mut retry = RetryConfig::default();
        retry.name = "upstream".to_owned();
        retry.max_retries = 2;
        retry.initial_delay_ms = 20;
        retry.max_delay_ms = 200;
        retry.max_retry_after_ms = 300;
        retry.seed = Some(seed);
        let llm_bulkhead = BulkheadConfig {
            name: "llm-per-agent".to_owned(),
            max_concurrent: 2,
            retry_after_seconds: 0.1,
            ..BulkheadConfig::default()
        };
        let tool_bulkhead = BulkheadConfig {
            name: "tool".to_owned(),
            max_concurrent: 16,
            retry_after_seconds: 0.1,
            ..BulkheadConfig::default()
        };
        Self {
            breaker,
            retry,
            llm_bulkhead,
            tool_bulkhead,
            llm_timeout: Duration::from_millis(250),
            tool_timeout: Duration::from_millis(100),
        }
    }
}

/// The handles of one protected stack pair, read while the run goes on and for the report.
#[derive(Debug, Clone)]
pub(crate) struct Protection {
    pub(crate) configs: Configs,
    pub(crate) llm_breaker: CircuitBreakerHandle,
    pub(crate) tool_breaker: CircuitBreakerHandle,
    /// Times each breaker opened: LLM API, tool server.
    pub(crate) trips: (Arc<AtomicU64>, Arc<AtomicU64>),
    pub(crate) llm_bulkhead: KeyedBulkheadHandle<String>,
    pub(crate) tool_bulkhead: BulkheadHandle,
}

impl Protection {
    /// The worse of both breakers: 0 closed, 1 half-open, 2 open.
    pub(crate) fn breaker_level(&self) -> (u8, u8) {
        (
            level(self.llm_breaker.state()),
            level(self.tool_breaker.state()),
        )
    }
}

fn level(state: State) -> u8 {
    match state {
        State::Closed | State::Disabled | State::MetricsOnly => 0,
        State::HalfOpen => 1,
        _ => 2,
    }
}

/// Both client stacks of one run, and the chaos handle the experiments arm.
#[derive(Debug)]
pub(crate) struct Stacks {
    pub(crate) llm: Svc,
    pub(crate) tool: Svc,
    pub(crate) chaos: ChaosHandle,
    pub(crate) protection: Option<Protection>,
    pub(crate) counters: Arc<Counters>,
}

/// The transport: reqwest, whole bodies as text.
fn transport(client: reqwest::Client) -> Svc {
    BoxCloneSyncService::new(tower::service_fn(move |request: Req| {
        let client = client.clone();
        async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            Ok::<_, BoxError>(answer.body(response.text().await?)?)
        }
    }))
}

/// The chaos layer of the "30 % errors" experiment: a `503` on 30 % of calls once armed.
fn chaos(seed: u64) -> Result<ChaosLayer<Req, Res>, BoxError> {
    Ok(ChaosLayer::<Req, Res>::builder()
        .name("llm-chaos")
        .seed(seed)
        // The experiment sets its own error rate; the guard would stop it at its threshold.
        .no_guard()
        .fault(Fault::http_status(StatusCode::SERVICE_UNAVAILABLE).rate(0.3))
        .build()?)
}

/// Counts each attempt for the gateway request it belongs to, and what the layers refused.
fn observe(
    counters: Arc<Counters>,
) -> impl Fn(Result<Res, BoxError>) -> Result<Res, BoxError> + Clone + Send + Sync + 'static {
    move |result| {
        let failed = match &result {
            Ok(answer) => {
                answer.status().is_server_error()
                    || answer.status() == StatusCode::TOO_MANY_REQUESTS
            }
            Err(error) => {
                match tower_breaker::find_rejected(error.as_ref()).map(|r| r.kind()) {
                    Some(LayerKind::Breaker) => {
                        counters.breaker_rejections.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(LayerKind::Bulkhead) => {
                        counters.bulkhead_rejections.fetch_add(1, Ordering::Relaxed);
                    }
                    _ if error.is::<tower::timeout::error::Elapsed>() => {
                        counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                true
            }
        };
        let _ = ATTEMPTS.try_with(|attempts| {
            attempts.total.fetch_add(1, Ordering::Relaxed);
            if failed {
                attempts.failed.fetch_add(1, Ordering::Relaxed);
            }
        });
        result
    }
}

fn tenant_of(request: &Req) -> String {
    request
        .headers()
        .get(TENANT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous")
        .to_owned()
}

/// The outer layers shared by both upstreams: fallback → retry → breaker, over `inner`.
fn outer(
    component: &'static str,
    configs: &Configs,
    counters: &Arc<Counters>,
    classifier: HttpStatus,
    inner: Svc,
) -> Result<(Svc, CircuitBreakerHandle, Arc<AtomicU64>), BoxError> {
    let cache = LastGood::new(1000, |r: &Req| {
        format!("{} {}", r.uri().path(), tenant_of(r))
    });
    let fallback = FallbackLayer::builder(component)
        .classifier(classifier)
        .chain(DegradationLevel::Slight, cache.clone())
        .then(
            DegradationLevel::Minimal,
            tower::service_fn(move |_: Req| async move {
                Ok::<_, BoxError>(http::Response::new(format!("{component}: canned answer")))
            }),
        )
        .build();
    let retries = counters.clone();
    let mut retry_config = configs.retry.clone();
    retry_config.name = component.to_owned();
    let retry = RetryLayer::builder()
        .http_client()
        .config(retry_config)
        .on_retry(move |_| {
            retries.retries.fetch_add(1, Ordering::Relaxed);
        })
        .build()?;
    let trips = counters.clone();
    let mine = Arc::new(AtomicU64::new(0));
    let my_trips = mine.clone();
    let breaker = CircuitBreakerLayer::builder()
        .config(CircuitBreakerConfig {
            name: component.to_owned(),
            ..configs.breaker.clone()
        })
        .classifier(classifier)
        .on_transition(move |t| {
            if t.to == State::Open {
                trips.breaker_trips.fetch_add(1, Ordering::Relaxed);
                my_trips.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()?;
    let handle = breaker.handle();
    let stack = ServiceBuilder::new()
        .layer(fallback)
        .layer(cache.record())
        .layer(retry)
        .map_result(observe(counters.clone()))
        .layer(breaker)
        .service(inner);
    Ok((BoxCloneSyncService::new(stack), handle, mine))
}

impl Stacks {
    /// The bare stacks: only the chaos layer (the experiments' injector) before the transport.
    pub(crate) fn bare(seed: u64) -> Result<Self, BoxError> {
        let counters = Arc::new(Counters::default());
        let client = reqwest::Client::new();
        let chaos = chaos(seed)?;
        let handle = chaos.handle();
        let llm = ServiceBuilder::new()
            .map_result(observe(counters.clone()))
            .layer(chaos)
            .service(transport(client.clone()));
        let tool = ServiceBuilder::new()
            .map_result(observe(counters.clone()))
            .service(transport(client));
        Ok(Self {
            llm: BoxCloneSyncService::new(llm),
            tool: BoxCloneSyncService::new(tool),
            chaos: handle,
            protection: None,
            counters,
        })
    }

    /// The protected stacks: the whole family in front of each upstream.
    pub(crate) fn protected(seed: u64) -> Result<Self, BoxError> {
        let configs = Configs::new(seed);
        let counters = Arc::new(Counters::default());
        let client = reqwest::Client::new();
        let chaos = chaos(seed)?;
        let handle = chaos.handle();

        // One compartment per agent in front of the LLM API: a flood fills only its own.
        let llm_bulkhead = BulkheadLayer::builder()
            .config(configs.llm_bulkhead.clone())
            .build_keyed(tenant_of)?;
        let llm_bulkhead_handle = llm_bulkhead.handle();
        let llm_inner = ServiceBuilder::new()
            .layer(llm_bulkhead)
            .timeout(configs.llm_timeout)
            .layer(chaos)
            .service(transport(client.clone()));
        let (llm, llm_breaker, llm_trips) = outer(
            "llm",
            &configs,
            &counters,
            // This provider charges calls made while throttled: a 429 must stop the calls too.
            HttpStatus::new().failure_on(StatusCode::TOO_MANY_REQUESTS),
            BoxCloneSyncService::new(llm_inner),
        )?;

        let tool_bulkhead = BulkheadLayer::from_config(configs.tool_bulkhead.clone())?;
        let tool_bulkhead_handle = tool_bulkhead.handle();
        let tool_inner = ServiceBuilder::new()
            .layer(tool_bulkhead)
            .timeout(configs.tool_timeout)
            .service(transport(client));
        let (tool, tool_breaker, tool_trips) = outer(
            "tool",
            &configs,
            &counters,
            HttpStatus::new(),
            BoxCloneSyncService::new(tool_inner),
        )?;

        Ok(Self {
            llm,
            tool,
            chaos: handle,
            protection: Some(Protection {
                configs,
                llm_breaker,
                tool_breaker,
                trips: (llm_trips, tool_trips),
                llm_bulkhead: llm_bulkhead_handle,
                tool_bulkhead: tool_bulkhead_handle,
            }),
            counters,
        })
    }
}

/// Calls `svc` once (readiness first).
pub(crate) async fn call(svc: Svc, request: Req) -> Result<Res, BoxError> {
    svc.oneshot(request).await
}

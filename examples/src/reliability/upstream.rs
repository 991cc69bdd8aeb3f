//! The two upstreams of the demo, local axum servers that fail on command: an "LLM API" with
//! a token budget and a few workers, and a "tool server".

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Tokens one completion costs.
pub(crate) const TOKENS_PER_CALL: f64 = 10.0;
/// The budget refills this many tokens a second in normal times (100 calls a second).
pub(crate) const REFILL_PER_SECOND: f64 = 1_000.0;
/// The most tokens the budget holds.
const BUDGET_MAX: f64 = 500.0;
/// How far into debt calls made while throttled can push the budget.
const MAX_DEBT: f64 = 5_000.0;
/// Workers of the LLM API: completions beyond them queue.
pub(crate) const LLM_WORKERS: usize = 2;
/// How long one completion takes in normal times.
pub(crate) const LLM_WORK: Duration = Duration::from_millis(20);
/// Workers of the tool server.
const TOOL_WORKERS: usize = 8;
/// How long a tool search waits on its own dead backend during an outage.
const TOOL_HANG: Duration = Duration::from_millis(1000);

/// The token budget: a bucket refilled at a rate; a call made while it is short is answered
/// `429` with `Retry-After` and still charged, as providers do to callers who ignore it.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    last: Instant,
    refill_per_second: f64,
}

impl Budget {
    /// Takes one call's tokens, or says how many seconds to wait.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.refill_per_second).min(BUDGET_MAX);
        if self.tokens >= TOKENS_PER_CALL {
            self.tokens -= TOKENS_PER_CALL;
            return Ok(());
        }
        self.tokens = (self.tokens - TOKENS_PER_CALL).max(-MAX_DEBT);
        let rate = self.refill_per_second.max(REFILL_PER_SECOND / 10.0);
        let wait = ((TOKENS_PER_CALL - self.tokens) / rate).ceil();
        Err((wait as u64).clamp(1, 60))
    }
}

/// Switches for the LLM API.
#[derive(Debug)]
pub(crate) struct Llm {
    budget: Mutex<Budget>,
    extra_latency_ms: AtomicU64,
    workers: Semaphore,
    /// Completions served (any answer that reached a worker).
    pub(crate) served: AtomicU64,
    /// Requests received and not finished.
    pending: AtomicU64,
}

impl Llm {
    fn new() -> Self {
        Self {
            budget: Mutex::new(Budget {
                tokens: BUDGET_MAX,
                last: Instant::now(),
                refill_per_second: REFILL_PER_SECOND,
            }),
            extra_latency_ms: AtomicU64::new(0),
            workers: Semaphore::new(LLM_WORKERS),
            served: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        }
    }

    /// Every completion takes `extra` longer (a latency spike), or back to normal with zero.
    pub(crate) fn set_extra_latency(&self, extra: Duration) {
        let ms = u64::try_from(extra.as_millis()).unwrap_or(u64::MAX);
        self.extra_latency_ms.store(ms, Ordering::SeqCst);
    }

    /// The provider cuts the refill (a 429 storm) or restores it.
    pub(crate) fn set_refill(&self, per_second: f64) {
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        // Settle what the old rate earned before the new one applies.
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(budget.last).as_secs_f64();
        budget.tokens = (budget.tokens + elapsed * budget.refill_per_second).min(BUDGET_MAX);
        budget.last = now;
        budget.refill_per_second = per_second;
        if per_second == 0.0 {
            // The storm: the quota is gone now, not once the bucket runs dry.
            budget.tokens = budget.tokens.min(0.0);
        }
    }
}

/// Switches for the tool server.
#[derive(Debug)]
pub(crate) struct Tool {
    down: AtomicBool,
    workers: Semaphore,
    pending: AtomicU64,
}

/// Counts a job as pending until it is dropped.
struct Pending<'a>(&'a AtomicU64);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for Tool {
    fn default() -> Self {
        Self {
            down: AtomicBool::new(false),
            workers: Semaphore::new(TOOL_WORKERS),
            pending: AtomicU64::new(0),
        }
    }
}

impl Tool {
    /// The tool server goes down (accepts connections, never answers in time) or comes back.
    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

/// Both upstreams, served on 127.0.0.1.
#[derive(Debug, Clone)]
pub(crate) struct Upstreams {
    pub(crate) llm: Arc<Llm>,
    pub(crate) llm_url: String,
    pub(crate) tool: Arc<Tool>,
    pub(crate) tool_url: String,
}

async fn complete(State(llm): State<Arc<Llm>>, asked: HeaderMap) -> Response {
    let verdict = {
        let mut budget = llm.budget.lock().unwrap_or_else(|e| e.into_inner());
        budget.take(Instant::now())
    };
    if let Err(wait) = verdict {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, wait.into());
        return (
            StatusCode::TOO_MANY_REQUESTS,
            headers,
            "token budget exhausted",
        )
            .into_response();
    }
    // Like most inference servers, a completion runs to its end even when its caller has
    // gone: the job is detached from the request.
    llm.pending.fetch_add(1, Ordering::SeqCst);
    let job = tokio::spawn(async move {
        let _pending = Pending(&llm.pending);
        // A closed semaphore never happens: it lives as long as the server.
        let _worker = llm.workers.acquire().await.ok()?;
        let started = Instant::now();
        // A spike slows every completion while it lasts (checked as the work goes on).
        loop {
            let extra = Duration::from_millis(llm.extra_latency_ms.load(Ordering::SeqCst));
            let due = started + LLM_WORK + extra;
            let now = Instant::now();
            if now >= due {
                break;
            }
            tokio::time::sleep((due - now).min(Duration::from_millis(20))).await;
        }
        llm.served.fetch_add(1, Ordering::Relaxed);
        Some(())
    });
    if !matches!(job.await, Ok(Some(()))) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let tenant = asked
        .get(super::TENANT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anonymous");
    (StatusCode::OK, format!("completion for {tenant}")).into_response()
}

async fn search(State(tool): State<Arc<Tool>>) -> Response {
    // A request that arrives while the backend is dead is doomed (its backend connection
    // is): it ties up a worker until the backend call times out, even after its caller has
    // left, as a thread-per-request server does. The job is detached from the request.
    let doomed = tool.down.load(Ordering::SeqCst);
    tool.pending.fetch_add(1, Ordering::SeqCst);
    let job = tokio::spawn(async move {
        let _pending = Pending(&tool.pending);
        let _worker = tool.workers.acquire().await.ok()?;
        if doomed {
            tokio::time::sleep(TOOL_HANG).await;
            return Some(false);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        Some(true)
    });
    match job.await {
        Ok(Some(true)) => (StatusCode::OK, "3 documents found").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "tool server down").into_response(),
    }
}

async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

impl Upstreams {
    /// Starts both servers on 127.0.0.1.
    pub(crate) async fn start() -> std::io::Result<Self> {
        let llm = Arc::new(Llm::new());
        let tool = Arc::new(Tool::default());
        let llm_addr = serve(
            Router::new()
                .route("/v1/complete", get(complete))
                .with_state(llm.clone()),
        )
        .await?;
        let tool_addr = serve(
            Router::new()
                .route("/tool/search", get(search))
                .with_state(tool.clone()),
        )
        .await?;
        Ok(Self {
            llm,
            llm_url: format!("http://{llm_addr}/v1/complete"),
            tool,
            tool_url: format!("http://{tool_addr}/tool/search"),
        })
    }

    /// No request is queued or running in either upstream.
    pub(crate) fn idle(&self) -> bool {
        self.llm.pending.load(Ordering::SeqCst) == 0
            && self.tool.pending.load(Ordering::SeqCst) == 0
    }

    /// Back to healthy: no spike, full refill, tool server up.
    pub(crate) fn heal(&self) {
        self.llm.set_extra_latency(Duration::ZERO);
        self.llm.set_refill(REFILL_PER_SECOND);
        self.tool.set_down(false);
    }
}

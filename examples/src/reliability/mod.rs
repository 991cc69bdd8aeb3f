//! The core of the `reliability-report` demo: an agent gateway on 127.0.0.1 whose handlers call
//! two upstreams (an "LLM API" with a token budget and a "tool server"), driven through a suite
//! of chaos experiments twice, without and then with the family's protection stack, under
//! concurrent load from several agents. [`run_suite`] returns every call it made;
//! [`report::render`] writes the Reliability Engineering Report from them and
//! [`chart::render_svg`] the timeline chart.
//!
//! Every figure in the report is computed from the calls of that run ([`figures`]); the
//! configuration it lists is the one the layers were built from, read back from their handles
//! where they expose it.

pub mod chart;
pub mod figures;
pub mod report;
mod stack;
mod upstream;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::Instant;
use tower_heal::{BoxError, Degradable};

use stack::{ATTEMPTS, Attempts, Counters, Stacks, Svc};
use upstream::Upstreams;

/// The header that names the calling agent (tenant) on every upstream call.
pub(crate) const TENANT: &str = "x-agent";

/// How long the demo runs each phase, and how hard it pushes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Seeds the chaos layer, the retry's jitter and the agents' arrival offsets.
    pub seed: u64,
    /// Normal traffic before each fault.
    pub steady: Duration,
    /// How long each fault lasts (the outage excepted).
    pub fault: Duration,
    /// Watched after each fault, for recovery.
    pub recovery: Duration,
    /// The outage stands for 20 s of real time, run this many times faster.
    pub compression: f64,
    /// Agents (tenants) calling the gateway.
    pub agents: usize,
    /// Requests a second each agent sends.
    pub rate_per_agent: f64,
    /// Requests a second of the flooding agent, during the noisy-neighbour fault.
    pub flood_rate: f64,
    /// A caller gives up after this long: an answer later than this is a hang.
    pub deadline: Duration,
    /// The width of one point of the timeline.
    pub bucket: Duration,
}

impl Settings {
    /// The demo's settings: both runs take about a minute and a quarter together.
    #[must_use]
    pub fn demo(seed: u64) -> Self {
        Self {
            seed,
            steady: Duration::from_millis(1000),
            fault: Duration::from_millis(3000),
            recovery: Duration::from_millis(3000),
            compression: 5.0,
            agents: 3,
            rate_per_agent: 10.0,
            flood_rate: 120.0,
            deadline: Duration::from_secs(1),
            bucket: Duration::from_millis(250),
        }
    }

    /// A short suite, for tests: a few seconds a run.
    #[must_use]
    pub fn quick(seed: u64) -> Self {
        Self {
            steady: Duration::from_millis(400),
            fault: Duration::from_millis(1200),
            recovery: Duration::from_millis(1200),
            compression: 10.0,
            ..Self::demo(seed)
        }
    }

    /// How long the outage really lasts in this run.
    #[must_use]
    pub fn outage(&self) -> Duration {
        Duration::from_secs_f64(OUTAGE_NOMINAL.as_secs_f64() / self.compression.max(1.0))
    }
}

/// The outage the suite stands for, before compression.
pub const OUTAGE_NOMINAL: Duration = Duration::from_secs(20);

/// The faults of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The chaos layer answers `503` to 30 % of the LLM calls.
    Errors30,
    /// Every completion takes longer than the callers' deadline.
    LatencySpike,
    /// The LLM API's token budget stops refilling: `429` with `Retry-After` to every call,
    /// and calls made meanwhile still cost tokens.
    RateLimitStorm,
    /// The tool server accepts connections and never answers in time.
    ToolOutage,
    /// One agent sends many times its share while the others go on as usual.
    NoisyNeighbour,
}

/// One experiment of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Experiment {
    /// Its fault.
    pub kind: FaultKind,
    /// Its name in the report.
    pub name: &'static str,
    /// Its failure-mode identifier in the report.
    pub failure_mode: &'static str,
    /// What is injected, in words.
    pub injection: &'static str,
}

/// The suite, in order.
pub const SUITE: [Experiment; 5] = [
    Experiment {
        kind: FaultKind::Errors30,
        name: "30 % errors from the LLM API",
        failure_mode: "TF-001 transient errors",
        injection: "tower-chaos answers 503 to 30 % of LLM calls",
    },
    Experiment {
        kind: FaultKind::LatencySpike,
        name: "Latency spike past the deadline",
        failure_mode: "EF-001 slow dependency",
        injection: "completions take 1.2 s longer while it lasts (callers wait at most the deadline)",
    },
    Experiment {
        kind: FaultKind::RateLimitStorm,
        name: "429 storm with Retry-After",
        failure_mode: "TF-002 rate limited",
        injection: "the LLM token budget stops refilling: 429 + Retry-After, calls still charged",
    },
    Experiment {
        kind: FaultKind::ToolOutage,
        name: "Tool server outage (20 s)",
        failure_mode: "TF-003 dependency down",
        injection: "the tool server accepts connections and never answers in time",
    },
    Experiment {
        kind: FaultKind::NoisyNeighbour,
        name: "One agent floods its compartment",
        failure_mode: "AF-001 noisy neighbour",
        injection: "agent-0 sends many times its share of LLM calls",
    },
];

/// How a call to the gateway ended, as its caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A real answer from both upstreams.
    Real,
    /// An answer with at least one part from a fallback (marked degraded).
    Degraded,
    /// An error answer, in time.
    Error,
    /// No answer within the caller's deadline.
    TimedOut,
}

/// One call to the gateway.
#[derive(Clone, Copy, Debug)]
pub struct CallRecord {
    /// Index in [`SUITE`].
    pub experiment: usize,
    /// The calling agent.
    pub agent: usize,
    /// Sent by the flood of the noisy-neighbour fault.
    pub flood: bool,
    /// Seconds from the start of the run to the call.
    pub start: f64,
    /// Seconds it took (the deadline for a call that timed out).
    pub latency: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// Attempts made to upstreams for it.
    pub attempts: u32,
    /// Of which failed.
    pub failed_attempts: u32,
}

impl CallRecord {
    /// Seconds from the start of the run to its answer.
    #[must_use]
    pub fn end(&self) -> f64 {
        self.start + self.latency
    }
}

/// When one experiment ran, in seconds from the start of its run.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Load starts.
    pub start: f64,
    /// The fault is switched on.
    pub fault_start: f64,
    /// The fault is switched off.
    pub fault_end: f64,
    /// Load stops.
    pub end: f64,
}

/// The breakers' states at one instant: 0 closed, 1 half-open, 2 open.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds from the start of the run.
    pub t: f64,
    /// The LLM breaker.
    pub llm: u8,
    /// The tool breaker.
    pub tool: u8,
}

/// What the layers did over a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct LayerCounts {
    /// Retries the retry layer made.
    pub retries: u64,
    /// Times a breaker opened.
    pub breaker_trips: u64,
    /// Calls a breaker refused.
    pub breaker_rejections: u64,
    /// Calls a bulkhead refused.
    pub bulkhead_rejections: u64,
    /// Attempts cut by the per-attempt timeout.
    pub timeouts: u64,
    /// Upstream calls answered by a fallback.
    pub fallbacks: u64,
    /// Faults the chaos layer injected.
    pub injected: u64,
    /// Completions the LLM API's workers served.
    pub llm_served: u64,
}

/// The protection stack's configuration, as built and read back from its handles.
#[derive(Clone, Debug)]
pub struct PatternsInPlace {
    /// Rows of (name, protects, threshold, reset timeout, state at the end, trips).
    pub breakers: Vec<[String; 6]>,
    /// The retry: max retries, first delay, max delay, longest Retry-After waited, seed.
    pub retry: String,
    /// The fallback chain.
    pub fallback: String,
    /// The bulkheads: rows of (name, scope, max concurrent, retry after).
    pub bulkheads: Vec<[String; 4]>,
    /// The per-attempt timeouts: LLM API, tool server.
    pub timeouts: (Duration, Duration),
}

/// One run of the suite.
#[derive(Clone, Debug)]
pub struct Run {
    /// With the protection stack.
    pub protected: bool,
    /// Every call made.
    pub calls: Vec<CallRecord>,
    /// One window per experiment of [`SUITE`].
    pub windows: Vec<Window>,
    /// Breaker states over time (empty without protection).
    pub samples: Vec<Sample>,
    /// What the layers did.
    pub counts: LayerCounts,
    /// The configuration (protected run only).
    pub patterns: Option<PatternsInPlace>,
}

/// Both runs and the settings they ran with.
#[derive(Clone, Debug)]
pub struct Suite {
    /// The settings.
    pub settings: Settings,
    /// Without protection.
    pub unprotected: Run,
    /// With the protection stack.
    pub protected: Run,
}

/// What a run reports while it goes on.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// An experiment starts; it lasts about `total`.
    Started {
        /// With the protection stack.
        protected: bool,
        /// Its index in [`SUITE`].
        index: usize,
        /// The experiment.
        experiment: &'a Experiment,
        /// Its planned length.
        total: Duration,
    },
    /// Time has passed in the current experiment.
    Tick {
        /// Since it started.
        elapsed: Duration,
        /// Calls answered so far, and of those usable (real or degraded).
        answered: u64,
        /// Usable answers so far.
        usable: u64,
    },
    /// The current experiment is over.
    Finished,
}

struct Gateway {
    llm: Svc,
    tool: Svc,
    llm_url: String,
    tool_url: String,
    counters: Arc<Counters>,
}

/// Calls one upstream: `Ok(degraded)` for a usable answer, `Err(status)` otherwise.
async fn one(gw: &Gateway, svc: &Svc, url: &str, agent: &str) -> Result<bool, StatusCode> {
    let request = http::Request::get(url)
        .header(TENANT, agent)
        .body(String::new())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    match stack::call(svc.clone(), request).await {
        Ok(answer) if answer.status().is_success() => {
            let degraded = answer.degraded().is_some();
            if degraded {
                gw.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(degraded)
        }
        Ok(answer) => Err(if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::BAD_GATEWAY
        }),
        Err(_) => Err(StatusCode::BAD_GATEWAY),
    }
}

/// `GET /agent/{agent}/ask`: the agent's LLM call, then its tool call.
async fn ask(State(gw): State<Arc<Gateway>>, Path(agent): Path<String>) -> Response {
    let attempts = Arc::new(Attempts::default());
    let answer = ATTEMPTS
        .scope(attempts.clone(), async {
            let llm = one(&gw, &gw.llm, &gw.llm_url, &agent).await?;
            let tool = one(&gw, &gw.tool, &gw.tool_url, &agent).await?;
            Ok::<_, StatusCode>(llm || tool)
        })
        .await;
    let total = attempts.total.load(Ordering::Relaxed);
    let failed = attempts.failed.load(Ordering::Relaxed);
    let (status, kind) = match answer {
        Ok(false) => (StatusCode::OK, "real"),
        Ok(true) => (StatusCode::OK, "degraded"),
        Err(status) => (status, "error"),
    };
    (
        status,
        [
            ("x-answer", kind.to_owned()),
            ("x-attempts", total.to_string()),
            ("x-failed-attempts", failed.to_string()),
        ],
        kind,
    )
        .into_response()
}

struct Driver {
    client: reqwest::Client,
    url: String,
    settings: Settings,
    t0: Instant,
    records: Arc<Mutex<Vec<CallRecord>>>,
    sent: std::sync::atomic::AtomicUsize,
}

impl Driver {
    fn since(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64()
    }

    /// One call to the gateway, recorded.
    fn spawn_call(self: &Arc<Self>, experiment: usize, agent: usize, flood: bool) {
        let me = self.clone();
        self.sent.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let started = Instant::now();
            let url = format!("{}/agent/agent-{agent}/ask", me.url);
            let sent = tokio::time::timeout(me.settings.deadline, async {
                let answer = me.client.get(&url).send().await?;
                let header = |name: &str| -> u32 {
                    answer
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                let attempts = (header("x-attempts"), header("x-failed-attempts"));
                let kind = answer.text().await?;
                Ok::<_, reqwest::Error>((kind, attempts))
            })
            .await;
            let (outcome, (attempts, failed_attempts)) = match sent {
                Ok(Ok((kind, attempts))) => match kind.as_str() {
                    "real" => (Outcome::Real, attempts),
                    "degraded" => (Outcome::Degraded, attempts),
                    _ => (Outcome::Error, attempts),
                },
                Ok(Err(_)) => (Outcome::Error, (0, 0)),
                Err(_) => (Outcome::TimedOut, (0, 0)),
            };
            let latency = started.elapsed().as_secs_f64();
            let record = CallRecord {
                experiment,
                agent,
                flood,
                start: me.since(started),
                latency,
                outcome,
                attempts,
                failed_attempts,
            };
            me.records
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(record);
        });
    }

    /// Sends `rate` calls a second as `agent` until `until`, starting at `phase` (0..1) of the
    /// first interval.
    async fn load(
        self: Arc<Self>,
        experiment: usize,
        agent: usize,
        flood: bool,
        rate: f64,
        phase: f64,
        until: Instant,
    ) {
        let every = Duration::from_secs_f64(1.0 / rate.max(0.1));
        tokio::time::sleep(every.mul_f64(phase)).await;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if Instant::now() >= until {
                break;
            }
            self.spawn_call(experiment, agent, flood);
        }
    }
}

fn apply(kind: FaultKind, on: bool, up: &Upstreams, stacks: &Stacks) {
    match kind {
        FaultKind::Errors30 => {
            if on {
                stacks.chaos.arm();
            } else {
                stacks.chaos.disarm();
            }
        }
        FaultKind::LatencySpike => up.llm.set_extra_latency(if on {
            Duration::from_millis(1200)
        } else {
            Duration::ZERO
        }),
        FaultKind::RateLimitStorm => {
            up.llm
                .set_refill(if on { 0.0 } else { upstream::REFILL_PER_SECOND })
        }
        FaultKind::ToolOutage => up.tool.set_down(on),
        // The flood is load, sent by the driver.
        FaultKind::NoisyNeighbour => {}
    }
}

fn patterns(protection: &stack::Protection) -> PatternsInPlace {
    let c = &protection.configs;
    let threshold = match (
        c.breaker.failure_rate_threshold,
        c.breaker.failure_threshold,
    ) {
        (Some(rate), _) => format!(
            "{:.0} % failures over the last {} calls (min {})",
            rate * 100.0,
            match c.breaker.window {
                tower_breaker::WindowConfig::Count { size } => size.to_string(),
                _ => "window".to_owned(),
            },
            c.breaker.minimum_calls
        ),
        (None, Some(n)) => format!("{n} failures in a row"),
        (None, None) => "none".to_owned(),
    };
    let breakers = [
        (
            &protection.llm_breaker,
            "LLM API",
            "; 5xx, 429, timeouts and errors count",
            &protection.trips.0,
        ),
        (
            &protection.tool_breaker,
            "tool server",
            "; 5xx, timeouts and errors count",
            &protection.trips.1,
        ),
    ]
    .iter()
    .map(|(handle, protects, counted, trips)| {
        [
            handle.name().to_owned(),
            (*protects).to_owned(),
            format!("{threshold}{counted}"),
            format!("{} s", c.breaker.reset_timeout_seconds),
            format!("{:?}", handle.state()),
            format!(
                "opened {} times in the suite",
                trips.load(Ordering::Relaxed)
            ),
        ]
    })
    .collect();
    let retry = format!(
        "up to {} retries of idempotent calls, {} ms first delay, {} ms max, {:?} jitter, \
         waits out a Retry-After up to {} ms, seed {}",
        c.retry.max_retries,
        c.retry.initial_delay_ms,
        c.retry.max_delay_ms,
        c.retry.jitter,
        c.retry.max_retry_after_ms,
        c.retry.seed.map_or("none".to_owned(), |s| s.to_string()),
    );
    let per_agent = protection
        .llm_bulkhead
        .get(&"agent-1".to_owned())
        .map_or(c.llm_bulkhead.max_concurrent, |h| h.max_concurrent());
    let bulkheads = vec![
        [
            protection.llm_bulkhead.name().to_owned(),
            format!(
                "one compartment per agent in front of the LLM API ({} agents seen)",
                protection.llm_bulkhead.keys()
            ),
            per_agent.to_string(),
            format!("{} s", c.llm_bulkhead.retry_after_seconds),
        ],
        [
            protection.tool_bulkhead.name().to_owned(),
            "the tool server".to_owned(),
            protection.tool_bulkhead.max_concurrent().to_string(),
            format!("{} s", c.tool_bulkhead.retry_after_seconds),
        ],
    ];
    PatternsInPlace {
        breakers,
        retry,
        fallback: "the last good answer for the same agent and route (degraded: slight), \
                   else a canned answer (degraded: minimal)"
            .to_owned(),
        bulkheads,
        timeouts: (c.llm_timeout, c.tool_timeout),
    }
}

/// Runs the suite once, with or without protection, reporting progress to `progress`.
///
/// # Errors
/// If a server cannot bind on 127.0.0.1 or a layer's configuration is refused.
pub async fn run_once(
    settings: &Settings,
    protected: bool,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<Run, BoxError> {
    let up = Upstreams::start().await?;
    let stacks = if protected {
        Stacks::protected(settings.seed)?
    } else {
        Stacks::bare(settings.seed)?
    };
    let gateway = Arc::new(Gateway {
        llm: stacks.llm.clone(),
        tool: stacks.tool.clone(),
        llm_url: up.llm_url.clone(),
        tool_url: up.tool_url.clone(),
        counters: stacks.counters.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/agent/{agent}/ask", get(ask))
        .with_state(gateway);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let t0 = Instant::now();
    let driver = Arc::new(Driver {
        client: reqwest::Client::new(),
        url: format!("http://{addr}"),
        settings: settings.clone(),
        t0,
        records: Arc::new(Mutex::new(Vec::new())),
        sent: std::sync::atomic::AtomicUsize::new(0),
    });

    // The breakers' states, sampled for the timeline.
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = stacks.protection.clone().map(|protection| {
        let samples = samples.clone();
        let every = settings.bucket / 5;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                let (llm, tool) = protection.breaker_level();
                let t = t0.elapsed().as_secs_f64();
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Sample { t, llm, tool });
            }
        })
    });

    let mut rng = fastrand::Rng::with_seed(settings.seed);
    let mut windows = Vec::new();
    for (index, experiment) in SUITE.iter().enumerate() {
        let fault = if experiment.kind == FaultKind::ToolOutage {
            settings.outage()
        } else {
            settings.fault
        };
        let total = settings.steady + fault + settings.recovery;
        progress(Progress::Started {
            protected,
            index,
            experiment,
            total,
        });
        let start = Instant::now();
        let until = start + total;
        let fault_start = start + settings.steady;
        let fault_end = fault_start + fault;
        let mut load = Vec::new();
        for agent in 0..settings.agents {
            load.push(tokio::spawn(driver.clone().load(
                index,
                agent,
                false,
                settings.rate_per_agent,
                rng.f64(),
                until,
            )));
        }
        let mut switched_on = false;
        let mut switched_off = false;
        loop {
            let now = Instant::now();
            if !switched_on && now >= fault_start {
                switched_on = true;
                apply(experiment.kind, true, &up, &stacks);
                if experiment.kind == FaultKind::NoisyNeighbour {
                    load.push(tokio::spawn(driver.clone().load(
                        index,
                        0,
                        true,
                        settings.flood_rate,
                        0.0,
                        fault_end,
                    )));
                }
            }
            if !switched_off && now >= fault_end {
                switched_off = true;
                apply(experiment.kind, false, &up, &stacks);
            }
            if now >= until {
                break;
            }
            let (answered, usable) = {
                let records = driver.records.lock().unwrap_or_else(|e| e.into_inner());
                let mine = records.iter().filter(|r| r.experiment == index);
                mine.fold((0, 0), |(a, u), r| {
                    let ok = matches!(r.outcome, Outcome::Real | Outcome::Degraded);
                    (a + 1, u + u64::from(ok))
                })
            };
            progress(Progress::Tick {
                elapsed: now - start,
                answered,
                usable,
            });
            tokio::time::sleep(Duration::from_millis(50).min(until - now)).await;
        }
        for task in load {
            let _ = task.await;
        }
        // Calls still in flight end within the deadline.
        let drained = Instant::now() + settings.deadline + Duration::from_millis(100);
        while Instant::now() < drained {
            let done = driver
                .records
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len();
            if done >= driver.sent.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        up.heal();
        stacks.chaos.disarm();
        // Work left queued in the upstreams (callers long gone) drains before the next
        // experiment, outside every window, so that no experiment inherits another's backlog.
        let settled = Instant::now() + Duration::from_secs(30);
        while !up.idle() && Instant::now() < settled {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        windows.push(Window {
            start: driver.since(start),
            fault_start: driver.since(fault_start),
            fault_end: driver.since(fault_end),
            end: driver.since(until),
        });
        progress(Progress::Finished);
    }
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    server.abort();

    let counters = &stacks.counters;
    let counts = LayerCounts {
        retries: Counters::get(&counters.retries),
        breaker_trips: Counters::get(&counters.breaker_trips),
        breaker_rejections: Counters::get(&counters.breaker_rejections),
        bulkhead_rejections: Counters::get(&counters.bulkhead_rejections),
        timeouts: Counters::get(&counters.timeouts),
        fallbacks: Counters::get(&counters.fallbacks),
        injected: stacks.chaos.stats().injected(),
        llm_served: up.llm.served.load(Ordering::Relaxed),
    };
    let mut calls = std::mem::take(&mut *driver.records.lock().unwrap_or_else(|e| e.into_inner()));
    calls.sort_by(|a, b| a.start.total_cmp(&b.start));
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Run {
        protected,
        calls,
        windows,
        samples,
        counts,
        patterns: stacks.protection.as_ref().map(patterns),
    })
}

/// Runs the suite without protection, then with it.
///
/// # Errors
/// As [`run_once`].
pub async fn run_suite(
    settings: &Settings,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<Suite, BoxError> {
    let unprotected = run_once(settings, false, progress).await?;
    let protected = run_once(settings, true, progress).await?;
    Ok(Suite {
        settings: settings.clone(),
        unprotected,
        protected,
    })
}

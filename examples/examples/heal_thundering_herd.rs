//! The thundering herd, in virtual time: 1 000 clients fail at once against a service that is
//! down for 10 s and then serves at most 50 calls per 100 ms. Each client retries through
//! tower-heal's `RetryLayer` (exponential back-off from 200 ms, × 2, capped at 10 s, no
//! budget so that only the jitter differs), with no jitter, full, equal and decorrelated
//! jitter. Then the published full-jitter comparison: 100 clients contending for one
//! resource, base 5 ms, cap 2 s.
//!
//! ```sh
//! cargo run -p examples --example heal_thundering_herd            # prints the tables
//! cargo run -p examples --example heal_thundering_herd -- out.svg # and writes the chart
//! ```
//!
//! Everything runs on tokio's paused clock (the layer's sleeps and the service's clock are
//! virtual), with seeded random numbers: the figures are the same on every run.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};
use tower_heal::{Backoff, Jitter, RetryLayer};

const CLIENTS: usize = 1_000;
const DOWN_FOR: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_millis(100);
const CAPACITY: u32 = 50;
const MODES: [(&str, Jitter); 4] = [
    ("no jitter", Jitter::None),
    ("full", Jitter::Full),
    ("equal", Jitter::Equal),
    ("decorrelated", Jitter::Decorrelated),
];

/// What one run of the herd gives.
struct Herd {
    calls: usize,
    peak_after_recovery: u32,
    all_done: Duration,
    /// Calls per 100 ms window.
    arrivals: Vec<u32>,
}

async fn herd(jitter: Jitter) -> Herd {
    let start = Instant::now();
    let arrivals = Rc::new(RefCell::new(Vec::<u32>::new()));
    let served = Rc::new(RefCell::new(Vec::<u32>::new()));
    let (a, s) = (arrivals.clone(), served.clone());
    let service = tower::service_fn(move |_client: usize| {
        let now = start.elapsed();
        let window = (now.as_nanos() / WINDOW.as_nanos()) as usize;
        let mut arrivals = a.borrow_mut();
        let mut served = s.borrow_mut();
        if arrivals.len() <= window {
            arrivals.resize(window + 1, 0);
            served.resize(window + 1, 0);
        }
        arrivals[window] += 1;
        let ok = now >= DOWN_FOR && served[window] < CAPACITY;
        if ok {
            served[window] += 1;
        }
        std::future::ready(if ok {
            Ok(now)
        } else {
            Err(std::io::Error::other("unavailable"))
        })
    });
    let retry = RetryLayer::builder()
        .max_retries(tower_heal::MAX_RETRIES)
        .backoff(
            Backoff::exponential(Duration::from_millis(200))
                .max_delay(Duration::from_secs(10))
                .jitter(jitter),
        )
        .no_budget()
        .seed(2026)
        .build()
        .expect("a valid configuration");
    let svc = ServiceBuilder::new().layer(retry).service(service);
    let local = tokio::task::LocalSet::new();
    let mut handles = Vec::new();
    for client in 0..CLIENTS {
        let svc = svc.clone();
        handles.push(local.spawn_local(async move { svc.oneshot(client).await }));
    }
    let done = local
        .run_until(async move {
            let mut last = Duration::ZERO;
            for handle in handles {
                let at = handle
                    .await
                    .expect("client task")
                    .expect("served in the end");
                last = last.max(at);
            }
            last
        })
        .await;
    let arrivals = arrivals.borrow().clone();
    let first_after = (DOWN_FOR.as_nanos() / WINDOW.as_nanos()) as usize;
    Herd {
        calls: arrivals.iter().map(|&n| n as usize).sum(),
        peak_after_recovery: arrivals
            .iter()
            .skip(first_after)
            .copied()
            .max()
            .unwrap_or(0),
        all_done: done,
        arrivals,
    }
}

/// The published comparison (Brooker, "Exponential Backoff And Jitter", AWS Architecture
/// Blog, 2015), as a contention model: 100 clients each need one write to a shared resource,
/// all starting within the same millisecond; a write takes 1 ms and fails when another write
/// overlaps it (optimistic concurrency); every attempt also sees 0–1 ms of network delay.
/// Clients retry with the layer's own `Backoff` (base 5 ms, cap 2 s) until they succeed or
/// have retried `MAX_RETRIES` times. Returns (calls, clients that gave up).
fn contention(jitter: Jitter, seed: u64) -> (usize, usize) {
    const N: usize = 100;
    const WRITE_US: u64 = 1_000;
    let backoff = Backoff::exponential(Duration::from_millis(5))
        .max_delay(Duration::from_secs(2))
        .jitter(jitter);
    let mut rng = fastrand::Rng::with_seed(seed);
    // (landing time in µs, retries so far, previous delay), per client still working.
    let mut clients: Vec<(u64, u32, Duration)> = (0..N)
        .map(|_| (rng.u64(0..WRITE_US), 0, Duration::from_millis(5)))
        .collect();
    let mut recent = std::collections::VecDeque::new();
    let (mut calls, mut gave_up) = (0, 0);
    while let Some((i, &(t, retries, previous))) =
        clients.iter().enumerate().min_by_key(|(_, c)| c.0)
    {
        calls += 1;
        while recent.front().is_some_and(|&r: &u64| r + WRITE_US <= t) {
            recent.pop_front();
        }
        let conflict = !recent.is_empty()
            || clients
                .iter()
                .enumerate()
                .any(|(j, c)| j != i && c.0 < t + WRITE_US);
        recent.push_back(t);
        if !conflict {
            clients.swap_remove(i);
        } else if retries >= tower_heal::MAX_RETRIES {
            gave_up += 1;
            clients.swap_remove(i);
        } else {
            let delay = backoff.delay(retries, previous, &mut rng);
            let wait = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
            clients[i] = (
                t + WRITE_US + wait + rng.u64(0..WRITE_US),
                retries + 1,
                delay,
            );
        }
    }
    (calls, gave_up)
}

fn svg(runs: &[(&str, Herd)]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 360.0;
    const PAD: f64 = 50.0;
    let colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];
    let windows = runs
        .iter()
        .filter(|(name, _)| *name != "no jitter")
        .map(|(_, h)| h.arrivals.len())
        .max()
        .unwrap_or(1)
        .max(1);
    // A log scale: the unjittered herd's spikes are 1 000 calls, the jittered curves tens.
    let peak = (CLIENTS as f64 + 1.0).log10();
    let x = |w: usize| PAD + (W - 2.0 * PAD) * w as f64 / windows as f64;
    let y = |n: f64| H - PAD - (H - 2.0 * PAD) * (n + 1.0).log10() / peak;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{PAD}" y="20" font-size="14">Calls per 100 ms (log scale): 1 000 clients, service down 10 s, then 50 calls per 100 ms; dashed: recovery</text>"#
    );
    let _ = writeln!(
        out,
        r#"<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" stroke="black"/>"#,
        b = H - PAD,
        r = W - PAD
    );
    let seconds = windows / 10;
    let step = (seconds / 10).max(1);
    for s in (0..=seconds).step_by(step) {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{s} s</text>"#,
            x(s * 10),
            H - PAD + 16.0
        );
    }
    for tick in [0.0, 10.0, 100.0, 1000.0] {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{tick}</text>"#,
            PAD - 4.0,
            y(tick) + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<line x1="{x0:.1}" y1="{PAD}" x2="{x0:.1}" y2="{b}" stroke="grey" stroke-dasharray="4 4"/>"#,
        x0 = x(100),
        b = H - PAD
    );
    for (i, (name, herd)) in runs.iter().enumerate() {
        let points: Vec<String> = (0..windows)
            .map(|w| {
                let n = f64::from(herd.arrivals.get(w).copied().unwrap_or(0));
                format!("{:.1},{:.1}", x(w), y(n))
            })
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.2" points="{}"/>"#,
            colours[i % colours.len()],
            points.join(" ")
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{}">{name}</text>"#,
            W - PAD - 110.0,
            PAD + 16.0 * i as f64,
            colours[i % colours.len()]
        );
    }
    out.push_str("</svg>\n");
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let mut runs = Vec::new();
    for (name, jitter) in MODES {
        let herd = runtime.block_on(herd(jitter));
        runs.push((name, herd));
    }
    println!(
        "| jitter | total calls | peak calls per 100 ms after recovery | all clients done after |"
    );
    println!("|---|---:|---:|---:|");
    for (name, h) in &runs {
        println!(
            "| {name} | {} | {} | {:.1} s |",
            h.calls,
            h.peak_after_recovery,
            h.all_done.as_secs_f64()
        );
    }
    println!();
    println!(
        "| 100 clients contending, base 5 ms, cap 2 s | calls (mean of 20 seeds) | clients that gave up after {} retries |",
        tower_heal::MAX_RETRIES
    );
    println!("|---|---:|---:|");
    for (name, jitter) in MODES {
        let (calls, gave_up) = (0..20)
            .map(|seed| contention(jitter, seed))
            .fold((0, 0), |(c, g), (c2, g2)| (c + c2, g + g2));
        println!(
            "| {name} | {:.0} | {:.1} |",
            calls as f64 / 20.0,
            gave_up as f64 / 20.0
        );
    }
    if let Some(path) = std::env::args().nth(1) {
        std::fs::write(&path, svg(&runs)).expect("the chart is written");
        println!("\nchart written to {path}");
    }
}

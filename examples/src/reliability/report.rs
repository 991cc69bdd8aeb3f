//! The Reliability Engineering Report, in Markdown, from the figures of both runs.

use std::fmt::Write as _;

use super::figures::{
    self, ExperimentFigures, Figures, MTTR_TARGET, RECOVERY_RUN, SUCCESS_TARGET, ms, mttr,
    mttr_text, pct,
};
use super::{OUTAGE_NOMINAL, Run, SUITE, Suite};

/// The figures of both runs, computed once.
#[derive(Clone, Debug)]
pub struct Digest {
    /// The whole unprotected run.
    pub before: Figures,
    /// The whole protected run.
    pub after: Figures,
    /// Per experiment, unprotected.
    pub before_experiments: Vec<ExperimentFigures>,
    /// Per experiment, protected.
    pub after_experiments: Vec<ExperimentFigures>,
}

impl Digest {
    /// Computes the figures of `suite`.
    #[must_use]
    pub fn new(suite: &Suite) -> Self {
        let per = |run: &Run| {
            (0..SUITE.len())
                .map(|i| figures::experiment(run, &suite.settings, i))
                .collect::<Vec<_>>()
        };
        Self {
            before: figures::figures(&suite.unprotected.calls),
            after: figures::figures(&suite.protected.calls),
            before_experiments: per(&suite.unprotected),
            after_experiments: per(&suite.protected),
        }
    }
}

/// `x` rounded to `decimals` places, with a negative zero made positive, so a change that rounds
/// to nothing prints as `+0`, never `-0`.
fn shown(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale + 0.0
}

fn points(before: Option<f64>, after: Option<f64>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!("{:+.1} points", shown((a - b) * 100.0, 1)),
        _ => "n/a".to_owned(),
    }
}

fn latency_change(before: Option<f64>, after: Option<f64>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if b > 0.0 => {
            format!(
                "{:+.0} ms ({:+.0} %)",
                shown((a - b) * 1000.0, 0),
                shown((a - b) / b * 100.0, 0)
            )
        }
        _ => "n/a".to_owned(),
    }
}

/// The before/after rows: metric, before, after, change.
#[must_use]
pub fn before_after(suite: &Suite, digest: &Digest) -> Vec<[String; 4]> {
    let (b, a) = (&digest.before, &digest.after);
    let (bc, ac) = (&suite.unprotected.counts, &suite.protected.counts);
    let (bm, am) = (
        mttr(&digest.before_experiments),
        mttr(&digest.after_experiments),
    );
    let mttr_change = if bm.0 > 0.0 {
        format!(
            "{:+.0} ms ({:.0} % shorter{})",
            shown((am.0 - bm.0) * 1000.0, 0),
            shown((bm.0 - am.0) / bm.0 * 100.0, 0),
            if bm.1 { "" } else { ", at least" }
        )
    } else {
        "n/a".to_owned()
    };
    let count = |x: u64, y: u64| {
        [
            x.to_string(),
            y.to_string(),
            format!("{:+}", y as i64 - x as i64),
        ]
    };
    let mut rows = vec![
        [
            "Calls".to_owned(),
            b.calls.to_string(),
            a.calls.to_string(),
            String::new(),
        ],
        [
            "Success rate (usable answers)".to_owned(),
            pct(b.success_rate),
            pct(a.success_rate),
            points(b.success_rate, a.success_rate),
        ],
        [
            "Real answers (no fallback)".to_owned(),
            pct(b.real_rate),
            pct(a.real_rate),
            points(b.real_rate, a.real_rate),
        ],
        [
            "Graceful failure rate".to_owned(),
            pct(b.graceful_rate),
            pct(a.graceful_rate),
            points(b.graceful_rate, a.graceful_rate),
        ],
        [
            "Auto-healed failures".to_owned(),
            pct(b.auto_healed),
            pct(a.auto_healed),
            points(b.auto_healed, a.auto_healed),
        ],
        [
            "p50 latency".to_owned(),
            ms(b.p50),
            ms(a.p50),
            latency_change(b.p50, a.p50),
        ],
        [
            "p99 latency".to_owned(),
            ms(b.p99),
            ms(a.p99),
            latency_change(b.p99, a.p99),
        ],
        [
            "MTTR (mean over the experiments)".to_owned(),
            mttr_text(bm),
            mttr_text(am),
            mttr_change,
        ],
    ];
    let mut push = |name: &str, [x, y, z]: [String; 3]| rows.push([name.to_owned(), x, y, z]);
    push(
        "Calls left hanging past the deadline",
        count(b.hung as u64, a.hung as u64),
    );
    push("Breaker trips", count(bc.breaker_trips, ac.breaker_trips));
    push("Retries", count(bc.retries, ac.retries));
    push("Fallback answers", count(bc.fallbacks, ac.fallbacks));
    push(
        "Calls rejected by a breaker",
        count(bc.breaker_rejections, ac.breaker_rejections),
    );
    push(
        "Calls rejected by a bulkhead",
        count(bc.bulkhead_rejections, ac.bulkhead_rejections),
    );
    push(
        "Attempts cut by the timeout",
        count(bc.timeouts, ac.timeouts),
    );
    push(
        "Faults injected by tower-chaos",
        count(bc.injected, ac.injected),
    );
    push(
        "Completions served by the LLM API",
        count(bc.llm_served, ac.llm_served),
    );
    rows
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The executive summary paragraphs.
#[must_use]
pub fn executive_summary(suite: &Suite, digest: &Digest) -> String {
    let (b, a) = (&digest.before, &digest.after);
    let (bm, am) = (
        mttr(&digest.before_experiments),
        mttr(&digest.after_experiments),
    );
    let confirmed = |e: &[ExperimentFigures]| e.iter().filter(|x| x.verdict() == "Yes").count();
    let issues: usize = digest
        .before_experiments
        .iter()
        .map(ExperimentFigures::issues)
        .sum();
    let fixed: usize = fixed_counts(digest).iter().map(|(_, f)| f).sum();
    let c = &suite.protected.counts;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "This report was written by the `reliability-report` demo from the figures of one run. \
         An agent gateway whose handlers call an LLM API (a token budget, {workers} workers) and a \
         tool server was driven by {agents} agents at {rate:.0} requests/s each through {n} chaos \
         experiments, twice: first with no protection, then behind the tower resilience family \
         (fallback → retry → circuit breaker → bulkhead → timeout, in front of each upstream). \
         {calls} calls were made in all.",
        workers = super::upstream::LLM_WORKERS,
        agents = suite.settings.agents,
        rate = suite.settings.rate_per_agent,
        n = SUITE.len(),
        calls = b.calls + a.calls,
    );
    let _ = writeln!(
        out,
        "\nWithout protection, {confirmed_before} of {n} hypotheses held and the run raised \
         {issues} issues: the success rate was {bs}, {bh} calls were left hanging past the \
         {deadline} ms deadline, and real answers took {bm} on average to come back after a fault. \
         With the protection stack, {confirmed_after} of {n} hypotheses held and {fixed} of those \
         {issues} issues were fixed: the success rate was {as_} ({dpts}), {ah} calls hung, and \
         real answers came back after {am} on average. The breakers opened {trips} times, the \
         retry layer retried {retries} calls and fallbacks answered {fallbacks} upstream calls.",
        confirmed_before = confirmed(&digest.before_experiments),
        confirmed_after = confirmed(&digest.after_experiments),
        n = SUITE.len(),
        bs = pct(b.success_rate),
        bh = b.hung,
        deadline = suite.settings.deadline.as_millis(),
        bm = mttr_text(bm),
        as_ = pct(a.success_rate),
        dpts = points(b.success_rate, a.success_rate),
        ah = a.hung,
        am = mttr_text(am),
        trips = c.breaker_trips,
        retries = c.retries,
        fallbacks = c.fallbacks,
    );
    let ready = a.success_rate.is_some_and(|r| r >= SUCCESS_TARGET) && a.hung == 0;
    let _ = writeln!(
        out,
        "\nCurrent state: {}. Time is compressed: the {} s outage ran in {:.1} s, and every \
         phase is seconds long; the figures compare the two runs, they are not production SLOs.",
        if ready {
            "across the suite, the protected gateway met the 95 % success-rate target and left no caller hanging"
        } else {
            "the protected gateway did not yet meet every target; see Remaining Risks"
        },
        OUTAGE_NOMINAL.as_secs(),
        suite.settings.outage().as_secs_f64(),
    );
    out
}

/// Per experiment: issues found without protection, and how many of them protection fixed.
fn fixed_counts(digest: &Digest) -> Vec<(usize, usize)> {
    digest
        .before_experiments
        .iter()
        .zip(&digest.after_experiments)
        .map(|(b, a)| {
            let found = b.issues();
            let fixed = b
                .checks
                .iter()
                .zip(&a.checks)
                .filter(|(x, y)| !x.passed && y.passed)
                .count();
            (found, fixed)
        })
        .collect()
}

/// The whole report; `chart` is the timeline's file name, linked from it.
#[must_use]
pub fn render(suite: &Suite, chart: &str) -> String {
    let digest = Digest::new(suite);
    let s = &suite.settings;
    let mut out = String::new();
    let _ = writeln!(out, "# Reliability Engineering Report\n");
    let _ = writeln!(
        out,
        "## System: agent gateway (LLM API + tool server) on 127.0.0.1"
    );
    let _ = writeln!(out, "## Report Date: {}", today());
    let _ = writeln!(
        out,
        "## Author: `reliability-report` (tower resilience family), seed {}\n",
        s.seed
    );
    let _ = writeln!(out, "---\n\n## Executive Summary\n");
    out.push_str(&executive_summary(suite, &digest));
    let _ = writeln!(
        out,
        "\n![Timeline: success rate, p99 latency and breaker state, unprotected beside protected]({chart})\n"
    );

    // Chaos testing summary.
    let _ = writeln!(
        out,
        "---\n\n## Chaos Testing Summary\n\n### Tests Conducted\n"
    );
    let fixed = fixed_counts(&digest);
    let rows: Vec<Vec<String>> = SUITE
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                (i + 1).to_string(),
                e.name.to_owned(),
                e.failure_mode.to_owned(),
                format!(
                    "{} → {}",
                    digest.before_experiments[i].verdict(),
                    digest.after_experiments[i].verdict()
                ),
                fixed[i].0.to_string(),
                format!("{}/{}", fixed[i].1, fixed[i].0),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "#",
            "Experiment",
            "Failure Mode",
            "Hypothesis Confirmed (unprotected → protected)",
            "Issues Found",
            "Fixed",
        ],
        &rows,
    );

    let _ = writeln!(out, "### Experiments: Expected vs Actual\n");
    for (i, e) in SUITE.iter().enumerate() {
        let (b, a) = (&digest.before_experiments[i], &digest.after_experiments[i]);
        let w = &suite.protected.windows[i];
        let _ = writeln!(out, "#### {}. {}\n", i + 1, e.name);
        let _ = writeln!(
            out,
            "- **Injection**: {} for {:.1} s, after {:.1} s of steady load; {:.1} s watched after it.",
            e.injection,
            w.fault_end - w.fault_start,
            w.fault_start - w.start,
            w.end - w.fault_end
        );
        let _ = writeln!(
            out,
            "- **Calls during the fault**: {} unprotected, {} protected.\n",
            b.during.calls, a.during.calls
        );
        let rows: Vec<Vec<String>> = b
            .checks
            .iter()
            .zip(&a.checks)
            .map(|(x, y)| {
                let mark = |c: &figures::Check| {
                    format!("{} {}", c.actual, if c.passed { "✓" } else { "✗" })
                };
                vec![x.behavior.clone(), x.expected.clone(), mark(x), mark(y)]
            })
            .collect();
        table(
            &mut out,
            &[
                "Behaviour",
                "Expected",
                "Actual (unprotected)",
                "Actual (protected)",
            ],
            &rows,
        );
        let _ = writeln!(
            out,
            "During the fault: p50 {} → {}, p99 {} → {}, real answers {} → {}.\n",
            ms(b.during.p50),
            ms(a.during.p50),
            ms(b.during.p99),
            ms(a.during.p99),
            pct(b.during.real_rate),
            pct(a.during.real_rate)
        );
        if e.kind == super::FaultKind::NoisyNeighbour {
            let _ = writeln!(
                out,
                "Other agents' p99 latency: steady {} → flood {} unprotected; steady {} → flood {} protected.\n",
                ms(b.others.0.p99),
                ms(b.others.1.p99),
                ms(a.others.0.p99),
                ms(a.others.1.p99)
            );
        }
        let _ = writeln!(
            out,
            "Hypothesis confirmed? unprotected: **{}**, protected: **{}**\n",
            b.verdict(),
            a.verdict()
        );
    }

    key_findings(&mut out, &digest);
    patterns(&mut out, suite);
    metrics(&mut out, suite, &digest);
    risks(&mut out, suite, &digest);
    runbook(&mut out, suite);
    out
}

/// The failed checks of an experiment without protection, side by side with the protected run's.
fn failed(digest: &Digest, i: usize) -> Vec<(&figures::Check, &figures::Check)> {
    digest.before_experiments[i]
        .checks
        .iter()
        .zip(&digest.after_experiments[i].checks)
        .filter(|(x, _)| !x.passed)
        .collect()
}

fn impact(check: &figures::Check) -> &'static str {
    if check.behavior.starts_with("Graceful") {
        "callers waited out the whole deadline instead of getting an answer"
    } else if check.behavior.starts_with("Success") {
        "a fault in one dependency reached the users of the gateway"
    } else if check.behavior.contains("MTTR") {
        "users kept seeing failures after the dependency was healthy again"
    } else if check.behavior.starts_with("Failure detected") {
        "nothing noticed the failure: every call kept going to the failing dependency"
    } else {
        "the fault degraded the answers of the gateway"
    }
}

fn key_findings(out: &mut String, digest: &Digest) {
    let _ = writeln!(out, "### Key Findings\n");
    let mut n = 0;
    for (i, e) in SUITE.iter().enumerate() {
        let failed = failed(digest, i);
        let Some((first, _)) = failed.first() else {
            continue;
        };
        n += 1;
        let without: Vec<String> = failed
            .iter()
            .map(|(x, _)| format!("{}: {} (expected {})", x.behavior, x.actual, x.expected))
            .collect();
        let with: Vec<String> = failed
            .iter()
            .map(|(_, y)| {
                format!(
                    "{}: {}{}",
                    y.behavior,
                    y.actual,
                    if y.passed { "" } else { " (still short)" }
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{n}. **{}**: without protection, {}.\n   - **Impact**: {}\n   - **Evidence**: experiment {}; with the protection stack, {}.\n",
            e.name,
            without.join("; "),
            impact(first),
            i + 1,
            with.join("; "),
        );
    }
    if n == 0 {
        let _ = writeln!(
            out,
            "No hypothesis failed without protection in this run.\n"
        );
    }
    let _ = writeln!(out, "### Critical Issues Resolved\n");
    let mut resolved = 0;
    for (i, e) in SUITE.iter().enumerate() {
        let fixed: Vec<_> = failed(digest, i)
            .into_iter()
            .filter(|(_, y)| y.passed)
            .collect();
        if fixed.is_empty() {
            continue;
        }
        resolved += 1;
        let high = fixed
            .iter()
            .any(|(x, _)| x.behavior.starts_with("Graceful") || x.behavior.starts_with("Success"));
        let issue: Vec<String> = fixed
            .iter()
            .map(|(x, _)| format!("{} {}", x.behavior, x.actual))
            .collect();
        let verified: Vec<String> = fixed
            .iter()
            .map(|(_, y)| format!("{} {}", y.behavior, y.actual))
            .collect();
        let _ = writeln!(
            out,
            "{resolved}. **Issue**: {}: {}.\n   - **Severity**: {}\n   - **Fix Implemented**: {}\n   - **Verification**: the same experiment with the protection stack: {}.\n",
            e.name,
            issue.join("; "),
            if high { "High" } else { "Medium" },
            fix_for(e.kind),
            verified.join("; "),
        );
    }
    if resolved == 0 {
        let _ = writeln!(out, "None in this run.\n");
    }
}

fn fix_for(kind: super::FaultKind) -> &'static str {
    use super::FaultKind::*;
    match kind {
        Errors30 => {
            "retry with jittered exponential back-off (tower-heal) under the breaker's failure-rate threshold"
        }
        LatencySpike => {
            "a per-attempt timeout, the breaker opening on timeouts, and a fallback to the last good answer"
        }
        RateLimitStorm => {
            "the breaker stops calling a throttled API so its budget refills; the fallback answers meanwhile"
        }
        ToolOutage => {
            "the timeout and breaker fail fast; the fallback answers from the last good result"
        }
        NoisyNeighbour => {
            "a per-agent bulkhead (tower-bulkhead keyed by agent) caps each agent's share of the LLM API"
        }
    }
}

fn patterns(out: &mut String, suite: &Suite) {
    let _ = writeln!(out, "---\n\n## Reliability Patterns Implemented\n");
    let Some(p) = &suite.protected.patterns else {
        return;
    };
    let _ = writeln!(
        out,
        "Read from the layers' configuration and handles at the end of the protected run.\n"
    );
    let _ = writeln!(out, "### Circuit Breakers\n");
    let c = &suite.protected.counts;
    let rows: Vec<Vec<String>> = p.breakers.iter().map(|b| b.to_vec()).collect();
    table(
        out,
        &[
            "Name",
            "Service Protected",
            "Threshold",
            "Timeout",
            "Status",
            "Verified",
        ],
        &rows,
    );
    let _ = writeln!(
        out,
        "**Implementation Details**: tower-breaker `CircuitBreakerLayer` in each client stack, \
         classifying answers with `HttpStatus` (for the LLM API, whose provider charges calls made while throttled, `failure_on(429)` too); state read \
         from `CircuitBreakerHandle::state`; transitions counted from `on_transition`; metrics \
         `breaker_state`, `breaker_transitions_total`, `breaker_calls_total`.\n"
    );
    let _ = writeln!(out, "### Self-Healing Mechanisms\n");
    let rows = vec![
        vec![
            "Automatic retry".to_owned(),
            p.retry.clone(),
            format!("{} retries", c.retries),
        ],
        vec![
            "Automatic fallback".to_owned(),
            p.fallback.clone(),
            format!("{} fallback answers", c.fallbacks),
        ],
        vec![
            "Per-attempt timeout".to_owned(),
            format!(
                "{} ms per attempt to the LLM API, {} ms to the tool server",
                p.timeouts.0.as_millis(),
                p.timeouts.1.as_millis()
            ),
            format!("{} attempts cut", c.timeouts),
        ],
    ];
    table(
        out,
        &["Mechanism", "Configuration", "Used in the suite"],
        &rows,
    );
    let _ = writeln!(out, "### Bulkhead Isolation\n");
    let rows: Vec<Vec<String>> = p.bulkheads.iter().map(|b| b.to_vec()).collect();
    table(
        out,
        &["Name", "Scope", "Max concurrent", "Retry-After when full"],
        &rows,
    );
    let _ = writeln!(
        out,
        "{} calls were refused by a full compartment in the protected run.\n",
        c.bulkhead_rejections
    );
}

fn metrics(out: &mut String, suite: &Suite, digest: &Digest) {
    let _ = writeln!(
        out,
        "---\n\n## Reliability Metrics\n\n### Current State (After Hardening)\n"
    );
    let a = &digest.after;
    let am = mttr(&digest.after_experiments);
    let status = |ok: bool| if ok { "✓" } else { "✗" }.to_owned();
    let rows = vec![
        vec![
            "Success rate".to_owned(),
            pct(a.success_rate),
            format!("≥ {:.0} %", SUCCESS_TARGET * 100.0),
            status(a.success_rate.is_some_and(|r| r >= SUCCESS_TARGET)),
        ],
        vec![
            "MTTR (compressed time)".to_owned(),
            mttr_text(am),
            format!("< {:.0} ms", MTTR_TARGET * 1000.0),
            status(am.1 && am.0 < MTTR_TARGET),
        ],
        vec![
            "Graceful failure rate".to_owned(),
            pct(a.graceful_rate),
            "≥ 80 %".to_owned(),
            status(a.graceful_rate.is_some_and(|r| r >= 0.8)),
        ],
        vec![
            "Auto-healing success rate".to_owned(),
            pct(a.auto_healed),
            "≥ 75 %".to_owned(),
            status(a.auto_healed.is_some_and(|r| r >= 0.75)),
        ],
        vec![
            "p99 latency".to_owned(),
            ms(a.p99),
            format!("< {} ms", suite.settings.deadline.as_millis()),
            status(
                a.p99
                    .is_some_and(|p| p < suite.settings.deadline.as_secs_f64() * 0.999),
            ),
        ],
    ];
    table(out, &["Metric", "Value", "Target", "Status"], &rows);
    let _ = writeln!(out, "### Before vs After\n");
    let rows: Vec<Vec<String>> = before_after(suite, digest)
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    table(
        out,
        &[
            "Metric",
            "Before (unprotected)",
            "After (protected)",
            "Change",
        ],
        &rows,
    );
    let _ = writeln!(
        out,
        "**How these are measured**: success rate counts usable answers (a fallback's included, \
         marked degraded); real answers count only answers from both upstreams. A graceful \
         failure is a call without a real answer that still got an answer (degraded or an error) \
         before the {} ms deadline. An auto-healed failure is a call that met at least one failed \
         attempt and still ended with a real answer. MTTR is the time from the end of a fault to \
         the first of {RECOVERY_RUN} real answers in a row (fallbacks and rejections do not count), \
         averaged over the experiments; \"≥\" means an experiment did not recover in the time \
         watched, which then counts as its MTTR.\n",
        suite.settings.deadline.as_millis()
    );
}

fn risks(out: &mut String, suite: &Suite, digest: &Digest) {
    let _ = writeln!(out, "---\n\n## Remaining Risks\n");
    let mut rows = Vec::new();
    for (i, e) in SUITE.iter().enumerate() {
        for c in digest.after_experiments[i]
            .checks
            .iter()
            .filter(|c| !c.passed)
        {
            rows.push(vec![
                format!("{}: {}", e.name, c.behavior.to_lowercase()),
                "Measured".to_owned(),
                format!("{} (expected {})", c.actual, c.expected),
                fix_for(e.kind).to_owned(),
                "Tune the layer's configuration and re-run this experiment".to_owned(),
            ]);
        }
    }
    let a = &digest.after;
    rows.push(vec![
        "Users receive stale or canned answers during outages".to_owned(),
        "Measured".to_owned(),
        format!(
            "{} of calls answered degraded",
            pct(a.success_rate.zip(a.real_rate).map(|(s, r)| s - r))
        ),
        "Answers are marked degraded".to_owned(),
        "Alert on the degraded share; show it in the UI".to_owned(),
    ]);
    rows.push(vec![
        "An outage longer than the fallback cache can cover".to_owned(),
        "Low".to_owned(),
        "High".to_owned(),
        "Breaker + canned answer".to_owned(),
        "Alert on a breaker open longer than 5 minutes (examples/ops)".to_owned(),
    ]);
    table(
        out,
        &[
            "Risk",
            "Likelihood",
            "Impact",
            "Current Mitigation",
            "Additional Mitigation Needed",
        ],
        &rows,
    );

    let _ = writeln!(
        out,
        "---\n\n## Recommendations\n\n### Immediate (Before Production)\n"
    );
    let mut n = 0;
    for (i, e) in SUITE.iter().enumerate() {
        if digest.after_experiments[i].issues() > 0 {
            n += 1;
            let _ = writeln!(
                out,
                "{n}. **{}**: still {} after hardening; {}.",
                e.name,
                digest.after_experiments[i].verdict().to_lowercase(),
                fix_for(e.kind)
            );
        }
    }
    n += 1;
    let _ = writeln!(
        out,
        "{n}. **Set up monitoring**: load `examples/ops/grafana-dashboard.json` and the alert rules in `examples/ops/`."
    );
    n += 1;
    let _ = writeln!(
        out,
        "{n}. **Test at scale**: re-run this suite with production-level load (`--seed` reproduces the injected faults).\n"
    );
    let _ = writeln!(out, "### Short-term (First Month of Production)\n");
    let _ = writeln!(
        out,
        "1. **Refine thresholds**: the breakers tripped {} times here; tune `failure_rate_threshold` and `reset_timeout` on production traffic.\n2. **Expand fallbacks**: {} of the protected run's calls were answered degraded; give each degraded path a better fallback.\n",
        suite.protected.counts.breaker_trips,
        pct(a.success_rate.zip(a.real_rate).map(|(s, r)| s - r)),
    );
    let _ = writeln!(out, "### Long-term (Ongoing)\n");
    let _ = writeln!(
        out,
        "1. **Regular chaos testing**: run this suite on every release; compare its report with the last one.\n2. **Metrics review**: review the before/after table each quarter.\n"
    );
}

fn runbook(out: &mut String, suite: &Suite) {
    let reset = suite
        .protected
        .patterns
        .as_ref()
        .and_then(|p| p.breakers.first().map(|b| b[3].clone()))
        .unwrap_or_default();
    let _ = writeln!(out, "---\n\n## Appendix: Incident Runbook\n");
    let _ = writeln!(
        out,
        "The alert rules in `examples/ops/` link to the full runbook, `examples/ops/RUNBOOK.md`.\n"
    );
    let _ = writeln!(out, "### Incident: A dependency is down\n");
    let _ = writeln!(
        out,
        "**Detection**:\n- `BreakerOpenTooLong`: a breaker open for more than 5 minutes (`breaker_state`)\n- `SuccessRateLow`: success rate under 95 %\n- Degraded answers rising\n"
    );
    let _ = writeln!(
        out,
        "**Investigation**:\n1. Which breaker is open? `breaker_state` by `name` on the dashboard.\n2. Is the dependency down, slow or throttling? `breaker_calls_total` by `outcome`; `heal_retries_refused_total`.\n3. Is one agent flooding? `bulkhead_rejected_total` by `key`.\n4. Is chaos armed? `chaos_armed` must be 0 in production.\n"
    );
    let _ = writeln!(
        out,
        "**Resolution**:\n1. An external outage: check that fallbacks answer; the breaker probes every {reset} and closes by itself once the dependency answers.\n2. A throttled API: do not force the breaker closed; the budget refills only if calls stop.\n3. A noisy agent: lower its compartment (`KeyedBulkheadHandle::set_max_concurrent`) or block it.\n4. Chaos left armed: disarm it (`ChaosHandle::disarm`, or the chaos proxy's admin route).\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_that_rounds_to_nothing_is_never_negative_zero() {
        assert_eq!(latency_change(Some(0.025), Some(0.0249)), "+0 ms (+0 %)");
        assert_eq!(points(Some(0.5), Some(0.4999)), "+0.0 points");
        assert_eq!(latency_change(Some(1.0), Some(0.5)), "-500 ms (-50 %)");
    }
}

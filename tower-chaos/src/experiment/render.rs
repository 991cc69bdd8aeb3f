//! The reports as Markdown, section by section, in the "Chaos Test Results" form.

use std::fmt::{self, Write as _};

use super::Load;
use super::format::{
    cell, duration, duration_exact, duration_vs, line, number, percent, percent_exact, percent_vs,
};
use super::report::{Percentiles, Report, SuiteReport, Verdict};

fn pass(passed: bool) -> &'static str {
    if passed { "Pass" } else { "Fail" }
}

fn latency(p: Option<Percentiles>) -> String {
    p.map_or_else(
        || "no answers".to_owned(),
        |p| {
            format!(
                "{} / {} / {}",
                duration(p.p50),
                duration(p.p95),
                duration(p.p99)
            )
        },
    )
}

fn or_none(items: Vec<String>) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join("; ")
    }
}

/// Lines shown in full at each end of the captured logs.
const HEAD: usize = 12;
const TAIL: usize = 6;

pub(crate) fn report(r: &Report, f: &mut String) -> fmt::Result {
    writeln!(f, "# Chaos Test Results: {}\n", line(&r.name))?;
    execution(r, f)?;
    steady(r, f)?;
    injection(r, f)?;
    writeln!(f, "## Results\n")?;
    expected_vs_actual(r, f)?;
    measured(r, f)?;
    observations(r, f)?;
    logs(r, f)?;
    issues(r, f)?;
    recommendations(r, f)?;
    rollback(r, f)?;
    verdict(r, f)
}

fn execution(r: &Report, f: &mut String) -> fmt::Result {
    writeln!(f, "## Execution Details")?;
    writeln!(f, "- **Date:** {}", line(&r.date))?;
    writeln!(f, "- **Experimenter:** {}", line(&r.experimenter))?;
    writeln!(f, "- **Duration:** {}", duration(r.elapsed))?;
    writeln!(f, "- **Environment:** {}\n", line(&r.environment))?;
    if !r.hypothesis.is_empty() {
        writeln!(f, "## Hypothesis\n{}\n", r.hypothesis)?;
    }
    Ok(())
}

fn steady(r: &Report, f: &mut String) -> fmt::Result {
    let s = &r.steady;
    writeln!(f, "## Steady State")?;
    writeln!(f, "| Check | Expected | Actual | Pass/Fail |")?;
    writeln!(f, "|-------|----------|--------|-----------|")?;
    let (actual, passed) = match s.success_rate {
        Some(rate) => (
            percent_vs(rate, s.min_success_rate),
            rate >= s.min_success_rate,
        ),
        None => ("no calls".to_owned(), false),
    };
    writeln!(
        f,
        "| Success rate ({} calls) | ≥ {} | {actual} | {} |",
        s.calls,
        percent_exact(s.min_success_rate),
        pass(passed)
    )?;
    if let Some(max) = s.max_p99 {
        let (actual, passed) = match s.p99 {
            Some(p99) => (duration_vs(p99, max), p99 < max),
            None => ("no calls".to_owned(), false),
        };
        writeln!(
            f,
            "| p99 latency | < {} | {actual} | {} |",
            duration_exact(max),
            pass(passed)
        )?;
    }
    writeln!(f)
}

fn injection(r: &Report, f: &mut String) -> fmt::Result {
    let o = &r.observed;
    writeln!(f, "## Failure Injection")?;
    if !r.method.is_empty() {
        writeln!(f, "- **Method:** {}", line(&r.method))?;
    }
    let load = match r.load {
        Load::Calls(n) => format!("{n} calls"),
        Load::Duration(d) => duration(d),
    };
    let callers = if r.callers > 1 {
        format!(" by each of {} concurrent callers", r.callers)
    } else {
        String::new()
    };
    if r.steady.held {
        writeln!(
            f,
            "- **Duration:** {load} planned, one call every {}{callers}; ran {}",
            duration(r.interval),
            duration(o.injection_time)
        )?;
    } else {
        writeln!(
            f,
            "- **Duration:** {load} planned, one call every {}{callers}; not run",
            duration(r.interval)
        )?;
    }
    if !r.scope.is_empty() {
        writeln!(f, "- **Scope:** {}", line(&r.scope))?;
    }
    let injected: Vec<String> = r
        .injected
        .iter()
        .map(|(name, n)| format!("`{}` × {n}", line(name)))
        .collect();
    let seed = match (&r.target_layer, r.seed) {
        (Some(target), Some(seed)) if *target != r.layer => {
            format!(" (the experiment targets `{}`, seed {seed})", line(target))
        }
        (_, Some(seed)) => format!(" (seed {seed})"),
        (_, None) => String::new(),
    };
    write!(
        f,
        "- **Chaos layer:** `{}`{seed}; faults injected: {}",
        line(&r.layer),
        if injected.is_empty() {
            "none".to_owned()
        } else {
            injected.join(", ")
        }
    )?;
    if o.overflow > 0 {
        write!(f, "; not injected past `max_active_faults`: {}", o.overflow)?;
    }
    writeln!(f, "\n")
}

fn expected_vs_actual(r: &Report, f: &mut String) -> fmt::Result {
    writeln!(f, "### Expected vs Actual\n")?;
    writeln!(f, "| Behavior | Expected | Actual | Pass/Fail |")?;
    writeln!(f, "|----------|----------|--------|-----------|")?;
    for p in &r.probes {
        writeln!(
            f,
            "| {} | {} | {} | {} |",
            cell(&p.behavior),
            cell(&p.expected),
            cell(&p.actual),
            pass(p.passed)
        )?;
    }
    if r.probes.is_empty() {
        writeln!(f, "| (not run) | | | |")?;
    }
    writeln!(f)
}

fn measured(r: &Report, f: &mut String) -> fmt::Result {
    let o = &r.observed;
    writeln!(f, "### Measured\n")?;
    writeln!(f, "| Figure | Injection | Recovery |")?;
    writeln!(f, "|--------|-----------|----------|")?;
    let rec = o.recovery.as_ref();
    let recovery = |v: &dyn Fn(&super::report::RecoveryObserved) -> String| {
        rec.map_or_else(|| "not measured".to_owned(), v)
    };
    writeln!(
        f,
        "| Calls | {} | {} |",
        o.calls,
        recovery(&|r| r.calls.to_string())
    )?;
    writeln!(
        f,
        "| Real answers (from the dependency) | {} | {} |",
        o.successes,
        recovery(&|r| r.successes.to_string())
    )?;
    writeln!(
        f,
        "| Fallback answers | {} | {} |",
        o.fallback_answers,
        recovery(&|r| r.fallback_answers.to_string())
    )?;
    writeln!(
        f,
        "| Failed (rejected included) | {} | {} |",
        o.failures,
        recovery(&|r| r.failures.to_string())
    )?;
    let rate = |r: Option<f64>| r.map_or_else(|| "no calls".to_owned(), percent);
    writeln!(
        f,
        "| Success rate (real + fallback) | {} | |",
        rate(o.success_rate)
    )?;
    writeln!(f, "| Real success rate | {} | |", rate(o.real_success_rate))?;
    writeln!(
        f,
        "| Latency p50 / p95 / p99, all answers | {} | |",
        latency(o.latency)
    )?;
    writeln!(
        f,
        "| Latency p50 / p95 / p99, real answers | {} | |",
        latency(o.real_latency)
    )?;
    let errors: Vec<String> = o
        .errors_by_kind
        .iter()
        .map(|(kind, n)| format!("{kind}: {n}"))
        .collect();
    writeln!(f, "| Errors by kind | {} | |", cell(&or_none(errors)))?;
    writeln!(f, "| Rejected | {} | |", o.rejected)?;
    writeln!(
        f,
        "| Retried | {} | {} |",
        o.retried,
        recovery(&|r| r.retried.to_string())
    )?;
    writeln!(
        f,
        "| Fallbacks reported | {} | {} |",
        o.fallbacks,
        recovery(&|r| r.fallbacks.to_string())
    )?;
    let transitions = |ts: &[super::TransitionRecord]| {
        cell(&or_none(
            ts.iter()
                .map(|t| format!("{} → {} at {}", t.from, t.to, duration(t.at)))
                .collect(),
        ))
    };
    writeln!(
        f,
        "| Breaker transitions (since injection start) | {} | {} |",
        transitions(&o.transitions),
        recovery(&|r| transitions(&r.transitions))
    )?;
    writeln!(
        f,
        "| Time to detect | {} | |",
        o.time_to_detect
            .map_or_else(|| "not detected".to_owned(), duration)
    )?;
    let recovered = match (o.time_to_recover, rec) {
        (Some(at), Some(r)) => format!("{} ({} real answers in a row)", duration(at), r.needed),
        (Some(at), None) => duration(at),
        (None, Some(r)) => format!("not recovered after {}", duration(r.observed_for)),
        (None, None) => "not measured".to_owned(),
    };
    writeln!(f, "| Time to recover | | {recovered} |\n")
}

fn observations(r: &Report, f: &mut String) -> fmt::Result {
    writeln!(f, "### Observations")?;
    let failed: Vec<&str> = r
        .probes
        .iter()
        .filter(|p| !p.passed)
        .map(|p| p.behavior.as_str())
        .collect();
    for observation in &r.observations {
        writeln!(f, "- {}", line(observation))?;
    }
    if !failed.is_empty() {
        writeln!(f, "- Expectations not met: {}.", line(&failed.join(", ")))?;
    }
    if r.observations.is_empty() && failed.is_empty() {
        writeln!(f, "- Every expectation held.")?;
    }
    writeln!(f)
}

fn logs(r: &Report, f: &mut String) -> fmt::Result {
    let logs = &r.logs;
    writeln!(f, "### Logs Captured")?;
    writeln!(f, "```text")?;
    let counts: Vec<String> = logs
        .by_message
        .iter()
        .map(|(message, n)| format!("{n} × {message}"))
        .collect();
    writeln!(
        f,
        "{} chaos events (target tower_chaos){}{}",
        logs.total,
        if counts.is_empty() { "" } else { ": " },
        counts.join(", ")
    )?;
    let lines = &logs.lines;
    if lines.len() <= HEAD + TAIL {
        for l in lines {
            writeln!(f, "{}", line(&l.to_string()).replace("```", "'''"))?;
        }
    } else {
        for l in &lines[..HEAD] {
            writeln!(f, "{}", line(&l.to_string()).replace("```", "'''"))?;
        }
        writeln!(f, "… {} more …", logs.total - (HEAD + TAIL) as u64)?;
        for l in &lines[lines.len() - TAIL..] {
            writeln!(f, "{}", line(&l.to_string()).replace("```", "'''"))?;
        }
    }
    writeln!(f, "```\n")
}

fn issues(r: &Report, f: &mut String) -> fmt::Result {
    writeln!(f, "### Issues Found")?;
    if r.issues.is_empty() {
        writeln!(f, "None.")?;
    }
    for (i, issue) in r.issues.iter().enumerate() {
        writeln!(f, "{}. **Issue:** {}", i + 1, line(&issue.description))?;
        writeln!(f, "   - **Severity:** {}", issue.severity.as_str())?;
        writeln!(f, "   - **Fix needed:** {}", line(&issue.fix))?;
    }
    writeln!(f)
}

fn recommendations(r: &Report, f: &mut String) -> fmt::Result {
    writeln!(f, "### Recommendations")?;
    for (i, recommendation) in r.recommendations.iter().enumerate() {
        writeln!(f, "{}. {}", i + 1, line(recommendation))?;
    }
    writeln!(f)
}

fn rollback(r: &Report, f: &mut String) -> fmt::Result {
    writeln!(f, "### Rollback")?;
    writeln!(
        f,
        "1. The runner disarmed the chaos layer `{}`.",
        line(&r.layer)
    )?;
    for (i, step) in r.rollback.iter().enumerate() {
        writeln!(f, "{}. {}", i + 2, line(step))?;
    }
    writeln!(f)
}

fn verdict(r: &Report, f: &mut String) -> fmt::Result {
    let passed = r.probes.iter().filter(|p| p.passed).count();
    let failed: Vec<&str> = r
        .probes
        .iter()
        .filter(|p| !p.passed)
        .map(|p| p.behavior.as_str())
        .collect();
    writeln!(f, "### Score")?;
    if r.verdict == Verdict::Inconclusive {
        writeln!(f, "**Not scored**: the run has no evidence either way.\n")?;
    } else {
        writeln!(
            f,
            "**{} / 100** (weighted over {} probes; {passed} passed)\n",
            number(r.score, 0),
            r.probes.len()
        )?;
    }
    writeln!(f, "## Hypothesis Confirmed?")?;
    let o = &r.observed;
    let why = match r.verdict {
        _ if !r.steady.held && r.steady.calls == 0 => {
            "the steady state was not measured, so nothing was injected.".to_owned()
        }
        _ if !r.steady.held => "the steady state did not hold, so nothing was injected.".to_owned(),
        Verdict::Inconclusive if o.calls == 0 => "the injection phase made no calls.".to_owned(),
        Verdict::Inconclusive => format!(
            "no fault was injected during the {} calls, so the run says nothing about the hypothesis.",
            o.calls
        ),
        Verdict::Yes => format!(
            "all {} expectations held, with {} faults injected.",
            r.probes.len(),
            o.injected
        ),
        Verdict::Partially | Verdict::No => format!(
            "{passed} of {} expectations held; not met: {}.",
            r.probes.len(),
            line(&failed.join(", "))
        ),
    };
    writeln!(f, "**{}**: {why}", r.verdict.as_str())
}

pub(crate) fn suite(s: &SuiteReport, f: &mut String) -> fmt::Result {
    writeln!(f, "# Chaos Test Suite: {}\n", line(&s.title))?;
    writeln!(f, "## Tests Conducted\n")?;
    writeln!(
        f,
        "| Experiment | Failure mode | Hypothesis confirmed | Issues found |"
    )?;
    writeln!(
        f,
        "|------------|--------------|----------------------|--------------|"
    )?;
    for r in &s.reports {
        let issues: Vec<String> = r
            .issues
            .iter()
            .map(|i| {
                let what = i.description.trim_end_matches('.');
                format!("{what} ({})", i.severity.as_str())
            })
            .collect();
        writeln!(
            f,
            "| {} | {} | {} | {} |",
            cell(&r.name),
            cell(&r.failure_mode()),
            r.verdict.as_str(),
            if issues.is_empty() {
                "none".to_owned()
            } else {
                cell(&format!("{}: {}", issues.len(), issues.join("; ")))
            }
        )?;
    }
    if s.reports.is_empty() {
        writeln!(f, "| (none) | | | |")?;
    }
    for r in &s.reports {
        writeln!(f, "\n---\n")?;
        // One level down, under the suite's title.
        let mut one = String::new();
        report(r, &mut one)?;
        let mut fenced = false;
        for l in one.lines() {
            fenced ^= l.starts_with("```");
            if l.starts_with('#') && !fenced {
                writeln!(f, "#{l}")?;
            } else {
                writeln!(f, "{l}")?;
            }
        }
    }
    Ok(())
}

//! The `reliability-report` demo's core, with a short suite, over 127.0.0.1: the report has
//! every section, its figures are the run's, and the protection stack beats no protection.
//!
//! Real servers and real time (a few seconds a run): the point is the stack over real sockets.

use examples::reliability::figures::{self, pct};
use examples::reliability::report::{self, Digest};
use examples::reliability::{Outcome, Progress, SUITE, Settings, chart, run_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_suite_writes_the_whole_report_and_protection_wins() {
    let settings = Settings::quick(7);
    let mut started = 0;
    let mut finished = 0;
    let suite = run_suite(&settings, &mut |event: Progress<'_>| match event {
        Progress::Started { .. } => started += 1,
        Progress::Finished => finished += 1,
        Progress::Tick { .. } => {}
    })
    .await
    .expect("the suite runs");
    assert_eq!((started, finished), (2 * SUITE.len(), 2 * SUITE.len()));

    for run in [&suite.unprotected, &suite.protected] {
        assert_eq!(run.windows.len(), SUITE.len());
        for (i, w) in run.windows.iter().enumerate() {
            assert!(w.start < w.fault_start && w.fault_start < w.fault_end && w.fault_end < w.end);
            assert!(
                run.calls.iter().any(|c| c.experiment == i
                    && c.start >= w.fault_start
                    && c.start < w.fault_end),
                "experiment {i} has calls during its fault"
            );
        }
    }
    // Only the protected run has breakers to sample and a configuration to print.
    assert!(suite.unprotected.samples.is_empty() && suite.unprotected.patterns.is_none());
    assert!(!suite.protected.samples.is_empty() && suite.protected.patterns.is_some());

    let markdown = report::render(&suite, "timeline.svg");
    for section in [
        "# Reliability Engineering Report",
        "## Executive Summary",
        "## Chaos Testing Summary",
        "### Tests Conducted",
        "### Experiments: Expected vs Actual",
        "### Key Findings",
        "### Critical Issues Resolved",
        "## Reliability Patterns Implemented",
        "### Circuit Breakers",
        "### Self-Healing Mechanisms",
        "### Bulkhead Isolation",
        "## Reliability Metrics",
        "### Before vs After",
        "## Remaining Risks",
        "## Recommendations",
        "## Appendix: Incident Runbook",
        "](timeline.svg)",
    ] {
        assert!(markdown.contains(section), "the report has {section:?}");
    }
    for experiment in SUITE {
        assert!(markdown.contains(experiment.name));
    }
    assert!(!markdown.to_lowercase().contains("course"));

    // The figures printed are the ones computed from the calls.
    let digest = Digest::new(&suite);
    let usable = |run: &examples::reliability::Run| {
        run.calls
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Real | Outcome::Degraded))
            .count() as f64
            / run.calls.len() as f64
    };
    assert_eq!(digest.before.success_rate, Some(usable(&suite.unprotected)));
    assert_eq!(digest.after.success_rate, Some(usable(&suite.protected)));
    let row = format!(
        "| Success rate (usable answers) | {} | {} |",
        pct(digest.before.success_rate),
        pct(digest.after.success_rate)
    );
    assert!(markdown.contains(&row), "{row}");

    let before = digest.before.success_rate.expect("calls were made");
    let after = digest.after.success_rate.expect("calls were made");
    assert!(
        after > before,
        "protected {after} beats unprotected {before}"
    );
    // Without protection the outage leaves callers hanging; behind the stack, fewer (none,
    // unless the machine is too loaded to answer within the deadline).
    assert!(digest.before.hung > 0);
    assert!(digest.after.hung < digest.before.hung);
    let (before_mttr, _) = figures::mttr(&digest.before_experiments);
    let (after_mttr, _) = figures::mttr(&digest.after_experiments);
    assert!(
        after_mttr < before_mttr,
        "MTTR {after_mttr} < {before_mttr}"
    );

    // The chart is an SVG drawn from the same runs.
    let path =
        std::env::temp_dir().join(format!("reliability-timeline-{}.svg", std::process::id()));
    chart::render_svg(&suite, &path).expect("the chart renders");
    let svg = std::fs::read_to_string(&path).expect("the chart is written");
    let _ = std::fs::remove_file(&path);
    assert!(
        svg.starts_with("<svg") && svg.contains("unprotected") && svg.contains("Breaker state")
    );
}

/// The README's summary is the committed run's: every row of its table is in the committed
/// report, and the chart it shows is there.
#[test]
fn the_readme_shows_figures_of_the_committed_run() {
    let readme = include_str!("../../README.md");
    let report = include_str!("../report/reliability-engineering-report.md");
    assert!(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("report/reliability-timeline.svg")
            .is_file()
    );
    assert!(readme.contains("(examples/report/reliability-timeline.svg)"));
    let rows: Vec<Vec<&str>> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| metric | unprotected | protected |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert!(rows.len() >= 5, "the README shows a summary table");
    for row in rows {
        let [label, before, after] = row[..] else {
            panic!("three cells: {row:?}")
        };
        if label == "Hypotheses confirmed" {
            assert!(report.contains(&format!("Without protection, {before} hypotheses held")));
            assert!(report.contains(&format!(
                "With the protection stack, {after} hypotheses held"
            )));
            continue;
        }
        let line = format!("| {label} | {before} | {after} |");
        assert!(
            report.lines().any(|l| l.starts_with(&line)),
            "the report has {line}"
        );
    }
}

/// A run without a single call (no agents) renders "n/a" figures, not a panic or a made-up 0.
#[test]
fn a_run_without_calls_renders_without_figures() {
    use examples::reliability::{LayerCounts, Run, Suite, Window};
    let windows: Vec<Window> = (0..SUITE.len())
        .map(|i| {
            let start = i as f64 * 4.0;
            Window {
                start,
                fault_start: start + 1.0,
                fault_end: start + 2.0,
                end: start + 3.0,
            }
        })
        .collect();
    let run = |protected| Run {
        protected,
        calls: Vec::new(),
        windows: windows.clone(),
        samples: Vec::new(),
        counts: LayerCounts::default(),
        patterns: None,
    };
    let suite = Suite {
        settings: Settings {
            agents: 0,
            ..Settings::quick(1)
        },
        unprotected: run(false),
        protected: run(true),
    };
    let markdown = report::render(&suite, "t.svg");
    assert!(markdown.contains("| Success rate (usable answers) | n/a | n/a |"));
    assert!(markdown.contains("## Appendix: Incident Runbook"));
    let digest = Digest::new(&suite);
    assert!(digest.after_experiments.iter().all(|e| e.verdict() == "No"));
    let path = std::env::temp_dir().join(format!("empty-timeline-{}.svg", std::process::id()));
    chart::render_svg(&suite, &path).expect("an empty chart renders");
    let _ = std::fs::remove_file(&path);
}

//! The alert rules and the Grafana dashboard in `examples/ops/` use only metric names the crates
//! register, and every alert links to a section of the runbook that exists.

use std::collections::BTreeSet;

const SOURCES: [&str; 5] = [
    include_str!("../../tower-breaker/src/metrics.rs"),
    include_str!("../../tower-bulkhead/src/metrics.rs"),
    include_str!("../../tower-chaos/src/metrics.rs"),
    include_str!("../../tower-heal/src/metrics.rs"),
    include_str!("../../tower-heal/src/metrics/healing.rs"),
];
const RULES: &str = include_str!("../ops/tower-family.rules.yml");
const DASHBOARD: &str = include_str!("../ops/grafana-dashboard.json");
const RUNBOOK: &str = include_str!("../ops/RUNBOOK.md");

/// PromQL words that are not metric names.
const PROMQL: [&str; 20] = [
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "by",
    "without",
    "and",
    "or",
    "unless",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "topk",
];

/// The names the crates register: their `pub const NAME: &str = "…"` in `metrics.rs`.
fn registered() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in SOURCES {
        for line in source.lines() {
            let line = line.trim();
            if line.starts_with("pub const") && line.contains(": &str = \"") {
                let name = line.split('"').nth(1).expect("a quoted name");
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Drops quoted strings, `{…}` matchers, `[…]` ranges and the label lists of `by (…)`-like
/// clauses, then returns the identifiers left.
fn identifiers(expr: &str) -> Vec<String> {
    let mut kept = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        let close = match c {
            '"' => Some('"'),
            '{' => Some('}'),
            '[' => Some(']'),
            _ => None,
        };
        match close {
            Some(close) => {
                for d in chars.by_ref() {
                    if d == close {
                        break;
                    }
                }
                kept.push(' ');
            }
            None => kept.push(c),
        }
    }
    let words: Vec<&str> = kept
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '(' || c == ')'))
        .flat_map(|w| w.split_inclusive(['(', ')']))
        .collect();
    let mut out = Vec::new();
    let mut skip_group = false;
    let mut depth = 0;
    for word in words {
        let ident = word.trim_matches(['(', ')']);
        if skip_group {
            if word.contains('(') {
                depth += 1;
            }
            if word.contains(')') {
                depth -= 1;
                if depth <= 0 {
                    skip_group = false;
                }
            }
            continue;
        }
        if [
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ]
        .contains(&ident)
        {
            skip_group = true;
            depth = 0;
            continue;
        }
        if !ident.is_empty() && !ident.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            out.push(ident.to_owned());
        }
    }
    out
}

fn rule_exprs() -> Vec<String> {
    RULES
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

fn dashboard_exprs() -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("valid JSON");
    let mut out = Vec::new();
    walk(&dashboard, &mut out);
    out
}

fn check(exprs: &[String], what: &str) -> BTreeSet<String> {
    let names = registered();
    let mut used = BTreeSet::new();
    for expr in exprs {
        for ident in identifiers(expr) {
            if PROMQL.contains(&ident.as_str()) {
                continue;
            }
            let base = ["_sum", "_count", "_bucket"]
                .iter()
                .find_map(|s| ident.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
                .unwrap_or(&ident);
            assert!(
                names.contains(base),
                "{what} uses {ident:?}, which no crate registers (in {expr})"
            );
            used.insert(base.to_owned());
        }
    }
    used
}

#[test]
fn the_extraction_finds_names_and_skips_labels() {
    let found = identifiers(
        r#"sum by (breaker, outcome) (rate(breaker_calls_total{outcome=~"a|b"}[5m])) / max(bulkhead_full)"#,
    );
    assert_eq!(
        found,
        ["sum", "rate", "breaker_calls_total", "max", "bulkhead_full"]
    );
    // A misspelled name is caught.
    let names = registered();
    assert!(!names.contains("breaker_call_total"));
    assert!(names.contains("breaker_state") && names.contains("heal_escalations_total"));
}

#[test]
#[should_panic(expected = "which no crate registers")]
fn a_name_no_crate_registers_is_refused() {
    check(&["sum(rate(breaker_call_total[5m]))".to_owned()], "a rule");
}

#[test]
fn every_rule_uses_registered_names() {
    let exprs = rule_exprs();
    assert_eq!(exprs.len(), 6, "six alerts");
    let used = check(&exprs, "an alert rule");
    for name in [
        "breaker_state",
        "breaker_calls_total",
        "bulkhead_rejected_total",
        "heal_retries_refused_total",
        "heal_escalations_total",
        "chaos_armed",
    ] {
        assert!(used.contains(name), "an alert watches {name}");
    }
}

#[test]
fn every_dashboard_panel_uses_registered_names() {
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 12, "{} queries", exprs.len());
    let used = check(&exprs, "the dashboard");
    // Every metric the crates register is on the dashboard, except the per-key map sizes and the
    // rarer counters.
    let names = registered();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !used.contains(*n))
        .filter(|n| !n.ends_with("_keys"))
        .filter(|n| {
            ![
                "heal_attempts_total",
                "heal_backoff_seconds",
                "heal_hedges_total",
                "heal_idempotent_replays_total",
                "heal_checkpoint_resumes_total",
                "chaos_dry_run_total",
                "chaos_overflow_total",
            ]
            .contains(&n.as_str())
        })
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}

#[test]
fn every_alert_links_to_a_runbook_section() {
    let anchors: BTreeSet<String> = RUNBOOK
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let links: Vec<&str> = RULES
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url:"))
        .collect();
    assert_eq!(links.len(), 6);
    for link in links {
        let anchor = link
            .trim()
            .trim_matches('"')
            .rsplit('#')
            .next()
            .unwrap_or_default();
        assert!(
            anchors.contains(anchor),
            "{link} points to a runbook section"
        );
    }
}

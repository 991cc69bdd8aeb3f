//! The main demo's scenario, step by step, with a paused clock (the reset timeout passes
//! virtually) and real sockets on 127.0.0.1.

use std::time::Duration;

use examples::breaker_demo::{Step, run};
use tower_breaker::State;

#[tokio::test(start_paused = true)]
async fn the_demo_opens_answers_and_recovers() {
    let steps = run(Duration::from_secs(60), |_| {}).await.unwrap();
    let summary: Vec<(&str, u16, Option<&str>, State, usize)> = steps
        .iter()
        .map(|s: &Step| {
            (
                s.phase,
                s.status,
                s.retry_after.as_deref(),
                s.state,
                s.upstream_hits,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("upstream healthy", 200, None, State::Closed, 1),
            ("upstream healthy", 200, None, State::Closed, 2),
            ("upstream healthy", 200, None, State::Closed, 3),
            ("upstream down", 502, None, State::Closed, 4),
            ("upstream down", 502, None, State::Closed, 5),
            ("upstream down", 502, None, State::Open, 6),
            ("breaker open", 503, Some("60"), State::Open, 6),
            ("breaker open", 503, Some("60"), State::Open, 6),
            ("breaker open", 503, Some("60"), State::Open, 6),
            (
                "upstream back, probe after reset timeout",
                200,
                None,
                State::Closed,
                7
            ),
            ("closed again", 200, None, State::Closed, 8),
            ("closed again", 200, None, State::Closed, 9),
        ]
    );
    let transitions: Vec<&str> = steps
        .iter()
        .flat_map(|s| s.transitions.iter().map(String::as_str))
        .collect();
    assert_eq!(
        transitions,
        vec![
            "closed -> open (consecutive_failures)",
            "open -> half_open (reset_timeout_elapsed)",
            "half_open -> closed (probes_succeeded)",
        ]
    );
}

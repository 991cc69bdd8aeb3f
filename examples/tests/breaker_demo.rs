//! The main demo's scenario, step by step, with a paused clock (the reset timeout passes
//! virtually) and real sockets on 127.0.0.1; the front server is the example's own code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use examples::breaker_demo::{self, Step, Upstream};
use tower_breaker::State;

#[allow(dead_code)] // its `main` is not called here
#[path = "../examples/breaker_axum.rs"]
mod breaker_axum;

#[tokio::test(start_paused = true)]
async fn the_demo_opens_answers_and_recovers() {
    let reset_timeout = Duration::from_secs(60);
    let upstream = Upstream::start().await.unwrap();
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let seen = transitions.clone();
    let (app, breaker) = breaker_axum::front(upstream.url.clone(), reset_timeout, move |t| {
        seen.lock().unwrap().push(t.to_string());
    })
    .unwrap();
    let front = breaker_demo::serve(app).await.unwrap();

    let steps = breaker_demo::run(front, &upstream, &breaker, reset_timeout, |_| {})
        .await
        .unwrap();
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
                "upstream back, probe after reset",
                200,
                None,
                State::Closed,
                7
            ),
            ("closed again", 200, None, State::Closed, 8),
            ("closed again", 200, None, State::Closed, 9),
        ]
    );
    assert_eq!(
        *transitions.lock().unwrap(),
        [
            "circuit breaker \"prices\" closed -> open: consecutive failures reached failure_threshold",
            "circuit breaker \"prices\" open -> half_open: the reset timeout elapsed",
            "circuit breaker \"prices\" half_open -> closed: the probes succeeded",
        ]
    );
}

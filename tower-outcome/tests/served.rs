//! Responses served by hyper through a real `axum::serve` on 127.0.0.1 are classified as a
//! client collecting them would classify them: hyper stops polling a body at
//! `is_end_stream()`, or once its known length is written, and drops it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use support::Script;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower_outcome::{Classify, GrpcStatus, Outcome, Settle};

/// Reports `(case, Some(outcome))` when settled, `(case, None)` when dropped unsettled.
struct Report {
    case: usize,
    tx: Option<mpsc::UnboundedSender<(usize, Option<Outcome>)>>,
}

impl Settle for Report {
    fn settle(mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.case, Some(outcome)));
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.case, None));
        }
    }
}

#[derive(Clone, Copy)]
struct Case(usize);

struct Served {
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: fn() -> Script,
    expected: Outcome,
}

fn cases() -> Vec<Served> {
    vec![
        // Ends on a data frame, no grpc-status: UNKNOWN, a failure (was never classified).
        Served {
            status: 200,
            headers: &[],
            body: || Script::data(&["\0\0\0\0\x01x"]).reporting_end(),
            expected: Outcome::Failure,
        },
        // A known length, never reporting its end: hyper drops it once written.
        Served {
            status: 200,
            headers: &[],
            body: || Script::data(&["\0\0\0\0\x01x"]).of_known_length(),
            expected: Outcome::Failure,
        },
        Served {
            status: 200,
            headers: &[],
            body: || Script::data(&["\0\0\0\0\x01x"]).trailers(&[("grpc-status", "0")]),
            expected: Outcome::Success,
        },
        Served {
            status: 200,
            headers: &[],
            body: || Script::data(&["\0\0\0\0\x01x"]).trailers(&[("grpc-status", "+0")]),
            expected: Outcome::Failure,
        },
        Served {
            status: 200,
            headers: &[("grpc-status", "14")],
            body: || Script::default().reporting_end(),
            expected: Outcome::Failure,
        },
        // grpc-status wins over the HTTP status, in the headers or in the trailers.
        Served {
            status: 503,
            headers: &[("grpc-status", "0")],
            body: || Script::data(&["x"]).reporting_end(),
            expected: Outcome::Success,
        },
        Served {
            status: 500,
            headers: &[("grpc-status", "3")],
            body: || Script::data(&["x"]).reporting_end(),
            expected: Outcome::Ignore,
        },
        Served {
            status: 404,
            headers: &[],
            body: || Script::data(&["x"]).trailers(&[("grpc-status", "14")]),
            expected: Outcome::Failure,
        },
        // Without one, the HTTP status is mapped.
        Served {
            status: 503,
            headers: &[],
            body: || Script::data(&["x"]).reporting_end(),
            expected: Outcome::Failure,
        },
        Served {
            status: 404,
            headers: &[],
            body: || Script::data(&["x"]).of_known_length(),
            expected: Outcome::Ignore,
        },
    ]
}

#[tokio::test]
async fn served_responses_are_classified_at_their_end() {
    let cases = Arc::new(cases());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler_cases = Arc::clone(&cases);
    let app = Router::new()
        .route(
            "/{case}",
            get(move |Path(case): Path<usize>| {
                let cases = Arc::clone(&handler_cases);
                async move {
                    let served = &cases[case];
                    let mut res = Response::builder()
                        .status(served.status)
                        .header("content-type", "application/grpc");
                    for (name, value) in served.headers {
                        res = res.header(*name, *value);
                    }
                    let mut res = res.body(Body::new((served.body)())).unwrap();
                    res.extensions_mut().insert(Case(case));
                    res
                }
            }),
        )
        .layer(axum::middleware::map_response(move |res: Response| {
            let tx = tx.clone();
            async move {
                let case = res.extensions().get::<Case>().map_or(usize::MAX, |c| c.0);
                GrpcStatus::new().classify_response(res, Report { case, tx: Some(tx) })
            }
        }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    for (case, served) in cases.iter().enumerate() {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /{case} HTTP/1.1\r\nhost: test\r\nte: trailers\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let head = String::from_utf8_lossy(&answer);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {}", served.status)),
            "{head}"
        );
        let reported = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the obligation is settled or dropped")
            .unwrap();
        assert_eq!(
            reported,
            (case, Some(served.expected)),
            "case {case}: {head}"
        );
    }
    server.abort();
}

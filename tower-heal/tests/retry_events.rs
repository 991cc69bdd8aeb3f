//! The tracing event of each retry (alone in its binary: tracing caches callsite interest
//! process-wide, so a test without a subscriber running beside it could silence its events).
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::ServiceBuilder;
use tower_heal::{Jitter, RetryLayer};

use support::{Flaky, Script, call};

/// Collects formatted tracing output.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_retry_emits_a_tracing_event_saying_what_failed_and_how_long_it_waits() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let layer = RetryLayer::builder()
                .max_retries(2)
                .initial_delay(Duration::from_secs(2))
                .jitter(Jitter::None)
                .build()
                .unwrap();
            let mut svc = ServiceBuilder::new()
                .layer(layer)
                .service(Flaky(Script::new([Err("down")])));
            let _ = call(&mut svc, ()).await;
        });
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("attempt 1/3 failed: network_error; waiting 2000 ms"),
        "{text}"
    );
    assert!(text.contains("attempt 2/3 failed: network_error; waiting 4000 ms"));
    assert!(text.contains("attempt 3 failed: network_error; not retried: max_retries reached"));
}

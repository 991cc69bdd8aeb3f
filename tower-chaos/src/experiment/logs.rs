//! The chaos events a run collects for its report's "Logs Captured" section.
//!
//! While a run is polled, a collecting subscriber is the default one: it keeps the events of
//! target `tower_chaos` (armed, injected, disarmed, guard trips) and forwards everything, those
//! events included, to the subscriber that was the default before, so your own logs carry on.
//! Only events emitted in the runner's task are seen (a layer behind a `Buffer` emits in the
//! buffer's worker task).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};

/// Lines kept in full; past it, only the counts by message grow.
const KEPT: usize = 10_000;

/// One chaos event, as collected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Time since the run started.
    pub at: Duration,
    /// `INFO`, `WARN`…
    pub level: String,
    /// The event's message.
    pub message: String,
    /// Its other fields, as `name=value` separated by spaces.
    pub fields: String,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[+{}] {:<5} {}",
            super::format::duration(self.at),
            self.level,
            self.message
        )?;
        if !self.fields.is_empty() {
            write!(f, " {}", self.fields)?;
        }
        Ok(())
    }
}

/// The chaos events a run collected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedLogs {
    /// The events in order (the first 10 000).
    pub lines: Vec<LogLine>,
    /// Every event seen, kept or not.
    pub total: u64,
    /// Events by message.
    pub by_message: BTreeMap<String, u64>,
}

struct Collector {
    inner: Dispatch,
    /// The most verbose level in force when the run started, or `INFO` (the chaos events'
    /// level) if that is more verbose: what this collector needs, and no more.
    max_level: LevelFilter,
    start: Instant,
    captured: Arc<Mutex<CapturedLogs>>,
}

fn is_chaos(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("tower_chaos")
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.push(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.push(field, format_args!("{value:?}"));
        }
    }
}

impl Fields {
    fn push(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if field.name() == "chaos" {
            return; // every collected event carries it
        }
        if !self.rest.is_empty() {
            self.rest.push(' ');
        }
        let _ = write!(self.rest, "{}={value}", field.name());
    }
}

impl Subscriber for Collector {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        let inner = self.inner.register_callsite(metadata);
        if is_chaos(metadata) {
            Interest::always()
        } else {
            inner
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max_level)
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        is_chaos(metadata) || self.inner.enabled(metadata)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows);
    }

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        if is_chaos(metadata) {
            let mut fields = Fields::default();
            event.record(&mut fields);
            let mut captured = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
            captured.total += 1;
            *captured
                .by_message
                .entry(fields.message.clone())
                .or_default() += 1;
            if captured.lines.len() < KEPT {
                captured.lines.push(LogLine {
                    at: self.start.elapsed(),
                    level: metadata.level().to_string(),
                    message: fields.message,
                    fields: fields.rest,
                });
            }
        }
        if self.inner.enabled(metadata) {
            self.inner.event(event);
        }
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.inner.exit(span);
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }
}

/// A collector for one run: [`dispatch`](Self::dispatch) is installed while the run is
/// polled, [`finish`](Self::finish) takes what it saw.
pub(crate) struct Logs {
    captured: Arc<Mutex<CapturedLogs>>,
    dispatch: Dispatch,
}

impl Logs {
    pub(crate) fn new() -> Self {
        let captured = Arc::new(Mutex::new(CapturedLogs::default()));
        let inner = tracing::dispatcher::get_default(Dispatch::clone);
        let dispatch = Dispatch::new(Collector {
            inner,
            max_level: LevelFilter::current().max(LevelFilter::INFO),
            start: Instant::now(),
            captured: captured.clone(),
        });
        Self { captured, dispatch }
    }

    pub(crate) fn dispatch(&self) -> Dispatch {
        self.dispatch.clone()
    }

    pub(crate) fn finish(self) -> CapturedLogs {
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

//! The proxy's side of the export queue: each finished span is encoded on the worker thread
//! that built it, and only its bytes are queued. Its allocations are freed by the thread that
//! made them, and nothing per span crosses to the exporter's thread: a batch of bytes does,
//! once full or on the flush interval.

use std::cell::RefCell;
use std::sync::Arc;

use otlp_export::{ExportCounters, Queue};
use prometheus::IntCounter;
use trace_core::export::DropReason;
use trace_core::otlp::encode_span_entry;
use trace_core::span::{Span, SpanKind, StatusCode, Value};

use crate::metrics::{EXPORT_ERRORS, SPANS_DROPPED, SPANS_EXPORTED};

thread_local! {
    /// Where a span is encoded before the queue's lock is taken, reused span after span.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// How queued spans are written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Encoding {
    /// `ScopeSpans.spans` entries, for an OTLP request.
    Otlp,
    /// One readable line per span, for the terminal.
    Lines,
}

/// The proxy's handle on the queue.
#[derive(Clone)]
pub struct SpanSink {
    queue: Arc<Queue>,
    encoding: Encoding,
}

impl SpanSink {
    /// A sink writing spans into `queue` as `encoding`.
    pub fn new(queue: Arc<Queue>, encoding: Encoding) -> Self {
        Self { queue, encoding }
    }

    /// Encodes and queues a finished span; a full or closed queue drops it and counts it.
    pub fn submit(&self, span: Span) {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            match self.encoding {
                Encoding::Otlp => encode_span_entry(&span, &mut scratch),
                Encoding::Lines => {
                    scratch.extend_from_slice(readable(&span).as_bytes());
                    scratch.push(b'\n');
                }
            }
            drop(span);
            self.queue.push(&scratch);
        });
    }
}

/// The export counters in the edge's metrics, one per drop reason prepared once.
pub struct EdgeCounters {
    dropped: [IntCounter; DropReason::ALL.len()],
}

impl EdgeCounters {
    /// Binds the edge's counters.
    pub fn new() -> Self {
        Self {
            dropped: DropReason::ALL
                .map(|reason| SPANS_DROPPED.with_label_values(&[reason.as_str()])),
        }
    }
}

impl ExportCounters for EdgeCounters {
    fn exported(&self, spans: u64) {
        SPANS_EXPORTED.inc_by(spans);
    }

    fn dropped(&self, reason: DropReason, spans: u64) {
        if let Some(counter) = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.dropped.get(i))
        {
            counter.inc_by(spans);
        }
    }

    fn failed_attempt(&self) {
        EXPORT_ERRORS.inc();
    }
}

/// One line per span for the terminal.
fn readable(span: &Span) -> String {
    let kind = match span.kind {
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        _ => "INTERNAL",
    };
    let status = match span.status.code {
        StatusCode::Error => format!(" ERROR({})", span.status.message),
        _ => String::new(),
    };
    let parent = span
        .parent_span_id
        .map_or("-".to_owned(), |p| p.to_string());
    let attributes: Vec<String> = span
        .attributes
        .iter()
        .map(|kv| {
            let value = match &kv.value {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Double(d) => d.to_string(),
            };
            format!("{}={value}", kv.key)
        })
        .collect();
    format!(
        "span {kind} {:?} trace={} span={} parent={parent} {:.3}ms{status} {}",
        span.name,
        span.trace_id(),
        span.span_id(),
        span.duration_nanos() as f64 / 1e6,
        attributes.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use trace_core::export::{Backoff, BufferLimits};

    use super::*;

    fn span() -> Span {
        Span {
            name: "GET /".into(),
            ..Span::default()
        }
    }

    fn sink(encoding: Encoding) -> (SpanSink, Arc<Queue>) {
        let limits = BufferLimits {
            batch_spans: 2,
            capacity_spans: 3,
            flush_interval_ms: 60_000,
            max_in_flight: 1,
            max_retries: 0,
            backoff: Backoff::default(),
        };
        let queue = Arc::new(Queue::new(limits, Box::new(EdgeCounters::new())));
        (SpanSink::new(queue.clone(), encoding), queue)
    }

    fn dropped(reason: DropReason) -> u64 {
        SPANS_DROPPED.with_label_values(&[reason.as_str()]).get()
    }

    #[test]
    fn a_full_queue_counts_in_the_edges_metrics() {
        let (sink, queue) = sink(Encoding::Lines);
        let before = dropped(DropReason::QueueFull);
        for _ in 0..4 {
            sink.submit(span());
        }
        assert_eq!(dropped(DropReason::QueueFull) - before, 1);
        let batch = queue.next_dispatch().unwrap().batch;
        assert_eq!(batch.entries.iter().filter(|&&b| b == b'\n').count(), 2);
    }

    #[test]
    fn otlp_entries_decode_as_spans() {
        let (sink, queue) = sink(Encoding::Otlp);
        sink.submit(span());
        sink.submit(span());
        let dispatch = queue.next_dispatch().unwrap();
        let mut body = Vec::new();
        trace_core::otlp::encode_request_from_entries(
            &Default::default(),
            &Default::default(),
            &dispatch.batch.entries,
            &mut body,
        );
        let request = trace_core::otlp::decode_request(&body).unwrap();
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].name, "GET /");
    }
}

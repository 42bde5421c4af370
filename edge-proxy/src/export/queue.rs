//! The bounded export queue, holding spans already encoded, shared by the proxy's workers and
//! the exporter. What it holds, when a batch is due and what a failure means are trace-core's
//! export policy ([`SpanBuffer`]); this module only adds the lock, the wake-up and the counters.
//!
//! A span is encoded the moment it finishes, on the worker thread that built it, and only its
//! bytes are queued. Its allocations are freed by the thread that made them, and nothing per
//! span crosses to the exporter's thread: a batch of bytes does, once full or on the flush
//! interval.

use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use prometheus::IntCounter;
use tokio::sync::Notify;
use trace_core::export::{
    Admission, BufferLimits, Dispatch, DropReason, Settled, SpanBuffer, Verdict,
};
use trace_core::otlp::encode_span_entry;
use trace_core::span::{Span, SpanKind, StatusCode, Value};

use crate::metrics::{SPANS_DROPPED, SPANS_EXPORTED};

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

/// The queue shared by the proxy's workers and the exporter.
pub struct Queue {
    encoding: Encoding,
    buffer: Mutex<SpanBuffer>,
    /// The queue's clock: milliseconds since it was made.
    epoch: Instant,
    /// Wakes the exporter when a batch is full.
    batch_ready: Notify,
    /// One counter per drop reason, in [`DropReason::ALL`] order, prepared once.
    dropped: [IntCounter; DropReason::ALL.len()],
}

impl Queue {
    /// An empty queue with these bounds.
    pub fn new(encoding: Encoding, limits: BufferLimits) -> Self {
        Self {
            encoding,
            buffer: Mutex::new(SpanBuffer::new(limits, 0)),
            epoch: Instant::now(),
            batch_ready: Notify::new(),
            dropped: DropReason::ALL
                .map(|reason| SPANS_DROPPED.with_label_values(&[reason.as_str()])),
        }
    }

    /// Milliseconds on the queue's clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The queue's clock at `ms`.
    pub fn instant(&self, ms: u64) -> tokio::time::Instant {
        (self.epoch + std::time::Duration::from_millis(ms)).into()
    }

    /// Encodes a finished span and queues it; a full or closed queue drops it and counts it.
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
            let admission = self.lock().push(&scratch);
            match admission {
                Admission::Held => {}
                Admission::BatchFull => self.batch_ready.notify_one(),
                Admission::Dropped(reason) => self.count_dropped(reason, 1),
            }
        });
    }

    /// Waits until a batch is full; a wake-up that came while nobody waited is kept.
    pub async fn batch_ready(&self) {
        self.batch_ready.notified().await;
    }

    /// The next batch due now.
    pub fn next_dispatch(&self) -> Option<Dispatch> {
        let now = self.now_ms();
        self.lock().next_dispatch(now)
    }

    /// When the next batch will be due, on the queue's clock.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.lock().next_due_ms()
    }

    /// Takes back a sent batch with the verdict on its attempt, and counts the outcome.
    pub fn settle(&self, dispatch: Dispatch, verdict: Verdict) -> Settled {
        let now = self.now_ms();
        let settled = self
            .lock()
            .settle(dispatch, verdict, now, fastrand::u64(..));
        match settled {
            Settled::Exported(spans) => SPANS_EXPORTED.inc_by(spans as u64),
            Settled::Dropped(spans, reason) => self.count_dropped(reason, spans),
            Settled::Retrying { .. } => {}
        }
        settled
    }

    /// Takes back a batch whose attempt was cut short; it is sent again first.
    pub fn requeue(&self, dispatch: Dispatch) {
        self.lock().requeue(dispatch);
    }

    /// Stops taking spans and makes everything held due at once. Spans submitted afterwards
    /// are dropped and counted as dropped at shutdown.
    pub fn close(&self) {
        self.lock().close();
    }

    /// Spans held, including the batch being sent.
    pub fn held(&self) -> usize {
        self.lock().held()
    }

    /// Drops and counts everything still held outside a batch being sent.
    pub fn discard(&self) -> usize {
        let spans = self.lock().discard();
        self.count_dropped(DropReason::Shutdown, spans);
        spans
    }

    fn count_dropped(&self, reason: DropReason, spans: usize) {
        if let Some(counter) = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.dropped.get(i))
        {
            counter.inc_by(spans as u64);
        }
    }

    /// A panic elsewhere cannot leave the buffer half-written: every change is complete
    /// before the guard drops, so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, SpanBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
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
    use super::*;
    use trace_core::export::Backoff;

    fn span() -> Span {
        Span {
            name: "GET /".into(),
            ..Span::default()
        }
    }

    fn limits(batch_spans: usize, capacity_spans: usize) -> BufferLimits {
        BufferLimits {
            batch_spans,
            capacity_spans,
            flush_interval_ms: 60_000,
            max_in_flight: 1,
            max_retries: 0,
            backoff: Backoff::default(),
        }
    }

    fn dropped(reason: DropReason) -> u64 {
        SPANS_DROPPED.with_label_values(&[reason.as_str()]).get()
    }

    #[test]
    fn full_batches_are_handed_over_and_the_bound_counts_drops() {
        let queue = Queue::new(Encoding::Lines, limits(2, 3));
        let before = dropped(DropReason::QueueFull);
        for _ in 0..4 {
            queue.submit(span());
        }
        assert_eq!(dropped(DropReason::QueueFull) - before, 1);
        let full = queue.next_dispatch().unwrap();
        assert_eq!(full.batch.spans, 2);
        assert_eq!(
            full.batch.entries.iter().filter(|&&b| b == b'\n').count(),
            2
        );
        assert!(
            queue.next_dispatch().is_none(),
            "one in flight, and the interval is long"
        );
        queue.submit(span());
        assert_eq!(
            dropped(DropReason::QueueFull) - before,
            2,
            "in flight holds room"
        );
        queue.settle(full, Verdict::Accepted);
        queue.close();
        let rest = queue.next_dispatch().unwrap();
        assert_eq!(rest.batch.spans, 1, "closing makes the partial batch due");
        let shutdown = dropped(DropReason::Shutdown);
        queue.submit(span());
        assert_eq!(dropped(DropReason::Shutdown) - shutdown, 1);
        queue.settle(rest, Verdict::Rejected);
    }

    #[test]
    fn otlp_entries_decode_as_spans() {
        let queue = Queue::new(Encoding::Otlp, limits(2, 10));
        queue.submit(span());
        queue.submit(span());
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

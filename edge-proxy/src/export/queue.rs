//! The bounded export queue, holding spans already encoded.
//!
//! A span is encoded the moment it finishes, on the worker thread that built it, and only its
//! bytes are queued. Its allocations are freed by the thread that made them, and nothing per
//! span crosses to the exporter's thread: a batch of bytes does, once full or on the flush
//! interval.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use prometheus::IntCounter;
use tokio::sync::Notify;
use trace_core::otlp::encode_span_entry;
use trace_core::span::{Span, SpanKind, StatusCode, Value};

use crate::metrics::SPANS_DROPPED;

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

/// Spans encoded one after another.
#[derive(Default)]
pub struct Batch {
    /// The encoded spans.
    pub bytes: Vec<u8>,
    /// How many.
    pub spans: usize,
}

/// The queue shared by the proxy's workers and the exporter.
pub struct Queue {
    encoding: Encoding,
    batch_size: usize,
    /// Spans queued or being exported, at most.
    capacity: usize,
    state: Mutex<State>,
    /// Wakes the exporter when a batch is full.
    batch_ready: Notify,
    dropped_queue_full: IntCounter,
    dropped_shutdown: IntCounter,
}

#[derive(Default)]
struct State {
    /// The batch spans are added to.
    open: Batch,
    /// Full batches waiting for the exporter.
    full: VecDeque<Batch>,
    /// Spans in `open`, in `full` and being exported.
    held: usize,
    /// Set once the exporter has taken its final flush.
    closed: bool,
}

impl Queue {
    /// An empty queue holding at most `capacity` spans, handed over `batch_size` at a time.
    pub fn new(encoding: Encoding, batch_size: usize, capacity: usize) -> Self {
        Self {
            encoding,
            batch_size,
            capacity,
            state: Mutex::new(State::default()),
            batch_ready: Notify::new(),
            dropped_queue_full: SPANS_DROPPED.with_label_values(&["queue_full"]),
            dropped_shutdown: SPANS_DROPPED.with_label_values(&["shutdown"]),
        }
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
            let mut state = self.lock();
            if state.closed {
                self.dropped_shutdown.inc();
                return;
            }
            if state.held >= self.capacity {
                self.dropped_queue_full.inc();
                return;
            }
            state.held += 1;
            state.open.bytes.extend_from_slice(&scratch);
            state.open.spans += 1;
            if state.open.spans >= self.batch_size {
                let full = std::mem::take(&mut state.open);
                state.full.push_back(full);
                drop(state);
                self.batch_ready.notify_one();
            }
        });
    }

    /// Waits until a batch is full; a wake-up that came while nobody waited is kept.
    pub async fn batch_ready(&self) {
        self.batch_ready.notified().await;
    }

    /// The oldest full batch.
    pub fn take_full(&self) -> Option<Batch> {
        self.lock().full.pop_front()
    }

    /// The batch being filled, if it holds any span.
    pub fn take_open(&self) -> Option<Batch> {
        let mut state = self.lock();
        (state.open.spans > 0).then(|| std::mem::take(&mut state.open))
    }

    /// Frees the room of `spans` spans that were exported, or given up on.
    pub fn release(&self, spans: usize) {
        let mut state = self.lock();
        state.held = state.held.saturating_sub(spans);
    }

    /// Closes the queue and returns everything in it. Spans submitted afterwards are dropped
    /// and counted as dropped at shutdown.
    pub fn close(&self) -> Vec<Batch> {
        let mut state = self.lock();
        state.closed = true;
        let open = std::mem::take(&mut state.open);
        let mut batches: Vec<Batch> = state.full.drain(..).collect();
        if open.spans > 0 {
            batches.push(open);
        }
        batches
    }

    /// A panic elsewhere cannot leave the state half-written: every change above is complete
    /// before the guard drops, so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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

    fn span() -> Span {
        Span {
            name: "GET /".into(),
            ..Span::default()
        }
    }

    #[test]
    fn batches_fill_in_order_and_the_bound_counts_drops() {
        let queue = Queue::new(Encoding::Lines, 2, 3);
        let dropped = queue.dropped_queue_full.get();
        for _ in 0..4 {
            queue.submit(span());
        }
        assert_eq!(queue.dropped_queue_full.get() - dropped, 1);
        let full = queue.take_full().unwrap();
        assert_eq!(full.spans, 2);
        assert_eq!(full.bytes.iter().filter(|&&b| b == b'\n').count(), 2);
        assert!(queue.take_full().is_none());
        assert_eq!(queue.take_open().unwrap().spans, 1);
        assert!(queue.take_open().is_none());
        // Nothing is released yet, so the queue is still full.
        queue.submit(span());
        assert_eq!(queue.dropped_queue_full.get() - dropped, 2);
        queue.release(3);
        queue.submit(span());
        assert_eq!(queue.dropped_queue_full.get() - dropped, 2);
        assert_eq!(queue.close().len(), 1);
        let shutdown = queue.dropped_shutdown.get();
        queue.submit(span());
        assert_eq!(queue.dropped_shutdown.get() - shutdown, 1);
    }

    #[test]
    fn otlp_entries_decode_as_spans() {
        let queue = Queue::new(Encoding::Otlp, 2, 10);
        queue.submit(span());
        queue.submit(span());
        let batch = queue.take_full().unwrap();
        let mut body = Vec::new();
        trace_core::otlp::encode_request_from_entries(
            &Default::default(),
            &Default::default(),
            &batch.bytes,
            &mut body,
        );
        let request = trace_core::otlp::decode_request(&body).unwrap();
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].name, "GET /");
    }
}

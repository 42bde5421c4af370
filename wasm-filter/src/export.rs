//! The span queue of one worker and the export requests made from it.
//!
//! Pure bookkeeping, no host calls: the root context asks it what to send, sends it, and
//! reports the outcome. Everything is bounded: the queue by `max_queued_spans`, the requests
//! in flight by `max_in_flight`, each request's retries by `max_retries`. Every span that
//! leaves without being exported is reported to the caller, which counts it.

use std::collections::VecDeque;

use trace_core::span::Span;

use crate::config::Batch;

/// One encoded export request and how often it was tried.
#[derive(Debug, PartialEq, Eq)]
pub struct Export {
    /// The OTLP protobuf body.
    pub body: Vec<u8>,
    /// Spans in the body.
    pub spans: usize,
    /// Failed attempts so far.
    pub failures: u32,
}

/// What became of an export request that finished or failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The collector accepted these spans.
    Exported(usize),
    /// It failed and will be sent again on a later tick.
    Retrying,
    /// It failed for the last time; these spans are lost.
    Dropped(usize),
}

/// The exporter state of one worker.
#[derive(Debug)]
pub struct Exporter {
    limits: Batch,
    queue: VecDeque<Span>,
    retries: VecDeque<Export>,
    in_flight: Vec<(u32, Export)>,
    last_batch_ms: u64,
}

impl Exporter {
    /// An empty exporter; the first flush interval runs from `now_ms`.
    pub fn new(limits: Batch, now_ms: u64) -> Self {
        Self {
            queue: VecDeque::with_capacity(limits.max_spans),
            limits,
            retries: VecDeque::new(),
            in_flight: Vec::new(),
            last_batch_ms: now_ms,
        }
    }

    /// Queues a finished span; `false` when the queue is full and the span was dropped.
    #[must_use]
    pub fn push(&mut self, span: Span) -> bool {
        if self.queue.len() >= self.limits.max_queued_spans {
            return false;
        }
        self.queue.push_back(span);
        true
    }

    /// Spans waiting to be encoded.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next request to send now: a retry first, then a full batch, or a partial one once
    /// the flush interval has passed. `None` when nothing is due or too many are in flight.
    pub fn next(&mut self, now_ms: u64, encode: impl FnOnce(&[Span]) -> Vec<u8>) -> Option<Export> {
        if self.in_flight.len() >= self.limits.max_in_flight {
            return None;
        }
        if let Some(retry) = self.retries.pop_front() {
            return Some(retry);
        }
        let full = self.queue.len() >= self.limits.max_spans;
        let due = now_ms.saturating_sub(self.last_batch_ms) >= self.limits.flush_interval_ms;
        if self.queue.is_empty() || !(full || due) {
            return None;
        }
        self.last_batch_ms = now_ms;
        let take = self.queue.len().min(self.limits.max_spans);
        let spans: Vec<Span> = self.queue.drain(..take).collect();
        Some(Export {
            body: encode(&spans),
            spans: spans.len(),
            failures: 0,
        })
    }

    /// Records a request the host accepted under `token`.
    pub fn sent(&mut self, token: u32, export: Export) {
        self.in_flight.push((token, export));
    }

    /// Records a failed attempt: retried later, or dropped after `max_retries` retries.
    pub fn failed(&mut self, mut export: Export) -> Outcome {
        export.failures += 1;
        if export.failures > self.limits.max_retries {
            return Outcome::Dropped(export.spans);
        }
        self.retries.push_back(export);
        Outcome::Retrying
    }

    /// Records the response to request `token`: `Some(status)` from the `:status` header, or
    /// `None` when the call failed without one (reset, timeout). An unknown token is `None`.
    pub fn completed(&mut self, token: u32, status: Option<u16>) -> Option<Outcome> {
        let at = self.in_flight.iter().position(|(t, _)| *t == token)?;
        let (_, export) = self.in_flight.swap_remove(at);
        Some(match status {
            Some(200..=299) => Outcome::Exported(export.spans),
            _ => self.failed(export),
        })
    }

    /// Requests outstanding.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Batch {
        Batch {
            max_spans: 2,
            flush_interval_ms: 1000,
            max_queued_spans: 3,
            max_in_flight: 1,
            max_retries: 1,
        }
    }

    fn count(spans: &[Span]) -> Vec<u8> {
        vec![spans.len() as u8]
    }

    #[test]
    fn batches_on_size_or_interval() {
        let mut exporter = Exporter::new(limits(), 0);
        assert!(exporter.push(Span::default()));
        assert_eq!(
            exporter.next(500, count),
            None,
            "one span, interval not reached"
        );
        let partial = exporter.next(1000, count).unwrap();
        assert!(exporter.push(Span::default()));
        assert_eq!(
            exporter.next(1500, count),
            None,
            "the interval restarts at each batch"
        );
        assert_eq!(exporter.next(2000, count).unwrap().spans, 1);
        assert_eq!(partial.spans, 1);
        assert!(exporter.push(Span::default()));
        assert!(exporter.push(Span::default()));
        assert!(exporter.push(Span::default()));
        assert!(!exporter.push(Span::default()), "queue bound");
        let full = exporter.next(1001, count).unwrap();
        assert_eq!((full.spans, full.body), (2, vec![2]));
        assert_eq!(exporter.queued(), 1);
    }

    #[test]
    fn bounds_in_flight_and_retries_then_drops() {
        let mut exporter = Exporter::new(limits(), 0);
        assert!(exporter.push(Span::default()));
        assert!(exporter.push(Span::default()));
        let export = exporter.next(0, count).unwrap();
        exporter.sent(7, export);
        assert!(exporter.push(Span::default()));
        assert!(exporter.push(Span::default()));
        assert_eq!(exporter.next(5000, count), None, "one in flight at most");
        assert_eq!(exporter.completed(8, Some(200)), None, "unknown token");
        assert_eq!(exporter.completed(7, Some(503)), Some(Outcome::Retrying));
        let retry = exporter.next(5000, count).unwrap();
        assert_eq!(retry.failures, 1);
        exporter.sent(9, retry);
        assert_eq!(exporter.completed(9, None), Some(Outcome::Dropped(2)));
        let next = exporter.next(5000, count).unwrap();
        exporter.sent(10, next);
        assert_eq!(
            exporter.completed(10, Some(204)),
            Some(Outcome::Exported(2))
        );
        assert_eq!(exporter.in_flight(), 0);
    }
}

//! The spans of one worker and the export callouts in flight, driven from the root context's
//! tick and callout responses. What is held, when a batch is due, what a response means and
//! when a failed batch is retried is trace-core's export policy ([`SpanBuffer`]); this module
//! only keeps the host's callout tokens beside it.

use trace_core::export::{
    Admission, BufferLimits, Delivery, Dispatch, DropReason, Settled, SpanBuffer,
};
use trace_core::otlp::encode_span_entry;
use trace_core::span::Span;

use crate::config::Batch;

/// A worker's buffer of encoded spans and its outstanding callouts.
#[derive(Debug)]
pub struct ExportCallouts {
    buffer: SpanBuffer,
    /// Callout token and the batch it carries.
    in_flight: Vec<(u32, Dispatch)>,
    /// Where each span is encoded before it is offered to the buffer, reused.
    scratch: Vec<u8>,
}

impl ExportCallouts {
    /// An empty buffer with the configured bounds; the first flush interval runs from `now_ms`.
    pub fn new(batch: &Batch, now_ms: u64) -> Self {
        let limits = BufferLimits {
            batch_spans: batch.max_spans,
            capacity_spans: batch.max_queued_spans,
            flush_interval_ms: batch.flush_interval_ms,
            max_in_flight: batch.max_in_flight,
            max_retries: batch.max_retries,
            backoff: Default::default(),
        };
        Self {
            buffer: SpanBuffer::new(limits, now_ms),
            in_flight: Vec::new(),
            scratch: Vec::with_capacity(512),
        }
    }

    /// Encodes a finished span and offers it; the reason when it was dropped.
    pub fn push(&mut self, span: &Span) -> Option<DropReason> {
        self.scratch.clear();
        encode_span_entry(span, &mut self.scratch);
        match self.buffer.push(&self.scratch) {
            Admission::Held | Admission::BatchFull => None,
            Admission::Dropped(reason) => Some(reason),
        }
    }

    /// The next batch due now, if any.
    pub fn next(&mut self, now_ms: u64) -> Option<Dispatch> {
        self.buffer.next_dispatch(now_ms)
    }

    /// Records a batch the host accepted to send under `token`.
    pub fn sent(&mut self, token: u32, dispatch: Dispatch) {
        self.in_flight.push((token, dispatch));
    }

    /// Records a batch the host refused to send.
    pub fn refused(&mut self, dispatch: Dispatch, now_ms: u64, random: u64) -> Settled {
        self.buffer
            .settle(dispatch, Delivery::NoResponse.verdict(), now_ms, random)
    }

    /// Records how callout `token` ended; `None` for a token that is not ours.
    pub fn completed(
        &mut self,
        token: u32,
        delivery: Delivery,
        now_ms: u64,
        random: u64,
    ) -> Option<Settled> {
        let at = self.in_flight.iter().position(|(t, _)| *t == token)?;
        let (_, dispatch) = self.in_flight.swap_remove(at);
        Some(
            self.buffer
                .settle(dispatch, delivery.verdict(), now_ms, random),
        )
    }

    /// Spans held, including those in flight.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.buffer.held()
    }

    /// Whether nothing is held or in flight.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// Stops taking spans and makes the partial batch due at once.
    pub fn close(&mut self) {
        self.buffer.close();
    }

    /// Gives up on everything held, in flight too; how many spans that was.
    pub fn abandon_all(&mut self) -> usize {
        let mut lost = self.buffer.discard();
        for (_, dispatch) in core::mem::take(&mut self.in_flight) {
            if let Settled::Dropped(spans, _) = self.buffer.abandon(dispatch, DropReason::Shutdown)
            {
                lost += spans;
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        Batch {
            max_spans: 2,
            flush_interval_ms: 1000,
            max_queued_spans: 3,
            max_in_flight: 1,
            max_retries: 1,
        }
    }

    fn status(code: u16) -> Delivery {
        Delivery::Http {
            status: code,
            retry_after_ms: None,
        }
    }

    #[test]
    fn callouts_are_matched_by_token_and_settled_by_the_policy() {
        let mut exports = ExportCallouts::new(&batch(), 0);
        assert_eq!(exports.push(&Span::default()), None);
        assert_eq!(exports.push(&Span::default()), None);
        let dispatch = exports.next(0).unwrap();
        assert_eq!(dispatch.batch.spans, 2);
        exports.sent(7, dispatch);
        assert_eq!(
            exports.completed(8, status(200), 0, 0),
            None,
            "unknown token"
        );
        assert!(matches!(
            exports.completed(7, status(503), 0, 0),
            Some(Settled::Retrying { .. })
        ));
        let retry = exports.next(10_000).unwrap();
        assert_eq!(retry.failures, 1);
        exports.sent(9, retry);
        assert_eq!(
            exports.completed(9, Delivery::NoResponse, 10_000, 0),
            Some(Settled::Dropped(2, DropReason::RetriesExhausted))
        );
        assert_eq!(exports.held(), 0);
    }

    #[test]
    fn a_permanent_rejection_is_not_retried() {
        let mut exports = ExportCallouts::new(&batch(), 0);
        let _ = exports.push(&Span::default());
        let dispatch = exports.next(1000).unwrap();
        exports.sent(1, dispatch);
        assert_eq!(
            exports.completed(1, status(400), 1000, 0),
            Some(Settled::Dropped(1, DropReason::Rejected))
        );
    }

    #[test]
    fn the_capacity_counts_spans_in_flight() {
        let mut exports = ExportCallouts::new(&batch(), 0);
        let _ = exports.push(&Span::default());
        let _ = exports.push(&Span::default());
        let dispatch = exports.next(0).unwrap();
        exports.sent(1, dispatch);
        assert_eq!(exports.push(&Span::default()), None);
        assert_eq!(exports.push(&Span::default()), Some(DropReason::QueueFull));
    }
}

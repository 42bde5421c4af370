//! The bounded buffer of one exporter: encoded spans from the moment they finish until the
//! collector has them or they are dropped for a counted reason.
//!
//! Every span held counts against one capacity, wherever it is: in the batch being filled, in
//! a full batch waiting, in a batch being sent, or in a batch waiting to be retried. A retry
//! therefore holds room that new spans may need; when a new span is refused while retries hold
//! room, it is counted as [`DropReason::RetryBacklog`], not as an ordinary full buffer, so an
//! operator sees that a failing collector, not the load, is what fills it.
//!
//! Spans are held as OTLP `ScopeSpans.spans` entries (`crate::otlp::encode_span_entry`):
//! encoded once where they finish, wrapped into a request only when sent.

use std::collections::VecDeque;

use super::backoff::Backoff;
use super::verdict::Verdict;

/// The bounds of a buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BufferLimits {
    /// Spans per export request.
    pub batch_spans: usize,
    /// Spans held at most, wherever they are.
    pub capacity_spans: usize,
    /// A partial batch is sent once this long has passed since the last batch was sent.
    pub flush_interval_ms: u64,
    /// Export requests outstanding at once.
    pub max_in_flight: usize,
    /// Retries of a failed request before its spans are dropped.
    pub max_retries: u32,
    /// Delays between attempts.
    pub backoff: Backoff,
}

/// Encoded spans, sent together.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct EncodedBatch {
    /// `ScopeSpans.spans` entries, one after another.
    pub entries: Vec<u8>,
    /// How many spans `entries` holds.
    pub spans: usize,
}

/// A batch handed to the caller to send. It must come back through [`SpanBuffer::settle`],
/// [`SpanBuffer::requeue`] or [`SpanBuffer::abandon`], which keep the accounting whole.
#[derive(Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// What to send.
    pub batch: EncodedBatch,
    /// Failed attempts before this one.
    pub failures: u32,
}

/// Why spans were dropped before reaching the collector: the label of a drop counter.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The buffer was full of spans waiting for their first attempt.
    QueueFull,
    /// The buffer was full, and batches waiting to be retried held part of it.
    RetryBacklog,
    /// The collector refused the batch for good.
    Rejected,
    /// The batch failed on every attempt.
    RetriesExhausted,
    /// The exporter was shutting down.
    Shutdown,
}

impl DropReason {
    /// Every reason, for preparing counters.
    pub const ALL: [Self; 5] = [
        Self::QueueFull,
        Self::RetryBacklog,
        Self::Rejected,
        Self::RetriesExhausted,
        Self::Shutdown,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::RetryBacklog => "retry_backlog",
            Self::Rejected => "rejected",
            Self::RetriesExhausted => "retries_exhausted",
            Self::Shutdown => "shutdown",
        }
    }
}

/// What became of a span offered to the buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Admission {
    /// Held.
    Held,
    /// Held, and it filled a batch: the sender may want waking.
    BatchFull,
    /// Not held, for this reason.
    Dropped(DropReason),
}

/// What became of a dispatched batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Settled {
    /// The collector has these spans.
    Exported(usize),
    /// The batch will be offered again from `at_ms` on.
    Retrying {
        /// When it is due.
        at_ms: u64,
    },
    /// These spans are lost, for this reason.
    Dropped(usize, DropReason),
}

/// One exporter's buffer. No I/O and no clock: the caller passes the time in.
#[derive(Debug)]
pub struct SpanBuffer {
    limits: BufferLimits,
    open: EncodedBatch,
    full: VecDeque<EncodedBatch>,
    retrying: VecDeque<(u64, Dispatch)>,
    in_flight: usize,
    /// Spans anywhere in the buffer, including those in flight.
    held: usize,
    /// Spans in retrying batches, and in flight after a failure.
    held_for_retry: usize,
    last_sent_ms: u64,
    closed: bool,
}

impl SpanBuffer {
    /// An empty buffer; the first flush interval runs from `now_ms`.
    pub fn new(limits: BufferLimits, now_ms: u64) -> Self {
        Self {
            limits,
            open: EncodedBatch::default(),
            full: VecDeque::new(),
            retrying: VecDeque::new(),
            in_flight: 0,
            held: 0,
            held_for_retry: 0,
            last_sent_ms: now_ms,
            closed: false,
        }
    }

    /// The bounds it was made with.
    pub fn limits(&self) -> &BufferLimits {
        &self.limits
    }

    /// Offers one encoded span entry.
    pub fn push(&mut self, entry: &[u8]) -> Admission {
        if self.closed {
            return Admission::Dropped(DropReason::Shutdown);
        }
        if self.held >= self.limits.capacity_spans {
            return Admission::Dropped(if self.held_for_retry > 0 {
                DropReason::RetryBacklog
            } else {
                DropReason::QueueFull
            });
        }
        self.held += 1;
        self.open.entries.extend_from_slice(entry);
        self.open.spans += 1;
        if self.open.spans < self.limits.batch_spans {
            return Admission::Held;
        }
        let full = core::mem::take(&mut self.open);
        self.full.push_back(full);
        Admission::BatchFull
    }

    /// The next batch to send now, if any is due and fewer than `max_in_flight` are out: a
    /// retry whose delay has passed first, then a full batch, then the partial batch once the
    /// flush interval has passed (at once when the buffer is closed).
    pub fn next_dispatch(&mut self, now_ms: u64) -> Option<Dispatch> {
        if self.in_flight >= self.limits.max_in_flight {
            return None;
        }
        let dispatch = if self.retrying.front().is_some_and(|(at, _)| *at <= now_ms) {
            self.retrying.pop_front().map(|(_, dispatch)| dispatch)
        } else if let Some(batch) = self.full.pop_front() {
            Some(Dispatch { batch, failures: 0 })
        } else if self.open.spans > 0 && (self.closed || self.flush_due(now_ms)) {
            Some(Dispatch {
                batch: core::mem::take(&mut self.open),
                failures: 0,
            })
        } else {
            None
        }?;
        self.in_flight += 1;
        if dispatch.failures == 0 {
            self.last_sent_ms = now_ms;
        }
        Some(dispatch)
    }

    fn flush_due(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_sent_ms) >= self.limits.flush_interval_ms
    }

    /// When [`Self::next_dispatch`] will next have something, if nothing more is pushed:
    /// `Some(now)` or earlier when something is due already; `None` when nothing is held
    /// outside the batches in flight.
    pub fn next_due_ms(&self) -> Option<u64> {
        let retry = self.retrying.iter().map(|(at, _)| *at).min();
        let fresh = if !self.full.is_empty() || (self.closed && self.open.spans > 0) {
            Some(0)
        } else if self.open.spans > 0 {
            Some(
                self.last_sent_ms
                    .saturating_add(self.limits.flush_interval_ms),
            )
        } else {
            None
        };
        match (retry, fresh) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes back a dispatched batch with the verdict on its attempt. `random` spreads the
    /// retry delay (any uniformly random number).
    pub fn settle(
        &mut self,
        dispatch: Dispatch,
        verdict: Verdict,
        now_ms: u64,
        random: u64,
    ) -> Settled {
        self.in_flight = self.in_flight.saturating_sub(1);
        let spans = dispatch.batch.spans;
        if dispatch.failures > 0 {
            self.held_for_retry = self.held_for_retry.saturating_sub(spans);
        }
        let throttle_ms = match verdict {
            Verdict::Accepted => {
                self.held = self.held.saturating_sub(spans);
                return Settled::Exported(spans);
            }
            Verdict::Rejected => return self.release(spans, DropReason::Rejected),
            Verdict::Retryable { throttle_ms } => throttle_ms,
        };
        let failures = dispatch.failures.saturating_add(1);
        if failures > self.limits.max_retries {
            return self.release(spans, DropReason::RetriesExhausted);
        }
        let at_ms =
            now_ms.saturating_add(self.limits.backoff.delay_ms(failures, random, throttle_ms));
        self.held_for_retry += spans;
        let retry = Dispatch {
            batch: dispatch.batch,
            failures,
        };
        // Ordered by due time, so the front is always the next one due.
        let at = self.retrying.partition_point(|(due, _)| *due <= at_ms);
        self.retrying.insert(at, (at_ms, retry));
        Settled::Retrying { at_ms }
    }

    /// Takes back a dispatched batch whose attempt was cut short without an answer (a shutdown
    /// or a cancelled call): it is offered again at once, and the cut does not count as a
    /// failure.
    pub fn requeue(&mut self, dispatch: Dispatch) {
        // A batch that had failed before stays counted as held for a retry.
        self.in_flight = self.in_flight.saturating_sub(1);
        self.retrying.push_front((0, dispatch));
    }

    /// Takes back a dispatched batch that will never be sent, and counts it dropped.
    pub fn abandon(&mut self, dispatch: Dispatch, reason: DropReason) -> Settled {
        self.in_flight = self.in_flight.saturating_sub(1);
        if dispatch.failures > 0 {
            self.held_for_retry = self.held_for_retry.saturating_sub(dispatch.batch.spans);
        }
        self.release(dispatch.batch.spans, reason)
    }

    fn release(&mut self, spans: usize, reason: DropReason) -> Settled {
        self.held = self.held.saturating_sub(spans);
        Settled::Dropped(spans, reason)
    }

    /// Stops taking spans (later ones are dropped as [`DropReason::Shutdown`]) and makes the
    /// partial batch due at once, so that the caller can flush everything held.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Drops everything held outside the batches in flight, returning how many spans that was:
    /// what a flush deadline leaves behind.
    pub fn discard(&mut self) -> usize {
        let mut spans = core::mem::take(&mut self.open).spans;
        spans += self.full.drain(..).map(|b| b.spans).sum::<usize>();
        for (_, dispatch) in self.retrying.drain(..) {
            spans += dispatch.batch.spans;
            self.held_for_retry = self.held_for_retry.saturating_sub(dispatch.batch.spans);
        }
        self.held = self.held.saturating_sub(spans);
        spans
    }

    /// Spans held, including those in flight.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Export requests outstanding.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether nothing is held at all.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Verdict = Verdict::Retryable { throttle_ms: None };

    fn limits() -> BufferLimits {
        BufferLimits {
            batch_spans: 2,
            capacity_spans: 4,
            flush_interval_ms: 1000,
            max_in_flight: 1,
            max_retries: 2,
            backoff: Backoff {
                initial_ms: 100,
                max_ms: 1000,
            },
        }
    }

    #[test]
    fn batches_on_size_or_interval() {
        let mut buffer = SpanBuffer::new(limits(), 0);
        assert_eq!(buffer.push(b"a"), Admission::Held);
        assert_eq!(buffer.next_dispatch(500), None, "interval not reached");
        assert_eq!(buffer.next_due_ms(), Some(1000));
        let partial = buffer.next_dispatch(1000).unwrap();
        assert_eq!(partial.batch.entries, b"a");
        assert_eq!(
            buffer.settle(partial, Verdict::Accepted, 1000, 0),
            Settled::Exported(1)
        );
        assert_eq!(buffer.push(b"b"), Admission::Held);
        assert_eq!(
            buffer.next_dispatch(1500),
            None,
            "the interval restarts at each batch"
        );
        assert_eq!(buffer.push(b"c"), Admission::BatchFull);
        let full = buffer.next_dispatch(1500).unwrap();
        assert_eq!(
            (full.batch.entries.as_slice(), full.batch.spans),
            (&b"bc"[..], 2)
        );
        assert_eq!(buffer.held(), 2, "in flight still holds room");
    }

    #[test]
    fn bounds_in_flight() {
        let mut buffer = SpanBuffer::new(limits(), 0);
        for entry in [b"a", b"b", b"c", b"d"] {
            buffer.push(entry);
        }
        let first = buffer.next_dispatch(0).unwrap();
        assert_eq!(buffer.next_dispatch(0), None, "one in flight at most");
        buffer.settle(first, Verdict::Accepted, 0, 0);
        assert!(buffer.next_dispatch(0).is_some());
    }

    #[test]
    fn every_span_counts_against_one_capacity_wherever_it_is() {
        let mut buffer = SpanBuffer::new(limits(), 0);
        for entry in [b"a", b"b", b"c", b"d"] {
            assert_ne!(
                buffer.push(entry),
                Admission::Dropped(DropReason::QueueFull)
            );
        }
        assert_eq!(buffer.push(b"e"), Admission::Dropped(DropReason::QueueFull));
        let sending = buffer.next_dispatch(0).unwrap();
        assert_eq!(
            buffer.push(b"e"),
            Admission::Dropped(DropReason::QueueFull),
            "in flight holds room"
        );
        assert_eq!(
            buffer.settle(sending, Verdict::Accepted, 0, 0),
            Settled::Exported(2)
        );
        assert_eq!(buffer.push(b"e"), Admission::Held);
    }

    #[test]
    fn a_retry_holds_room_and_its_cost_is_counted_apart() {
        let mut buffer = SpanBuffer::new(limits(), 0);
        for entry in [b"a", b"b", b"c", b"d"] {
            buffer.push(entry);
        }
        let failing = buffer.next_dispatch(0).unwrap();
        assert!(matches!(
            buffer.settle(failing, RETRY, 0, 0),
            Settled::Retrying { .. }
        ));
        assert_eq!(buffer.held(), 4);
        assert_eq!(
            buffer.push(b"e"),
            Admission::Dropped(DropReason::RetryBacklog),
            "refused because a retry holds room"
        );
        // Once the retry succeeds the room is free again, and a plain full buffer is QueueFull.
        let retry = buffer.next_dispatch(10_000).unwrap();
        assert_eq!(retry.failures, 1);
        assert_eq!(
            buffer.settle(retry, Verdict::Accepted, 10_000, 0),
            Settled::Exported(2)
        );
        buffer.push(b"e");
        buffer.push(b"f");
        assert_eq!(buffer.push(b"g"), Admission::Dropped(DropReason::QueueFull));
    }

    #[test]
    fn retries_back_off_then_drop() {
        let mut buffer = SpanBuffer::new(limits(), 0);
        buffer.push(b"a");
        buffer.push(b"b");
        let mut now = 0;
        let mut dispatch = buffer.next_dispatch(now).unwrap();
        let mut delays = vec![];
        loop {
            match buffer.settle(dispatch, RETRY, now, 0) {
                Settled::Retrying { at_ms } => {
                    delays.push(at_ms - now);
                    assert_eq!(
                        buffer.next_dispatch(at_ms - 1),
                        None,
                        "not before its delay"
                    );
                    assert_eq!(buffer.next_due_ms(), Some(at_ms));
                    now = at_ms;
                    dispatch = buffer.next_dispatch(now).unwrap();
                }
                Settled::Dropped(spans, reason) => {
                    assert_eq!((spans, reason), (2, DropReason::RetriesExhausted));
                    break;
                }
                Settled::Exported(_) => unreachable!(),
            }
        }
        assert_eq!(
            delays,
            [50, 100],
            "exponential, at the low end of the jitter"
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_throttling_hint_sets_the_retry_time() {
        let mut buffer = SpanBuffer::new(limits(), 0);
        buffer.push(b"a");
        buffer.push(b"b");
        let dispatch = buffer.next_dispatch(0).unwrap();
        let hinted = Verdict::Retryable {
            throttle_ms: Some(7_000),
        };
        assert_eq!(
            buffer.settle(dispatch, hinted, 5, 0),
            Settled::Retrying { at_ms: 7_005 }
        );
    }

    #[test]
    fn rejected_batches_are_not_retried() {
        let mut buffer = SpanBuffer::new(limits(), 0);
        buffer.push(b"a");
        buffer.push(b"b");
        let dispatch = buffer.next_dispatch(0).unwrap();
        assert_eq!(
            buffer.settle(dispatch, Verdict::Rejected, 0, 0),
            Settled::Dropped(2, DropReason::Rejected)
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.next_due_ms(), None);
    }

    #[test]
    fn close_flushes_the_partial_batch_and_refuses_new_spans() {
        let mut buffer = SpanBuffer::new(limits(), 0);
        buffer.push(b"a");
        buffer.close();
        assert_eq!(buffer.push(b"b"), Admission::Dropped(DropReason::Shutdown));
        assert_eq!(buffer.next_due_ms(), Some(0));
        let last = buffer.next_dispatch(1).unwrap();
        assert_eq!(last.batch.spans, 1);
        buffer.requeue(last);
        assert_eq!(
            buffer.next_dispatch(1).unwrap().failures,
            0,
            "a cut attempt is no failure"
        );
    }

    #[test]
    fn discard_and_abandon_release_everything_they_count() {
        let mut buffer = SpanBuffer::new(limits(), 0);
        for entry in [b"a", b"b", b"c"] {
            buffer.push(entry);
        }
        let sending = buffer.next_dispatch(0).unwrap();
        assert_eq!(buffer.discard(), 1, "the partial batch");
        assert_eq!(
            buffer.abandon(sending, DropReason::Shutdown),
            Settled::Dropped(2, DropReason::Shutdown)
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.in_flight(), 0);
    }

    #[test]
    fn retries_come_out_in_due_order() {
        let mut limits = limits();
        limits.max_in_flight = 2;
        let mut buffer = SpanBuffer::new(limits, 0);
        for entry in [b"a", b"b", b"c", b"d"] {
            buffer.push(entry);
        }
        let first = buffer.next_dispatch(0).unwrap();
        let second = buffer.next_dispatch(0).unwrap();
        let late = Verdict::Retryable {
            throttle_ms: Some(900),
        };
        let soon = Verdict::Retryable {
            throttle_ms: Some(100),
        };
        buffer.settle(first, late, 0, 0);
        buffer.settle(second, soon, 0, 0);
        assert_eq!(buffer.next_due_ms(), Some(100));
        assert_eq!(buffer.next_dispatch(100).unwrap().batch.entries, b"cd");
    }
}

//! The relay's bounded buffer, shared by the receiver, the join and the exporter. What it holds,
//! when a batch is due and what a failure means are trace-core's export policy
//! ([`SpanBuffer`]); this adds the lock, the clock, the wake-up and the counters.
//!
//! Each entry is one `ExportTraceServiceRequest.resource_spans` record holding one span, under
//! that span's own resource and scope: a sidecar's span keeps the resource and scope it came
//! with, a black-box span gets its workload's. Records appended one after another are an
//! `ExportTraceServiceRequest`, so a batch is sent as it is, and the buffer counts spans.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;
use trace_core::export::{
    Admission, BufferLimits, Dispatch, DropReason, Settled, SpanBuffer, Verdict,
};

use super::RelayCount;
use crate::metrics::Counts;

/// The buffer and its counters.
pub struct Queue {
    buffer: Mutex<SpanBuffer>,
    epoch: Instant,
    batch_ready: Notify,
    pub(super) counts: Counts<RelayCount>,
    dropped: Counts<DropReason>,
}

impl Queue {
    /// An empty queue with these bounds.
    pub fn new(
        limits: BufferLimits,
        counts: Counts<RelayCount>,
        dropped: Counts<DropReason>,
    ) -> Self {
        Self {
            buffer: Mutex::new(SpanBuffer::new(limits, 0)),
            epoch: Instant::now(),
            batch_ready: Notify::new(),
            counts,
            dropped,
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

    /// Offers one record; a full or closed queue drops it and counts it.
    pub fn push(&self, entry: &[u8]) {
        match self.lock().push(entry) {
            Admission::Held => {}
            Admission::BatchFull => self.batch_ready.notify_one(),
            Admission::Dropped(reason) => self.dropped.inc(reason),
        }
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

    /// When the next batch is due, on the queue's clock.
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
            Settled::Exported(spans) => self.counts.add(RelayCount::Exported, spans as u64),
            Settled::Dropped(spans, reason) => self.dropped.add(reason, spans as u64),
            Settled::Retrying { .. } => {}
        }
        settled
    }

    /// Takes back a batch whose attempt was cut short; it goes first again.
    pub fn requeue(&self, dispatch: Dispatch) {
        self.lock().requeue(dispatch);
    }

    /// Stops taking spans and makes everything held due at once.
    pub fn close(&self) {
        self.lock().close();
    }

    /// Spans held, in flight included.
    pub fn held(&self) -> usize {
        self.lock().held()
    }

    /// Drops and counts what is still held outside a batch in flight.
    pub fn discard(&self) -> usize {
        let spans = self.lock().discard();
        self.dropped.add(DropReason::Shutdown, spans as u64);
        spans
    }

    /// Spans dropped for `reason` so far.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason)
    }

    /// Every change to the buffer is complete before its guard drops, so a lock poisoned by a
    /// panic elsewhere still guards a whole buffer.
    fn lock(&self) -> MutexGuard<'_, SpanBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

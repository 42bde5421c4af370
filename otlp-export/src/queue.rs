//! The export policy's bounded buffer ([`SpanBuffer`]) behind a lock, shared by the producers
//! (proxy workers, receivers) and the exporter. What it holds, when a batch is due and what a
//! failure means are trace-core's; this adds the lock, the clock, the wake-up and the
//! counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use trace_core::export::{
    Admission, BufferLimits, Dispatch, DropReason, Settled, SpanBuffer, Verdict,
};

/// Where a binary counts what happens to its spans (its own metrics).
pub trait ExportCounters: Send + Sync {
    /// `spans` reached the collector.
    fn exported(&self, spans: u64);
    /// `spans` were dropped for `reason`.
    fn dropped(&self, reason: DropReason, spans: u64);
    /// One export attempt failed.
    fn failed_attempt(&self);
}

/// The buffer and its counters.
pub struct Queue {
    buffer: Mutex<SpanBuffer>,
    /// The queue's clock: milliseconds since it was made.
    epoch: Instant,
    /// Wakes the exporter when a batch is full.
    batch_ready: Notify,
    counters: Box<dyn ExportCounters>,
    /// Drops by reason, in [`DropReason::ALL`] order: the exporter reports them in its logs.
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl Queue {
    /// An empty queue with these bounds, counting into `counters`.
    pub fn new(limits: BufferLimits, counters: Box<dyn ExportCounters>) -> Self {
        Self {
            buffer: Mutex::new(SpanBuffer::new(limits, 0)),
            epoch: Instant::now(),
            batch_ready: Notify::new(),
            counters,
            dropped: Default::default(),
        }
    }

    /// Milliseconds on the queue's clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The queue's clock at `ms`.
    pub fn instant(&self, ms: u64) -> tokio::time::Instant {
        (self.epoch + Duration::from_millis(ms)).into()
    }

    /// Offers one encoded entry; a full or closed queue drops it and counts it. Never waits
    /// for the exporter, and wakes it only when a batch is full: a cross-thread wake-up per
    /// span would cost more than making the span.
    pub fn push(&self, entry: &[u8]) {
        let admission = self.lock().push(entry);
        match admission {
            Admission::Held => {}
            Admission::BatchFull => self.batch_ready.notify_one(),
            Admission::Dropped(reason) => self.count_dropped(reason, 1),
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
        if verdict != Verdict::Accepted {
            self.counters.failed_attempt();
        }
        let now = self.now_ms();
        let settled = self
            .lock()
            .settle(dispatch, verdict, now, fastrand::u64(..));
        match settled {
            Settled::Exported(spans) => self.counters.exported(spans as u64),
            Settled::Dropped(spans, reason) => self.count_dropped(reason, spans),
            Settled::Retrying { .. } => {}
        }
        settled
    }

    /// Takes back a batch whose attempt was cut short; it is sent again first.
    pub fn requeue(&self, dispatch: Dispatch) {
        self.lock().requeue(dispatch);
    }

    /// Stops taking spans and makes everything held due at once. Spans offered afterwards
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

    /// Spans dropped for `reason` so far.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.dropped.get(i))
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    fn count_dropped(&self, reason: DropReason, spans: usize) {
        if spans == 0 {
            return;
        }
        if let Some(count) = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.dropped.get(i))
        {
            count.fetch_add(spans as u64, Ordering::Relaxed);
        }
        self.counters.dropped(reason, spans as u64);
    }

    /// Every change to the buffer is complete before its guard drops, so a lock poisoned by a
    /// panic elsewhere still guards a whole buffer.
    fn lock(&self) -> MutexGuard<'_, SpanBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use trace_core::export::Backoff;

    use super::*;

    /// Counters a test reads.
    #[derive(Default)]
    struct Seen {
        exported: AtomicU64,
        failed: AtomicU64,
        dropped: Mutex<Vec<(DropReason, u64)>>,
    }

    impl ExportCounters for Arc<Seen> {
        fn exported(&self, spans: u64) {
            self.exported.fetch_add(spans, Ordering::Relaxed);
        }
        fn dropped(&self, reason: DropReason, spans: u64) {
            self.dropped.lock().unwrap().push((reason, spans));
        }
        fn failed_attempt(&self) {
            self.failed.fetch_add(1, Ordering::Relaxed);
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

    #[test]
    fn full_batches_are_handed_over_and_every_drop_is_counted() {
        let seen = Arc::new(Seen::default());
        let queue = Queue::new(limits(2, 3), Box::new(seen.clone()));
        for _ in 0..4 {
            queue.push(b"x");
        }
        assert_eq!(queue.dropped(DropReason::QueueFull), 1);
        let full = queue.next_dispatch().unwrap();
        assert_eq!(full.batch.spans, 2);
        assert!(
            queue.next_dispatch().is_none(),
            "one in flight, and the interval is long"
        );
        queue.push(b"x");
        assert_eq!(
            queue.dropped(DropReason::QueueFull),
            2,
            "in flight holds room"
        );
        queue.settle(full, Verdict::Accepted);
        assert_eq!(seen.exported.load(Ordering::Relaxed), 2);
        queue.close();
        let rest = queue.next_dispatch().unwrap();
        assert_eq!(rest.batch.spans, 1, "closing makes the partial batch due");
        queue.push(b"x");
        assert_eq!(queue.dropped(DropReason::Shutdown), 1);
        queue.settle(rest, Verdict::Rejected);
        assert_eq!(seen.failed.load(Ordering::Relaxed), 1);
        assert_eq!(queue.dropped(DropReason::Rejected), 1);
        assert_eq!(
            *seen.dropped.lock().unwrap(),
            [
                (DropReason::QueueFull, 1),
                (DropReason::QueueFull, 1),
                (DropReason::Shutdown, 1),
                (DropReason::Rejected, 1)
            ]
        );
    }
}

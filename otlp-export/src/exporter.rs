//! The exporter task: sends every batch that is due, sleeps until the next one is (or a batch
//! fills up), and flushes what is held at shutdown within a bounded time, counting what it
//! could not send.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use trace_core::export::{Dispatch, DropReason, ExportDefaults, ExportSettings, Settled, Verdict};
use trace_core::otlp::encode_request_from_entries;
use trace_core::span::{Resource, Scope};

use crate::queue::Queue;
use crate::transport::{Target, Transport};

/// What the queued entries are, and so how a batch becomes a request body.
pub enum Framing {
    /// Each entry is already a whole part of the body: a `ResourceSpans` record (one span
    /// under its own resource and scope) or a line for the terminal. Sent as they are.
    Complete,
    /// Each entry is a `ScopeSpans.spans` entry of this one resource and scope.
    Spans {
        /// The resource of every span.
        resource: Resource,
        /// The instrumentation scope of every span.
        scope: Scope,
    },
}

/// Sends one queue's batches to one target.
pub struct Exporter {
    /// Names this exporter in its logs.
    name: &'static str,
    queue: Arc<Queue>,
    target: Target,
    framing: Framing,
    flush_interval: Duration,
    shutdown_timeout: Duration,
    /// The batch being sent. It stays here, not in a future, so that a send cut short by
    /// shutdown (or by its task being dropped) still has it: at least once, not at most once.
    in_flight: Mutex<Option<Dispatch>>,
}

impl Exporter {
    /// An exporter of `queue` to `target`, with the intervals of `settings`.
    pub fn new<D: ExportDefaults>(
        name: &'static str,
        queue: Arc<Queue>,
        target: Target,
        framing: Framing,
        settings: &ExportSettings<D>,
    ) -> Self {
        Self {
            name,
            queue,
            target,
            framing,
            flush_interval: Duration::from_millis(settings.flush_interval_ms),
            shutdown_timeout: Duration::from_millis(settings.shutdown_timeout_ms),
            in_flight: Mutex::new(None),
        }
    }

    /// The queue this exporter drains.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// Sends batches as they fall due until `shutdown` completes; call [`Exporter::flush`]
    /// (or [`Exporter::flush_blocking`]) afterwards.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let transport = loop {
            match self.target.connect() {
                Ok(transport) => break transport,
                Err(error) => {
                    tracing::error!(exporter = self.name, %error, "cannot make the export client; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(self.flush_interval) => {}
                        () = &mut shutdown => return,
                    }
                }
            }
        };
        let mut drops = DropReport::default();
        loop {
            tokio::select! {
                () = self.send_due(&transport) => {}
                () = &mut shutdown => return,
            }
            drops.report(self.name, &self.queue);
            // A partial batch does not wake the exporter, so it looks again at least once per
            // flush interval.
            let latest = tokio::time::Instant::now() + self.flush_interval;
            let wake = self
                .queue
                .next_due_ms()
                .map_or(latest, |due| self.queue.instant(due).min(latest));
            tokio::select! {
                () = self.queue.batch_ready() => {}
                () = tokio::time::sleep_until(wake) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// [`Exporter::run`] until `shutdown`, then [`Exporter::flush`]: the whole life of an
    /// exporter in a runtime that outlives it.
    pub async fn serve(&self, shutdown: impl Future<Output = ()>) {
        self.run(shutdown).await;
        self.flush().await;
    }

    /// Closes the queue and sends everything held, for at most the shutdown timeout; what is
    /// left then is dropped and counted as dropped at shutdown. Returns the spans lost.
    pub async fn flush(&self) -> usize {
        self.queue.close();
        self.requeue_cut_short();
        let held = self.queue.held();
        if held == 0 {
            return 0;
        }
        let flushed = match self.target.connect() {
            Ok(transport) => tokio::time::timeout(self.shutdown_timeout, async {
                loop {
                    self.send_due(&transport).await;
                    match self.queue.next_due_ms() {
                        Some(due) => tokio::time::sleep_until(self.queue.instant(due)).await,
                        None => break,
                    }
                }
            })
            .await
            .is_ok(),
            Err(error) => {
                tracing::error!(exporter = self.name, %error, "cannot make the export client to flush");
                false
            }
        };
        self.requeue_cut_short();
        let lost = self.queue.discard();
        if flushed && lost == 0 {
            tracing::info!(exporter = self.name, spans = held, "flushed on shutdown");
        } else {
            tracing::warn!(
                exporter = self.name,
                spans = lost,
                "could not flush everything on shutdown: spans dropped"
            );
        }
        lost
    }

    /// [`Exporter::flush`] on a thread and runtime of its own, for a caller that may be
    /// inside a runtime being shut down (Pingora drops its services' tasks that way). Waits
    /// for it at most the shutdown timeout and a little more.
    pub fn flush_blocking(self: &Arc<Self>) -> usize {
        let exporter = self.clone();
        let (done, finished) = std::sync::mpsc::channel();
        let flush = std::thread::Builder::new()
            .name(format!("{}-flush", self.name))
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let _ = done.send(runtime.block_on(exporter.flush()));
            });
        let waited = flush.ok().and_then(|_| {
            finished
                .recv_timeout(self.shutdown_timeout + Duration::from_secs(1))
                .ok()
        });
        waited.unwrap_or_else(|| {
            let lost = self.queue.discard();
            tracing::warn!(
                exporter = self.name,
                spans = lost,
                "could not flush on shutdown"
            );
            lost
        })
    }

    /// Sends every batch that is due until none is.
    async fn send_due(&self, transport: &Transport) {
        while let Some(dispatch) = self.queue.next_dispatch() {
            let body = self.body(&dispatch);
            let (attempt, spans) = (dispatch.failures + 1, dispatch.batch.spans);
            *self.in_flight() = Some(dispatch);
            let (delivery, error) = transport.send(body).await;
            let verdict = delivery.verdict();
            if verdict != Verdict::Accepted {
                tracing::warn!(
                    exporter = self.name,
                    attempt,
                    error = %error.unwrap_or_default(),
                    ?verdict,
                    spans,
                    "export failed"
                );
            }
            let Some(dispatch) = self.in_flight().take() else {
                continue;
            };
            if let Settled::Dropped(spans, reason) = self.queue.settle(dispatch, verdict) {
                tracing::warn!(
                    exporter = self.name,
                    spans,
                    reason = reason.as_str(),
                    "spans dropped: export gave up"
                );
            }
        }
    }

    fn body(&self, dispatch: &Dispatch) -> Bytes {
        let entries = &dispatch.batch.entries;
        match &self.framing {
            Framing::Complete => Bytes::copy_from_slice(entries),
            Framing::Spans { resource, scope } => {
                let mut body = Vec::with_capacity(entries.len() + 256);
                encode_request_from_entries(resource, scope, entries, &mut body);
                Bytes::from(body)
            }
        }
    }

    fn requeue_cut_short(&self) {
        if let Some(cut_short) = self.in_flight().take() {
            self.queue.requeue(cut_short);
        }
    }

    /// The slot is only ever swapped whole, so a lock poisoned by a panic elsewhere still
    /// holds a whole batch or none.
    fn in_flight(&self) -> MutexGuard<'_, Option<Dispatch>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Logs spans refused by a full queue at most once per batch or flush interval, not once per
/// span.
#[derive(Default)]
struct DropReport {
    queue_full: u64,
    retry_backlog: u64,
}

impl DropReport {
    fn report(&mut self, name: &'static str, queue: &Queue) {
        let full = queue.dropped(DropReason::QueueFull);
        if full > self.queue_full {
            tracing::warn!(
                exporter = name,
                spans = full - self.queue_full,
                "export queue full: spans dropped since the last report (export.queue_size, or a slow collector)"
            );
            self.queue_full = full;
        }
        let backlog = queue.dropped(DropReason::RetryBacklog);
        if backlog > self.retry_backlog {
            tracing::warn!(
                exporter = name,
                spans = backlog - self.retry_backlog,
                "export queue full of batches waiting to be retried: spans dropped since the last report (the collector is failing)"
            );
            self.retry_backlog = backlog;
        }
    }
}

//! The relay: every span the agent has, the sidecars' and its own black-box spans, to the real
//! collector, batched and retried with backoff in a bounded buffer by trace-core's export
//! policy, drops counted by reason.
//!
//! Sampling is the edge's: a black-box span carries the decision its parent gave it (the
//! header's flag, the sidecar span's, the VM server span's), or the configured sampler's
//! (hash_seed or proportional) when it starts a trace; unsampled ones are counted and not
//! sent. The sidecars' spans were sampled where they were made and are forwarded as they are.

mod queue;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use trace_core::export::{BufferLimits, Dispatch, DropReason, Settled, Verdict};
use trace_core::otlp::encode_request;
use trace_core::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use trace_core::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans};
use trace_core::span::Scope;

pub use self::queue::Queue;
pub use self::transport::Transport;
use crate::join::Resolved;
use crate::metrics::{Counts, Label};

/// One thing the relay counts: the `event` label of `node_probe_relay_events_total`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RelayCount {
    /// Sidecar spans offered for forwarding.
    Forwarded,
    /// Sampled black-box spans offered.
    BlackBox,
    /// Black-box spans not sent because their trace is not sampled.
    Unsampled,
    /// Spans the collector accepted.
    Exported,
    /// Export attempts that failed.
    ExportErrors,
}

impl Label for RelayCount {
    const ALL: &'static [Self] = &[
        Self::Forwarded,
        Self::BlackBox,
        Self::Unsampled,
        Self::Exported,
        Self::ExportErrors,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::BlackBox => "black_box",
            Self::Unsampled => "unsampled",
            Self::Exported => "exported",
            Self::ExportErrors => "export_errors",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl Label for DropReason {
    const ALL: &'static [Self] = &DropReason::ALL;

    fn label(self) -> &'static str {
        self.as_str()
    }

    fn index(self) -> usize {
        DropReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

/// The handle the receiver and the join offer spans through. Offering never waits.
#[derive(Clone)]
pub struct Relay {
    queue: Arc<Queue>,
    scope: Arc<Scope>,
}

impl Relay {
    /// A relay with these bounds.
    pub fn new(
        limits: BufferLimits,
        counts: Counts<RelayCount>,
        dropped: Counts<DropReason>,
    ) -> Self {
        Self {
            queue: Arc::new(Queue::new(limits, counts, dropped)),
            scope: Arc::new(Scope {
                name: "node-probe".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            }),
        }
    }

    /// Offers a black-box span: sent when its trace is sampled, counted otherwise.
    pub fn black_box(&self, resolved: &Resolved) {
        if !resolved.span.context.is_sampled() {
            self.queue.counts.inc(RelayCount::Unsampled);
            return;
        }
        self.queue.counts.inc(RelayCount::BlackBox);
        let mut entry = Vec::with_capacity(512);
        encode_request(
            &resolved.resource,
            &self.scope,
            std::slice::from_ref(&resolved.span),
            &mut entry,
        );
        self.queue.push(&entry);
    }

    /// Offers every span of a request a sidecar exported, each under its own resource and
    /// scope, unchanged. Returns how many there were.
    pub fn forward(&self, request: &ExportTraceServiceRequest) -> usize {
        let mut spans = 0;
        let mut entry = Vec::with_capacity(512);
        for resource_spans in &request.resource_spans {
            for scope_spans in &resource_spans.scope_spans {
                for span in &scope_spans.spans {
                    spans += 1;
                    let one = ExportTraceServiceRequest {
                        resource_spans: vec![ResourceSpans {
                            resource: resource_spans.resource.clone(),
                            scope_spans: vec![ScopeSpans {
                                scope: scope_spans.scope.clone(),
                                spans: vec![span.clone()],
                                schema_url: scope_spans.schema_url.clone(),
                            }],
                            schema_url: resource_spans.schema_url.clone(),
                        }],
                    };
                    entry.clear();
                    // Encoding into a Vec cannot run out of room.
                    if one.encode(&mut entry).is_ok() {
                        self.queue.push(&entry);
                    }
                }
            }
        }
        self.queue.counts.add(RelayCount::Forwarded, spans as u64);
        spans
    }

    /// Spans held now, in flight included.
    pub fn held(&self) -> usize {
        self.queue.held()
    }

    /// The shared queue, for the exporter.
    pub fn queue(&self) -> Arc<Queue> {
        self.queue.clone()
    }
}

/// Sends the relay's batches until shut down, then flushes.
pub struct Exporter {
    queue: Arc<Queue>,
    transport: Transport,
    flush_interval: Duration,
}

impl Exporter {
    /// An exporter draining `relay` through `transport`; a partial batch is looked at least
    /// once per `flush_interval`.
    pub fn new(relay: &Relay, transport: Transport, flush_interval: Duration) -> Self {
        Self {
            queue: relay.queue(),
            transport,
            flush_interval,
        }
    }

    /// Runs until `shutdown` says so, then sends what is held for at most `flush_timeout`;
    /// what is left then is dropped and counted as dropped at shutdown.
    pub async fn run(
        self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        flush_timeout: Duration,
    ) {
        let mut in_flight = None;
        while !*shutdown.borrow() {
            let sending = self.send_due(&mut in_flight);
            tokio::select! {
                () = sending => {}
                _ = shutdown.changed() => break,
            }
            let latest = tokio::time::Instant::now() + self.flush_interval;
            let wake = self
                .queue
                .next_due_ms()
                .map_or(latest, |due| self.queue.instant(due).min(latest));
            tokio::select! {
                () = self.queue.batch_ready() => {}
                () = tokio::time::sleep_until(wake) => {}
                _ = shutdown.changed() => break,
            }
        }
        // Spans offered after this are counted as dropped at shutdown; the batch cut short
        // goes first, so nothing is sent at most once that could be sent at least once.
        self.queue.close();
        if let Some(cut_short) = in_flight.take() {
            self.queue.requeue(cut_short);
        }
        let held = self.queue.held();
        let flushed = tokio::time::timeout(flush_timeout, async {
            loop {
                self.send_due(&mut in_flight).await;
                match self.queue.next_due_ms() {
                    Some(due) => tokio::time::sleep_until(self.queue.instant(due)).await,
                    None => break,
                }
            }
        })
        .await;
        if let Some(cut_short) = in_flight.take() {
            self.queue.requeue(cut_short);
        }
        let lost = self.queue.discard();
        match flushed {
            Ok(()) if lost == 0 => tracing::info!(spans = held, "relay flushed on shutdown"),
            _ => tracing::warn!(
                spans = lost,
                "relay could not flush everything on shutdown: spans dropped"
            ),
        }
    }

    /// Sends every batch that is due. The batch being sent stays in `in_flight`, so that a
    /// send cut short by shutdown still has it.
    async fn send_due(&self, in_flight: &mut Option<Dispatch>) {
        while let Some(dispatch) = self.queue.next_dispatch() {
            let dispatch = in_flight.insert(dispatch);
            let body = Bytes::from(dispatch.batch.entries.clone());
            let (delivery, error) = self.transport.send(body).await;
            let verdict = delivery.verdict();
            if verdict != Verdict::Accepted {
                self.queue.counts.inc(RelayCount::ExportErrors);
                tracing::warn!(
                    attempt = dispatch.failures + 1,
                    error = %error.unwrap_or_default(),
                    ?verdict,
                    spans = dispatch.batch.spans,
                    "relay export failed"
                );
            }
            if let Some(dispatch) = in_flight.take()
                && let Settled::Dropped(spans, reason) = self.queue.settle(dispatch, verdict)
            {
                tracing::warn!(
                    spans,
                    reason = reason.as_str(),
                    "spans dropped: export gave up"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;

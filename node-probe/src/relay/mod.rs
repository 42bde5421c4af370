//! The relay: every span the agent has, the sidecars' and its own black-box spans, to the real
//! collector, batched and retried with backoff in a bounded buffer by trace-core's export
//! policy, drops counted by reason.
//!
//! Sampling is the edge's: a black-box span carries the decision its parent gave it (the
//! header's flag, the sidecar span's, the VM server span's), or the configured sampler's
//! (hash_seed or proportional) when it starts a trace; unsampled ones are counted and not
//! sent. The sidecars' spans were sampled where they were made and are forwarded as they are.

use std::sync::Arc;

use otlp_export::{ExportCounters, Queue};
use prost::Message;
use trace_core::export::{BufferLimits, DropReason};
use trace_core::otlp::encode_request;
use trace_core::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use trace_core::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans};
use trace_core::span::Scope;

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
    counts: Counts<RelayCount>,
    scope: Arc<Scope>,
}

/// The export counters, in the agent's metrics.
struct RelayCounters {
    counts: Counts<RelayCount>,
    dropped: Counts<DropReason>,
}

impl ExportCounters for RelayCounters {
    fn exported(&self, spans: u64) {
        self.counts.add(RelayCount::Exported, spans);
    }

    fn dropped(&self, reason: DropReason, spans: u64) {
        self.dropped.add(reason, spans);
    }

    fn failed_attempt(&self) {
        self.counts.inc(RelayCount::ExportErrors);
    }
}

impl Relay {
    /// A relay with these bounds. Each entry of its queue is one
    /// `ExportTraceServiceRequest.resource_spans` record holding one span under that span's
    /// own resource and scope (a sidecar's span keeps those it came with, a black-box span
    /// gets its workload's), so a batch is a request as it is.
    pub fn new(
        limits: BufferLimits,
        counts: Counts<RelayCount>,
        dropped: Counts<DropReason>,
    ) -> Self {
        let counters = RelayCounters {
            counts: counts.clone(),
            dropped,
        };
        Self {
            queue: Arc::new(Queue::new(limits, Box::new(counters))),
            counts,
            scope: Arc::new(Scope {
                name: "node-probe".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            }),
        }
    }

    /// Offers a black-box span: sent when its trace is sampled, counted otherwise.
    pub fn black_box(&self, resolved: &Resolved) {
        if !resolved.span.context.is_sampled() {
            self.counts.inc(RelayCount::Unsampled);
            return;
        }
        self.counts.inc(RelayCount::BlackBox);
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
        self.counts.add(RelayCount::Forwarded, spans as u64);
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

    /// What the relay counted.
    pub fn counts(&self) -> &Counts<RelayCount> {
        &self.counts
    }
}

#[cfg(test)]
mod tests;

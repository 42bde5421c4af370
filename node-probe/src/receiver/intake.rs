//! What the receiver does with a request, whichever protocol brought it: every span goes to
//! the relay as it is, and the ones that record an upstream 4-tuple go to the join.

use tokio::sync::mpsc;
use trace_core::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;

use crate::join::SidecarSpan;
use crate::metrics::{Counts, Label};
use crate::relay::Relay;

/// One thing the receiver counts: the `event` label of `node_probe_receiver_events_total`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReceiverCount {
    /// Export requests accepted.
    Requests,
    /// Spans in them.
    Spans,
    /// Spans with an upstream 4-tuple, handed to the join.
    Joinable,
    /// Joinable spans the join could not take because its queue was full.
    JoinQueueFull,
    /// Bodies that are no `ExportTraceServiceRequest` (answered 400).
    Malformed,
    /// Bodies over the size bound (answered 413).
    TooLarge,
    /// Requests in a format not served: JSON, a compressed body (answered 415).
    Unsupported,
}

impl Label for ReceiverCount {
    const ALL: &'static [Self] = &[
        Self::Requests,
        Self::Spans,
        Self::Joinable,
        Self::JoinQueueFull,
        Self::Malformed,
        Self::TooLarge,
        Self::Unsupported,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Spans => "spans",
            Self::Joinable => "joinable",
            Self::JoinQueueFull => "join_queue_full",
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::Unsupported => "unsupported",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The receiver's way into the relay and the join.
#[derive(Clone)]
pub struct Intake {
    relay: Relay,
    join: mpsc::Sender<Vec<SidecarSpan>>,
    /// The receiver's counters.
    pub counts: Counts<ReceiverCount>,
}

impl Intake {
    /// An intake forwarding to `relay` and feeding `join`.
    pub fn new(
        relay: Relay,
        join: mpsc::Sender<Vec<SidecarSpan>>,
        counts: Counts<ReceiverCount>,
    ) -> Self {
        Self {
            relay,
            join,
            counts,
        }
    }

    /// Takes one decoded request. Never waits: a join that is behind loses the joins (counted),
    /// not the spans.
    pub fn accept(&self, request: &ExportTraceServiceRequest) {
        self.counts.inc(ReceiverCount::Requests);
        let spans = self.relay.forward(request);
        self.counts.add(ReceiverCount::Spans, spans as u64);
        let joinable: Vec<SidecarSpan> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .filter_map(SidecarSpan::from_proto)
            .collect();
        if joinable.is_empty() {
            return;
        }
        let count = joinable.len() as u64;
        self.counts.add(ReceiverCount::Joinable, count);
        if self.join.try_send(joinable).is_err() {
            self.counts.add(ReceiverCount::JoinQueueFull, count);
        }
    }
}

//! What the join counts, and where black-box spans found their parents.

use crate::metrics::Label;

/// Where a black-box span's parent came from: `threadline.parent_source`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParentSource {
    /// The `traceparent` in the request the workload received or sent.
    Header,
    /// The sidecar span whose upstream 4-tuple and time window match.
    FourTuple,
    /// The VM's server span in flight when it made the call.
    VmInflight,
    /// None: the span starts a trace.
    None,
}

impl Label for ParentSource {
    const ALL: &'static [Self] = &[Self::Header, Self::FourTuple, Self::VmInflight, Self::None];

    fn label(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::FourTuple => "four_tuple",
            Self::VmInflight => "vm_inflight",
            Self::None => "none",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One thing the join counts: the `event` label of `node_probe_join_events_total`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JoinCount {
    /// Sidecar spans with an upstream 4-tuple, indexed.
    Indexed,
    /// Indexed spans evicted before their time because the index was full.
    IndexFull,
    /// Black-box spans that waited for their sidecar span.
    Waited,
    /// Black-box spans that could not wait because the pending bound was reached.
    PendingFull,
    /// Sidecar spans that matched a black-box span already sent on without them.
    LateJoins,
    /// `traceparent` headers that trace-core refused.
    HeaderInvalid,
    /// `traceparent` headers the capture cut.
    HeaderCut,
    /// Calls whose in-flight server span was not resolved in time.
    InflightExpired,
}

impl Label for JoinCount {
    const ALL: &'static [Self] = &[
        Self::Indexed,
        Self::IndexFull,
        Self::Waited,
        Self::PendingFull,
        Self::LateJoins,
        Self::HeaderInvalid,
        Self::HeaderCut,
        Self::InflightExpired,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Indexed => "indexed",
            Self::IndexFull => "index_full",
            Self::Waited => "waited",
            Self::PendingFull => "pending_full",
            Self::LateJoins => "late_joins",
            Self::HeaderInvalid => "header_invalid",
            Self::HeaderCut => "header_cut",
            Self::InflightExpired => "inflight_expired",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

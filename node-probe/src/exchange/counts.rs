//! What the exchange builder counts.

use crate::metrics::Label;

/// One thing the exchange builder counts, the `event` label of
/// `node_probe_exchange_events_total`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExchangeCount {
    /// Request starts taken.
    Requests,
    /// Response starts taken.
    Responses,
    /// Exchanges finished and handed on.
    Exchanges,
    /// Requests sent before the previous one's response had started (pipelining).
    Pipelined,
    /// Starts and head segments whose bytes had been seen (retransmits), dropped.
    Retransmits,
    /// Request heads split across segments, reassembled from continuation events.
    HeadsSplit,
    /// Split heads whose end was found.
    HeadsReassembled,
    /// Heads longer than the capture (huge header blocks): read as far as captured.
    HeadsCut,
    /// Split heads read from their first segment only, because the bound on heads held at
    /// once was reached.
    AssembliesRefused,
    /// Request starts that are no HTTP/1 request line after all.
    MalformedRequests,
    /// Response starts that are no status line after all.
    MalformedResponses,
    /// Responses with no request waiting for them (a connection picked up mid-way).
    UnmatchedResponses,
    /// Requests from the side that had not been the client of the connection.
    DirectionConflicts,
    /// 1xx interim responses (the final response follows).
    InterimResponses,
    /// Connections switched to another protocol (101).
    Upgrades,
    /// Exchanges cut by a reset.
    Resets,
    /// Requests that got no response (closed, timed out).
    NoResponse,
    /// Responses shorter than their Content-Length when the connection closed.
    Incomplete,
    /// Events of new connections refused because the connection table was full.
    ConnectionsRefused,
    /// Requests refused because their connection had the most requests open already.
    PipelineOverflow,
    /// Events whose kind, direction or prefix this build cannot read.
    UnknownEvents,
    /// Outgoing calls made while the VM served more than one request: the latest is taken
    /// as the parent.
    InflightAmbiguous,
}

impl Label for ExchangeCount {
    const ALL: &'static [Self] = &[
        Self::Requests,
        Self::Responses,
        Self::Exchanges,
        Self::Pipelined,
        Self::Retransmits,
        Self::HeadsSplit,
        Self::HeadsReassembled,
        Self::HeadsCut,
        Self::AssembliesRefused,
        Self::MalformedRequests,
        Self::MalformedResponses,
        Self::UnmatchedResponses,
        Self::DirectionConflicts,
        Self::InterimResponses,
        Self::Upgrades,
        Self::Resets,
        Self::NoResponse,
        Self::Incomplete,
        Self::ConnectionsRefused,
        Self::PipelineOverflow,
        Self::UnknownEvents,
        Self::InflightAmbiguous,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Responses => "responses",
            Self::Exchanges => "exchanges",
            Self::Pipelined => "pipelined",
            Self::Retransmits => "retransmits",
            Self::HeadsSplit => "heads_split",
            Self::HeadsReassembled => "heads_reassembled",
            Self::HeadsCut => "heads_cut",
            Self::AssembliesRefused => "assemblies_refused",
            Self::MalformedRequests => "malformed_requests",
            Self::MalformedResponses => "malformed_responses",
            Self::UnmatchedResponses => "unmatched_responses",
            Self::DirectionConflicts => "direction_conflicts",
            Self::InterimResponses => "interim_responses",
            Self::Upgrades => "upgrades",
            Self::Resets => "resets",
            Self::NoResponse => "no_response",
            Self::Incomplete => "incomplete",
            Self::ConnectionsRefused => "connections_refused",
            Self::PipelineOverflow => "pipeline_overflow",
            Self::UnknownEvents => "unknown_events",
            Self::InflightAmbiguous => "inflight_ambiguous",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_count_at_its_index() {
        for (i, c) in ExchangeCount::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}

//! The kernel-side counters: one `u64` per [`Counter`] in the per-CPU
//! [`COUNTERS`](crate::COUNTERS) array. The agent sums the CPUs and exports each as a metric.

/// One kernel-side counter; its discriminant is its index in [`COUNTERS`](crate::COUNTERS).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Counter {
    /// Every packet either program saw.
    PacketsSeen = 0,
    /// Packets that are not TCP over IPv4 or IPv6 (ARP, UDP, ICMP, ...): passed, not a failure.
    NotTcp = 1,
    /// Malformed or truncated frames (every [`ParseError`](crate::ParseError) not counted by
    /// another counter).
    ParseFailures = 2,
    /// IPv4 fragments, which are not reassembled.
    Ipv4Fragments = 3,
    /// IPv6 packets whose next header is an extension header, which is not followed.
    Ipv6Extensions = 4,
    /// Packets carrying payload on a connection that has not carried an HTTP/1 message start
    /// in that direction (TLS, other protocols, a connection picked up mid-message).
    NonHttpPayloads = 5,
    /// Retransmitted segments (their bytes were already seen), which emit nothing.
    Retransmits = 6,
    /// Events written to the [`EVENTS`](crate::EVENTS) ring.
    EventsEmitted = 7,
    /// Events lost because the ring had no room (a failed reservation).
    RingbufFull = 8,
    /// Connections that could not be added to [`FLOWS`](crate::FLOWS).
    FlowInsertFailed = 9,
}

impl Counter {
    /// Number of counters: the length of the [`COUNTERS`](crate::COUNTERS) array.
    pub const COUNT: u32 = 10;

    /// Every counter, in index order.
    pub const ALL: [Counter; Self::COUNT as usize] = [
        Self::PacketsSeen,
        Self::NotTcp,
        Self::ParseFailures,
        Self::Ipv4Fragments,
        Self::Ipv6Extensions,
        Self::NonHttpPayloads,
        Self::Retransmits,
        Self::EventsEmitted,
        Self::RingbufFull,
        Self::FlowInsertFailed,
    ];

    /// The counter's index in the array.
    #[inline(always)]
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// A stable snake_case name, for metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PacketsSeen => "packets_seen",
            Self::NotTcp => "not_tcp",
            Self::ParseFailures => "parse_failures",
            Self::Ipv4Fragments => "ipv4_fragments",
            Self::Ipv6Extensions => "ipv6_extensions",
            Self::NonHttpPayloads => "non_http_payloads",
            Self::Retransmits => "retransmits",
            Self::EventsEmitted => "events_emitted",
            Self::RingbufFull => "ringbuf_full",
            Self::FlowInsertFailed => "flow_insert_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_counter_at_its_index() {
        for (i, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(counter.index() as usize, i);
        }
        assert_eq!(Counter::ALL.len(), Counter::COUNT as usize);
    }

    #[test]
    fn names_are_distinct() {
        for (i, a) in Counter::ALL.iter().enumerate() {
            for b in Counter::ALL.iter().skip(i + 1) {
                assert_ne!(a.name(), b.name());
            }
        }
    }
}

//! The span context that crosses process boundaries.

use crate::id::{SpanId, TraceId};
use crate::w3c::TraceState;

/// W3C trace flags. Only the bits defined by Trace Context Level 2 are ever kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// The caller may have recorded trace data (`01`).
    pub const SAMPLED: Self = Self(0x01);
    /// At least the right-most 7 bytes of the trace ID are random (`02`, Level 2).
    pub const RANDOM: Self = Self(0x02);
    /// Every flag this implementation knows; the rest are reserved and sent as zero.
    const KNOWN: u8 = 0x03;

    /// Keeps only the known flags of a received byte.
    pub const fn from_wire(byte: u8) -> Self {
        Self(byte & Self::KNOWN)
    }

    /// The byte to send.
    pub const fn to_wire(self) -> u8 {
        self.0
    }

    /// Whether the sampled flag is set.
    pub const fn is_sampled(self) -> bool {
        self.0 & Self::SAMPLED.0 != 0
    }

    /// Whether the random flag is set.
    pub const fn is_random(self) -> bool {
        self.0 & Self::RANDOM.0 != 0
    }

    /// These flags with the sampled flag set or cleared.
    pub const fn with_sampled(self, sampled: bool) -> Self {
        if sampled {
            Self(self.0 | Self::SAMPLED.0)
        } else {
            Self(self.0 & !Self::SAMPLED.0)
        }
    }

    /// These flags with the random flag set or cleared.
    pub const fn with_random(self, random: bool) -> Self {
        if random {
            Self(self.0 | Self::RANDOM.0)
        } else {
            Self(self.0 & !Self::RANDOM.0)
        }
    }
}

/// The part of a span that the next hop needs: IDs, flags and vendor state.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SpanContext {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// Sampled and random flags.
    pub flags: TraceFlags,
    /// Vendor state, propagated in `tracestate`.
    pub trace_state: TraceState,
}

impl SpanContext {
    /// True when both IDs are valid.
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }

    /// Whether the trace is sampled.
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_flags_are_dropped() {
        let flags = TraceFlags::from_wire(0xff);
        assert_eq!(flags.to_wire(), 0x03);
        assert!(flags.is_sampled() && flags.is_random());
        assert_eq!(flags.with_sampled(false).to_wire(), 0x02);
        assert_eq!(flags.with_random(false).to_wire(), 0x01);
    }
}

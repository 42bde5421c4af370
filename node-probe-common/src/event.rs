//! The event the kernel writes to the [`EVENTS`](crate::EVENTS) ring, and its safe decoding in
//! user space.
//!
//! Enumerations travel as raw integers and are decoded with `Option`, so a value the agent
//! does not know (an older agent with a newer object) is a counted error, not undefined
//! behaviour. Every field is explicit, padding included, so the layout is the same for rustc
//! on bpfel and on the host, and no byte of an event is uninitialised padding.

use crate::capture::Captured;
use crate::flow::{FlowKey, FlowState, HalfFlow};
use crate::frame::{Frame, TcpFlags};
use crate::names::PREFIX_LEN;
use crate::start::Start;

/// Which way a packet crossed the tap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Direction {
    /// Sent by the workload: seen at tap ingress (the host receives what the guest transmits).
    FromWorkload = 1,
    /// Sent to the workload: seen at tap egress (the host transmits what the guest receives).
    ToWorkload = 2,
}

impl Direction {
    /// The direction a raw byte names, if any.
    #[inline(always)]
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            1 => Some(Self::FromWorkload),
            2 => Some(Self::ToWorkload),
            _ => None,
        }
    }
}

/// Why an event was emitted. Zero is no kind, so zeroed memory never decodes as an event.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum EventKind {
    /// The payload starts an HTTP/1.x request line.
    RequestStart = 1,
    /// The payload starts an HTTP/1.x status line.
    ResponseStart = 2,
    /// A SYN (or SYN-ACK) without data: a connection opens.
    Syn = 3,
    /// A FIN: that direction is finished.
    Fin = 4,
    /// An RST: the connection is gone, mid-response or not.
    Rst = 5,
    /// An in-order segment after a start whose head had not ended, for the agent's
    /// [`HeadAssembler`](crate::HeadAssembler).
    Continuation = 6,
}

impl EventKind {
    /// The kind a raw byte names, if any.
    #[inline(always)]
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            1 => Some(Self::RequestStart),
            2 => Some(Self::ResponseStart),
            3 => Some(Self::Syn),
            4 => Some(Self::Fin),
            5 => Some(Self::Rst),
            6 => Some(Self::Continuation),
            _ => None,
        }
    }
}

impl From<Start> for EventKind {
    #[inline(always)]
    fn from(start: Start) -> Self {
        match start {
            Start::Request => Self::RequestStart,
            Start::Response => Self::ResponseStart,
        }
    }
}

/// Everything in an event but the payload bytes: small enough (144 bytes) for the kernel to
/// build on its 512-byte stack and write into the reserved entry in one copy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct EventHeader {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the program ran.
    pub ktime_ns: u64,
    /// The connection, oriented by the workload.
    pub key: FlowKey,
    /// The connection's state after this packet.
    pub flow: FlowState,
    /// The TCP sequence number, as on the wire (a SYN's data starts one later).
    pub seq: u32,
    /// The TCP acknowledgement number.
    pub ack: u32,
    /// The interface the packet crossed (`skb->ifindex`).
    pub ifindex: u32,
    /// TCP payload bytes in the packet (a GSO packet can carry up to 64 KiB).
    pub payload_len: u32,
    /// [`EventKind`] as its discriminant.
    pub kind: u8,
    /// [`Direction`] as its discriminant.
    pub direction: u8,
    /// The TCP flags byte.
    pub tcp_flags: u8,
    /// Always zero.
    pub _pad: u8,
    /// Offset of the payload's first byte in [`PacketEvent::prefix`].
    pub prefix_start: u16,
    /// Payload bytes in [`PacketEvent::prefix`], from `prefix_start`.
    pub prefix_len: u16,
}

impl EventHeader {
    /// The header of the event `frame` emits.
    #[inline(always)]
    pub fn new(
        frame: &Frame,
        direction: Direction,
        kind: EventKind,
        flow: &FlowState,
        ifindex: u32,
        ktime_ns: u64,
        captured: Captured,
    ) -> Self {
        Self {
            ktime_ns,
            key: FlowKey::new(frame, direction),
            flow: *flow,
            seq: frame.seq,
            ack: frame.ack,
            ifindex,
            payload_len: frame.payload_len as u32,
            kind: kind as u8,
            direction: direction as u8,
            tcp_flags: frame.flags.0,
            _pad: 0,
            prefix_start: captured.start,
            prefix_len: captured.len,
        }
    }

    /// The event's kind, or `None` for a value this build does not know.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_raw(self.kind)
    }

    /// The event's direction, or `None` for a value this build does not know.
    pub fn direction(&self) -> Option<Direction> {
        Direction::from_raw(self.direction)
    }

    /// The TCP flags.
    pub fn tcp_flags(&self) -> TcpFlags {
        TcpFlags(self.tcp_flags)
    }

    /// Sequence number of the first payload byte (one past a SYN's own).
    pub fn payload_seq(&self) -> u32 {
        self.seq
            .wrapping_add(u32::from(self.tcp_flags().has(TcpFlags::SYN)))
    }
}

/// One ring-buffer record: 336 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct PacketEvent {
    /// Who, when, which connection and which bytes.
    pub header: EventHeader,
    /// Holds the payload's first `header.prefix_len` bytes from `header.prefix_start`
    /// ([`capture_prefix`](crate::capture_prefix)); read them through [`PacketEvent::prefix`].
    pub prefix: [u8; PREFIX_LEN],
}

impl PacketEvent {
    /// The captured payload bytes, or `None` when the header's range does not fit the array
    /// (a kernel that wrote something this build does not expect).
    pub fn prefix(&self) -> Option<&[u8]> {
        let start = usize::from(self.header.prefix_start);
        self.prefix
            .get(start..start + usize::from(self.header.prefix_len))
    }

    /// Whether the payload was longer than what was captured.
    pub fn prefix_is_cut(&self) -> bool {
        u32::from(self.header.prefix_len) < self.header.payload_len
    }

    /// Reads an event from a ring-buffer record, as the kernel laid it out (native byte
    /// order), without `unsafe`. `None` when the record is shorter than an event.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let header = EventHeader {
            ktime_ns: r.u64()?,
            key: FlowKey {
                workload_addr: r.take()?,
                peer_addr: r.take()?,
                workload_port: r.u16()?,
                peer_port: r.u16()?,
                family: r.u8()?,
                _pad: r.take()?,
            },
            flow: FlowState {
                opened_ns: r.u64()?,
                from_workload: r.half()?,
                to_workload: r.half()?,
            },
            seq: r.u32()?,
            ack: r.u32()?,
            ifindex: r.u32()?,
            payload_len: r.u32()?,
            kind: r.u8()?,
            direction: r.u8()?,
            tcp_flags: r.u8()?,
            _pad: r.u8()?,
            prefix_start: r.u16()?,
            prefix_len: r.u16()?,
        };
        Some(Self {
            header,
            prefix: r.take()?,
        })
    }
}

/// Fields in order from a byte string.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_ne_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_ne_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_ne_bytes)
    }
    fn half(&mut self) -> Option<HalfFlow> {
        Some(HalfFlow {
            next_seq: self.u32()?,
            start_seq: self.u32()?,
            start_ns: self.u64()?,
            last_payload_ns: self.u64()?,
            retransmits: self.u32()?,
            continuations: self.u8()?,
            seen: self.u8()?,
            _pad: self.take()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!((size_of::<FlowKey>(), align_of::<FlowKey>()), (40, 2));
        assert_eq!(offset_of!(FlowKey, peer_addr), 16);
        assert_eq!(offset_of!(FlowKey, workload_port), 32);
        assert_eq!(offset_of!(FlowKey, peer_port), 34);
        assert_eq!(offset_of!(FlowKey, family), 36);
        assert_eq!(offset_of!(FlowKey, _pad), 37);

        assert_eq!((size_of::<HalfFlow>(), align_of::<HalfFlow>()), (32, 8));
        assert_eq!(offset_of!(HalfFlow, start_seq), 4);
        assert_eq!(offset_of!(HalfFlow, start_ns), 8);
        assert_eq!(offset_of!(HalfFlow, last_payload_ns), 16);
        assert_eq!(offset_of!(HalfFlow, retransmits), 24);
        assert_eq!(offset_of!(HalfFlow, continuations), 28);
        assert_eq!(offset_of!(HalfFlow, seen), 29);
        assert_eq!(offset_of!(HalfFlow, _pad), 30);

        assert_eq!((size_of::<FlowState>(), align_of::<FlowState>()), (72, 8));
        assert_eq!(offset_of!(FlowState, from_workload), 8);
        assert_eq!(offset_of!(FlowState, to_workload), 40);

        assert_eq!(
            (size_of::<EventHeader>(), align_of::<EventHeader>()),
            (144, 8)
        );
        assert_eq!(offset_of!(EventHeader, key), 8);
        assert_eq!(offset_of!(EventHeader, flow), 48);
        assert_eq!(offset_of!(EventHeader, seq), 120);
        assert_eq!(offset_of!(EventHeader, ack), 124);
        assert_eq!(offset_of!(EventHeader, ifindex), 128);
        assert_eq!(offset_of!(EventHeader, payload_len), 132);
        assert_eq!(offset_of!(EventHeader, kind), 136);
        assert_eq!(offset_of!(EventHeader, direction), 137);
        assert_eq!(offset_of!(EventHeader, tcp_flags), 138);
        assert_eq!(offset_of!(EventHeader, _pad), 139);
        assert_eq!(offset_of!(EventHeader, prefix_start), 140);
        assert_eq!(offset_of!(EventHeader, prefix_len), 142);

        assert_eq!(
            (size_of::<PacketEvent>(), align_of::<PacketEvent>()),
            (336, 8)
        );
        assert_eq!(offset_of!(PacketEvent, prefix), 144);
    }

    fn sample() -> PacketEvent {
        let half = |n: u8| HalfFlow {
            next_seq: 0x0102_0304 + u32::from(n),
            start_seq: 0x1112_1314,
            start_ns: 0x2122_2324_2526_2728,
            last_payload_ns: 0x3132_3334_3536_3738,
            retransmits: 0x4142_4344,
            continuations: 2,
            seen: 1,
            _pad: [0, 0],
        };
        let mut prefix = [0; PREFIX_LEN];
        for (i, b) in prefix.iter_mut().enumerate() {
            *b = i as u8;
        }
        PacketEvent {
            header: EventHeader {
                ktime_ns: 0x5152_5354_5556_5758,
                key: FlowKey {
                    workload_addr: [7; 16],
                    peer_addr: [9; 16],
                    workload_port: 0x6162,
                    peer_port: 0x6364,
                    family: 6,
                    _pad: [0; 3],
                },
                flow: FlowState {
                    opened_ns: 0x7172_7374_7576_7778,
                    from_workload: half(1),
                    to_workload: half(2),
                },
                seq: 0x8182_8384,
                ack: 0x9192_9394,
                ifindex: 0xa1a2_a3a4,
                payload_len: 300,
                kind: EventKind::ResponseStart as u8,
                direction: Direction::FromWorkload as u8,
                tcp_flags: TcpFlags::ACK | TcpFlags::SYN,
                _pad: 0,
                prefix_start: 10,
                prefix_len: 100,
            },
            prefix,
        }
    }

    #[allow(
        unsafe_code,
        reason = "viewing a padding-free repr(C) value as the bytes the kernel writes"
    )]
    fn bytes_of(event: &PacketEvent) -> &[u8] {
        // SAFETY: PacketEvent is repr(C) with only integer fields and no padding (checked by
        // layouts_have_no_implicit_padding), so all size_of bytes are initialised.
        unsafe {
            core::slice::from_raw_parts(
                (event as *const PacketEvent).cast::<u8>(),
                size_of::<PacketEvent>(),
            )
        }
    }

    #[test]
    fn decode_reads_the_in_memory_layout() {
        let event = sample();
        let bytes = bytes_of(&event);
        assert_eq!(PacketEvent::decode(bytes), Some(event));
        assert_eq!(PacketEvent::decode(&bytes[..bytes.len() - 1]), None);
        let decoded = PacketEvent::decode(bytes).unwrap();
        assert_eq!(decoded.header.kind(), Some(EventKind::ResponseStart));
        assert_eq!(decoded.header.direction(), Some(Direction::FromWorkload));
        assert_eq!(decoded.header.payload_seq(), 0x8182_8385);
        assert_eq!(decoded.prefix(), Some(&event.prefix[10..110]));
        assert!(decoded.prefix_is_cut());
    }

    #[test]
    fn unknown_raw_values_decode_to_none() {
        let mut event = sample();
        event.header.kind = 0;
        event.header.direction = 3;
        event.header.prefix_start = 100;
        assert_eq!(event.header.kind(), None);
        assert_eq!(event.header.direction(), None);
        assert_eq!(event.prefix(), None);
        event.header.prefix_start = 92;
        assert_eq!(event.prefix().map(<[u8]>::len), Some(100));
        for raw in 0..=u8::MAX {
            if let Some(kind) = EventKind::from_raw(raw) {
                assert_eq!(kind as u8, raw);
            }
            if let Some(direction) = Direction::from_raw(raw) {
                assert_eq!(direction as u8, raw);
            }
        }
    }
}

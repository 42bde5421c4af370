//! A stand-in for the TC programs in unit tests: it runs the kernel's own per-packet steps
//! (node-probe-common's `observe` and `capture_prefix`, as the crate's docs list them) on
//! synthetic segments, so the events the tests feed the agent are the events the kernel makes.

use std::collections::HashMap;

use node_probe_common::{
    Direction, EventHeader, Family, FlowKey, FlowState, Frame, MIN_HEADERS, PREFIX_LEN,
    PacketEvent, TcpFlags, capture_prefix, opens_flow, packet_start,
};

use crate::exchange::FlowLookup;

pub const SYN: u8 = TcpFlags::SYN;
pub const ACK: u8 = TcpFlags::ACK;
pub const PSH: u8 = TcpFlags::ACK | TcpFlags::PSH;
pub const FIN: u8 = TcpFlags::FIN | TcpFlags::ACK;
pub const RST: u8 = TcpFlags::RST;

use Direction::{FromWorkload as FROM, ToWorkload as TO};

/// One connection's two ends and next sequence numbers.
#[derive(Clone, Copy, Debug)]
pub struct Tcp {
    pub workload: ([u8; 4], u16),
    pub peer: ([u8; 4], u16),
    pub seq_to: u32,
    pub seq_from: u32,
}

impl Tcp {
    /// A connection between the workload 10.0.0.2:`workload_port` and 10.0.0.1:`peer_port`.
    pub fn new(workload_port: u16, peer_port: u16) -> Self {
        Self {
            workload: ([10, 0, 0, 2], workload_port),
            peer: ([10, 0, 0, 1], peer_port),
            seq_to: 1_000,
            seq_from: 50_000,
        }
    }

    pub fn key(&self) -> FlowKey {
        FlowKey {
            workload_addr: mapped(self.workload.0),
            peer_addr: mapped(self.peer.0),
            workload_port: self.workload.1,
            peer_port: self.peer.1,
            family: Family::Ipv4 as u8,
            _pad: [0; 3],
        }
    }
}

fn mapped([a, b, c, d]: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]
}

/// The kernel side: the FLOWS map and the clock.
pub struct Kernel {
    pub flows: HashMap<FlowKey, FlowState>,
    pub now: u64,
    pub ifindex: u32,
}

impl Default for Kernel {
    fn default() -> Self {
        Self {
            flows: HashMap::new(),
            now: 1_000_000_000,
            ifindex: 7,
        }
    }
}

impl Kernel {
    pub fn advance(&mut self, ns: u64) {
        self.now += ns;
    }

    /// A segment with the connection's next sequence number in `direction`; the sequence
    /// advances past it.
    pub fn send(
        &mut self,
        tcp: &mut Tcp,
        direction: Direction,
        flags: u8,
        payload: &[u8],
    ) -> Option<PacketEvent> {
        let seq = match direction {
            TO => tcp.seq_to,
            FROM => tcp.seq_from,
        };
        let advance = payload.len() as u32
            + u32::from(flags & TcpFlags::SYN != 0)
            + u32::from(flags & TcpFlags::FIN != 0);
        match direction {
            TO => tcp.seq_to = seq.wrapping_add(advance),
            FROM => tcp.seq_from = seq.wrapping_add(advance),
        }
        self.send_at(tcp, direction, seq, flags, payload)
    }

    /// A segment at `seq` (a retransmit, when it was sent before).
    pub fn send_at(
        &mut self,
        tcp: &Tcp,
        direction: Direction,
        seq: u32,
        flags: u8,
        payload: &[u8],
    ) -> Option<PacketEvent> {
        let (src, dst) = match direction {
            TO => (tcp.peer, tcp.workload),
            FROM => (tcp.workload, tcp.peer),
        };
        let mut bytes = vec![0u8; MIN_HEADERS];
        bytes.extend_from_slice(payload);
        let frame = Frame {
            family: Family::Ipv4,
            src_addr: mapped(src.0),
            dst_addr: mapped(dst.0),
            src_port: src.1,
            dst_port: dst.1,
            seq,
            ack: 0,
            flags: TcpFlags(flags),
            payload_offset: MIN_HEADERS,
            payload_len: payload.len(),
        };
        let packet = &bytes[..];
        let key = FlowKey::new(&frame, direction);
        let start = packet_start(packet, &frame);
        let state = match self.flows.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                if !opens_flow(&frame, start) {
                    return None;
                }
                entry.insert(FlowState::default())
            }
        };
        let seen = state.observe(packet, &frame, direction, start, self.now);
        let kind = seen.event?;
        let mut prefix = [0u8; PREFIX_LEN];
        let captured = capture_prefix(packet, &frame, &mut prefix);
        Some(PacketEvent {
            header: EventHeader::new(
                &frame,
                direction,
                kind,
                state,
                self.ifindex,
                self.now,
                captured,
            ),
            prefix,
        })
    }

    /// The three-way handshake of a connection `opener` opens; its events.
    pub fn handshake(&mut self, tcp: &mut Tcp, opener: Direction) -> Vec<PacketEvent> {
        let other = match opener {
            TO => FROM,
            FROM => TO,
        };
        let mut events = Vec::new();
        events.extend(self.send(tcp, opener, SYN, b""));
        self.advance(50_000);
        events.extend(self.send(tcp, other, SYN | ACK, b""));
        self.advance(50_000);
        events.extend(self.send(tcp, opener, ACK, b""));
        events
    }
}

impl FlowLookup for Kernel {
    fn lookup(&self, key: &FlowKey) -> Option<FlowState> {
        self.flows.get(key).copied()
    }
}

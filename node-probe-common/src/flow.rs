//! Per-connection state in the [`FLOWS`](crate::FLOWS) LRU hash, and the one function that
//! updates it for each packet and decides which event, if any, the packet emits.
//!
//! A connection has one entry, keyed by the workload's side and the peer's side (not source and
//! destination), so both directions find it without swapping. Each direction has its own half,
//! written only by that direction's program, so the two programs running on two CPUs do not
//! overwrite each other's fields.

use core::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::capture::ends_with_blank_line;
use crate::event::{Direction, EventKind};
use crate::frame::{Family, Frame, TcpFlags};
use crate::names::{CONTINUATIONS, PREFIX_LEN};
use crate::packet::Packet;
use crate::seq::seq_after;
use crate::start::Start;

/// A TCP connection as seen from the workload: the map key of [`FLOWS`](crate::FLOWS).
///
/// IPv4 addresses are IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so both families share one layout;
/// `family` keeps an IPv6 peer that really uses a mapped address apart. Ports are in host order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[repr(C)]
pub struct FlowKey {
    /// The workload's address (the guest behind the tap).
    pub workload_addr: [u8; 16],
    /// The peer's address.
    pub peer_addr: [u8; 16],
    /// The workload's port.
    pub workload_port: u16,
    /// The peer's port.
    pub peer_port: u16,
    /// [`Family`] as its discriminant (4 or 6).
    pub family: u8,
    /// Always zero: the kernel hashes every byte of a key.
    pub _pad: [u8; 3],
}

impl FlowKey {
    /// The key of `frame`'s connection, oriented by the direction it travelled.
    #[inline(always)]
    pub fn new(frame: &Frame, direction: Direction) -> Self {
        let (workload_addr, workload_port, peer_addr, peer_port) = match direction {
            Direction::FromWorkload => (
                frame.src_addr,
                frame.src_port,
                frame.dst_addr,
                frame.dst_port,
            ),
            Direction::ToWorkload => (
                frame.dst_addr,
                frame.dst_port,
                frame.src_addr,
                frame.src_port,
            ),
        };
        Self {
            workload_addr,
            peer_addr,
            workload_port,
            peer_port,
            family: frame.family as u8,
            _pad: [0; 3],
        }
    }

    /// The workload's socket address, or `None` for an unknown family byte.
    pub fn workload(&self) -> Option<SocketAddr> {
        socket_addr(self.family, self.workload_addr, self.workload_port)
    }

    /// The peer's socket address, or `None` for an unknown family byte.
    pub fn peer(&self) -> Option<SocketAddr> {
        socket_addr(self.family, self.peer_addr, self.peer_port)
    }
}

fn socket_addr(family: u8, addr: [u8; 16], port: u16) -> Option<SocketAddr> {
    let v6 = Ipv6Addr::from(addr);
    let ip = match Family::from_raw(family)? {
        Family::Ipv4 => IpAddr::V4(v6.to_ipv4_mapped()?),
        Family::Ipv6 => IpAddr::V6(v6),
    };
    Some(SocketAddr::new(ip, port))
}

/// One direction of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct HalfFlow {
    /// The sequence number after the last byte (SYN and FIN count one) seen so far; valid when
    /// `seen` is 1.
    pub next_seq: u32,
    /// Sequence number of the first payload byte of the latest message start.
    pub start_seq: u32,
    /// `bpf_ktime_get_ns()` of the latest message start; 0 until the first.
    pub start_ns: u64,
    /// `bpf_ktime_get_ns()` of the latest packet that carried new payload: after a response
    /// start, the time its last byte has been seen so far.
    pub last_payload_ns: u64,
    /// Segments whose bytes had all been seen before.
    pub retransmits: u32,
    /// Continuation events still to emit for the current head.
    pub continuations: u8,
    /// 1 once `next_seq` holds a value.
    pub seen: u8,
    /// Always zero.
    pub _pad: [u8; 2],
}

/// A tracked connection: the map value of [`FLOWS`](crate::FLOWS), and a snapshot of it in
/// every event (taken after the event's packet was applied).
///
/// The agent times the end of a response from `from_workload.last_payload_ns` in the snapshot
/// of the next event on the connection (the next request, a FIN or an RST), or by looking the
/// key up in the map when the connection goes quiet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C)]
pub struct FlowState {
    /// `bpf_ktime_get_ns()` of the connection's first SYN; 0 when it was picked up later.
    pub opened_ns: u64,
    /// What the workload sent (tap ingress).
    pub from_workload: HalfFlow,
    /// What the workload received (tap egress).
    pub to_workload: HalfFlow,
}

/// What one packet did to its connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Observation {
    /// The event to emit, if any.
    pub event: Option<EventKind>,
    /// The segment's bytes had all been seen: count [`Counter::Retransmits`](crate::Counter).
    pub retransmit: bool,
    /// The packet carried payload on a direction that has carried no HTTP/1 start: count
    /// [`Counter::NonHttpPayloads`](crate::Counter).
    pub non_http: bool,
}

/// Whether a packet of a connection that is not in [`FLOWS`](crate::FLOWS) starts tracking it:
/// a SYN (so its open time is known) or an HTTP/1 message start. A payload-carrying packet
/// that does not is counted under [`Counter::NonHttpPayloads`](crate::Counter).
#[inline(always)]
pub fn opens_flow(frame: &Frame, start: Option<Start>) -> bool {
    frame.flags.has(TcpFlags::SYN) || start.is_some()
}

impl FlowState {
    /// Applies one packet (already parsed, `start` from [`payload_start`](crate::payload_start))
    /// and says which event it emits:
    ///
    /// - an RST: [`EventKind::Rst`], always;
    /// - a segment whose bytes were all seen: nothing (a retransmit; its start, if it looks like
    ///   one, was emitted the first time);
    /// - a message start: [`EventKind::RequestStart`] or [`EventKind::ResponseStart`]
    ///   (TCP Fast Open data on a SYN included; the event's flags show the SYN or FIN);
    /// - otherwise a SYN: [`EventKind::Syn`], which also resets a half left by an earlier
    ///   connection on the same 4-tuple; a FIN: [`EventKind::Fin`];
    /// - the next in-order payload segments after a start whose head did not end in its own
    ///   packet: [`EventKind::Continuation`], at most [`CONTINUATIONS`], and only while each
    ///   segment's payload was captured whole (a cut one leaves a gap behind it);
    /// - anything else: nothing.
    ///
    /// Out-of-order segments advance `next_seq` past the gap, so the segment that later fills
    /// it counts as a retransmit: rare on a tap device, and it only costs that segment.
    #[inline(always)]
    pub fn observe<P: Packet + ?Sized>(
        &mut self,
        packet: &P,
        frame: &Frame,
        direction: Direction,
        start: Option<Start>,
        now_ns: u64,
    ) -> Observation {
        let flags = frame.flags;
        if flags.has(TcpFlags::RST) {
            return Observation {
                event: Some(EventKind::Rst),
                ..Observation::default()
            };
        }
        let syn = flags.has(TcpFlags::SYN);
        let fin = flags.has(TcpFlags::FIN);
        let payload = frame.payload_len as u32;
        let seq_end = frame
            .seq
            .wrapping_add(payload)
            .wrapping_add(u32::from(syn))
            .wrapping_add(u32::from(fin));
        if seq_end == frame.seq {
            // A bare ACK or window update: nothing to track.
            return Observation::default();
        }
        if syn {
            let half = self.half(direction);
            let retransmitted_syn = half.seen == 1 && half.next_seq == seq_end;
            if !retransmitted_syn {
                if flags.has(TcpFlags::ACK) {
                    *half = HalfFlow::default();
                } else {
                    *self = FlowState {
                        opened_ns: now_ns,
                        ..FlowState::default()
                    };
                }
            }
        }
        let half = self.half(direction);
        if half.seen == 1 && !seq_after(seq_end, half.next_seq) {
            half.retransmits = half.retransmits.wrapping_add(1);
            return Observation {
                retransmit: true,
                ..Observation::default()
            };
        }
        let in_order = half.seen == 0 || frame.seq == half.next_seq;
        half.next_seq = seq_end;
        half.seen = 1;
        if payload > 0 {
            half.last_payload_ns = now_ns;
        }
        let non_http = payload > 0 && start.is_none() && half.start_ns == 0;
        let event = if let Some(start) = start {
            half.start_seq = frame.seq.wrapping_add(u32::from(syn));
            half.start_ns = now_ns;
            half.continuations = if head_continues(packet, frame) {
                CONTINUATIONS
            } else {
                0
            };
            Some(EventKind::from(start))
        } else if syn {
            Some(EventKind::Syn)
        } else if fin {
            Some(EventKind::Fin)
        } else if payload > 0 && half.continuations > 0 && in_order {
            half.continuations = if head_continues(packet, frame) {
                half.continuations - 1
            } else {
                0
            };
            Some(EventKind::Continuation)
        } else {
            if payload > 0 {
                half.continuations = 0;
            }
            None
        };
        Observation {
            event,
            retransmit: false,
            non_http,
        }
    }

    #[inline(always)]
    fn half(&mut self, direction: Direction) -> &mut HalfFlow {
        match direction {
            Direction::FromWorkload => &mut self.from_workload,
            Direction::ToWorkload => &mut self.to_workload,
        }
    }
}

/// Whether the next segment may carry more of this head: this one was captured whole and did
/// not end the head.
#[inline(always)]
fn head_continues<P: Packet + ?Sized>(packet: &P, frame: &Frame) -> bool {
    frame.payload_len <= PREFIX_LEN && !ends_with_blank_line(packet, frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FrameBuilder;
    use std::net::SocketAddr;
    use std::vec::Vec;

    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK | TcpFlags::PSH;

    /// A packet on the test connection: the workload is 10.0.0.2:8080, the peer 10.0.0.1:40000.
    fn packet(direction: Direction, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let builder = FrameBuilder::ipv4()
            .seq_ack(seq, 1)
            .flags(flags)
            .payload(payload);
        match direction {
            Direction::ToWorkload => builder.build().bytes,
            Direction::FromWorkload => {
                let b = FrameBuilder::new(crate::testing::Ip::V4 {
                    src: [10, 0, 0, 2],
                    dst: [10, 0, 0, 1],
                });
                b.ports(8080, 40_000)
                    .seq_ack(seq, 1)
                    .flags(flags)
                    .payload(payload)
                    .build()
                    .bytes
            }
        }
    }

    struct Conn {
        state: FlowState,
        now: u64,
    }

    impl Conn {
        fn new() -> Self {
            Self {
                state: FlowState::default(),
                now: 100,
            }
        }
        fn send(
            &mut self,
            direction: Direction,
            seq: u32,
            flags: u8,
            payload: &[u8],
        ) -> Observation {
            let bytes = packet(direction, seq, flags, payload);
            let frame = crate::parse_frame(&bytes[..]).unwrap();
            let start = crate::packet_start(&bytes[..], &frame);
            self.now += 10;
            self.state
                .observe(&bytes[..], &frame, direction, start, self.now)
        }
    }

    fn event(kind: EventKind) -> Observation {
        Observation {
            event: Some(kind),
            ..Observation::default()
        }
    }

    #[test]
    fn both_directions_share_one_key() {
        let to = packet(Direction::ToWorkload, 1, ACK, b"");
        let from = packet(Direction::FromWorkload, 1, ACK, b"");
        let to_key = FlowKey::new(&crate::parse_frame(&to[..]).unwrap(), Direction::ToWorkload);
        let from_key = FlowKey::new(
            &crate::parse_frame(&from[..]).unwrap(),
            Direction::FromWorkload,
        );
        assert_eq!(to_key, from_key);
        assert_eq!(
            to_key.workload(),
            Some("10.0.0.2:8080".parse::<SocketAddr>().unwrap())
        );
        assert_eq!(
            to_key.peer(),
            Some("10.0.0.1:40000".parse::<SocketAddr>().unwrap())
        );
        let v6 = FrameBuilder::ipv6().build();
        let key = FlowKey::new(&v6.expected, Direction::FromWorkload);
        assert_eq!(
            key.workload(),
            Some("[fd00::1]:40000".parse::<SocketAddr>().unwrap())
        );
        assert_eq!(FlowKey { family: 5, ..key }.peer(), None);
    }

    #[test]
    fn an_exchange_on_a_new_connection() {
        use Direction::{FromWorkload as From, ToWorkload as To};
        let mut c = Conn::new();
        assert_eq!(c.send(To, 999, SYN, b""), event(EventKind::Syn));
        assert_eq!(c.state.opened_ns, 110);
        assert_eq!(
            c.send(From, 4_999, SYN | TcpFlags::ACK, b""),
            event(EventKind::Syn)
        );
        assert_eq!(
            c.send(To, 1_000, TcpFlags::ACK, b""),
            Observation::default()
        );
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            c.send(To, 1_000, ACK, request),
            event(EventKind::RequestStart)
        );
        assert_eq!(c.state.to_workload.start_seq, 1_000);
        assert_eq!(c.state.to_workload.next_seq, 1_000 + request.len() as u32);
        assert_eq!(
            c.state.to_workload.continuations, 0,
            "the head ended in its packet"
        );
        assert_eq!(
            c.send(
                From,
                5_000,
                ACK,
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
            ),
            event(EventKind::ResponseStart)
        );
        assert_eq!(c.send(From, 5_038, ACK, b"body"), Observation::default());
        assert_eq!(c.state.from_workload.last_payload_ns, c.now);
        assert_eq!(c.state.from_workload.next_seq, 5_042);
        assert_eq!(
            c.send(From, 5_038, ACK, b"body"),
            Observation {
                retransmit: true,
                ..Observation::default()
            }
        );
        assert_eq!(c.state.from_workload.retransmits, 1);
        assert_eq!(
            c.send(To, 1_027, TcpFlags::FIN | TcpFlags::ACK, b""),
            event(EventKind::Fin)
        );
        assert_eq!(c.send(To, 1_028, TcpFlags::RST, b""), event(EventKind::Rst));
    }

    #[test]
    fn a_retransmitted_start_emits_nothing() {
        let mut c = Conn::new();
        let request = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(
            c.send(Direction::ToWorkload, 7, ACK, request),
            event(EventKind::RequestStart)
        );
        assert!(c.send(Direction::ToWorkload, 7, ACK, request).retransmit);
        // Across the wrap of sequence space.
        let mut c = Conn::new();
        let seq = u32::MAX - 5;
        assert_eq!(
            c.send(Direction::ToWorkload, seq, ACK, request),
            event(EventKind::RequestStart)
        );
        assert!(
            !c.send(
                Direction::ToWorkload,
                seq.wrapping_add(request.len() as u32),
                ACK,
                b"x"
            )
            .retransmit
        );
        assert!(c.send(Direction::ToWorkload, seq, ACK, request).retransmit);
    }

    #[test]
    fn a_split_head_gets_continuations_until_it_ends() {
        use Direction::ToWorkload as To;
        let mut c = Conn::new();
        assert_eq!(
            c.send(To, 0, ACK, b"GET /a HTTP/1.1\r\n"),
            event(EventKind::RequestStart)
        );
        assert_eq!(c.state.to_workload.continuations, CONTINUATIONS);
        assert_eq!(
            c.send(To, 17, ACK, b"Host: a\r\n"),
            event(EventKind::Continuation)
        );
        assert_eq!(
            c.send(To, 26, ACK, b"traceparent: 00-x\r\n\r\n"),
            event(EventKind::Continuation)
        );
        assert_eq!(c.state.to_workload.continuations, 0);
        assert_eq!(c.send(To, 47, ACK, b"more body"), Observation::default());
    }

    #[test]
    fn continuations_are_bounded_and_need_order() {
        use Direction::ToWorkload as To;
        let mut c = Conn::new();
        c.send(To, 0, ACK, b"GET /a HTTP/1.1\r\n");
        let mut seq = 17;
        for _ in 0..CONTINUATIONS {
            assert_eq!(
                c.send(To, seq, ACK, b"X: y\r\n"),
                event(EventKind::Continuation)
            );
            seq += 6;
        }
        assert_eq!(c.send(To, seq, ACK, b"X: y\r\n"), Observation::default());

        let mut c = Conn::new();
        c.send(To, 0, ACK, b"GET /a HTTP/1.1\r\n");
        // A gap: the segment at 17 was lost or reordered.
        assert_eq!(c.send(To, 30, ACK, b"X: y\r\n"), Observation::default());
        assert_eq!(c.state.to_workload.continuations, 0);

        let mut c = Conn::new();
        // A start whose payload is longer than the prefix is cut, so nothing can follow it.
        let mut long = b"POST /a HTTP/1.1\r\nX: ".to_vec();
        long.resize(PREFIX_LEN + 1, b'a');
        c.send(To, 0, ACK, &long);
        assert_eq!(c.state.to_workload.continuations, 0);
    }

    #[test]
    fn a_new_connection_on_an_old_tuple_resets_the_state() {
        use Direction::ToWorkload as To;
        let mut c = Conn::new();
        c.send(To, 0, SYN, b"");
        c.send(To, 1, ACK, b"GET / HTTP/1.1\r\n\r\n");
        // Its next SYN's sequence number is behind the old state: not a retransmit.
        assert_eq!(c.send(To, 0x9000_0000, SYN, b""), event(EventKind::Syn));
        assert_eq!(c.state.to_workload.start_ns, 0);
        assert_eq!(c.state.to_workload.next_seq, 0x9000_0001);
        // The same SYN again is.
        assert!(c.send(To, 0x9000_0000, SYN, b"").retransmit);
    }

    #[test]
    fn fast_open_data_on_a_syn_is_a_start() {
        let mut c = Conn::new();
        assert_eq!(
            c.send(Direction::ToWorkload, 41, SYN, b"GET / HTTP/1.1\r\n\r\n"),
            event(EventKind::RequestStart)
        );
        assert_eq!(c.state.to_workload.start_seq, 42);
    }

    #[test]
    fn payload_before_any_start_is_non_http() {
        let mut c = Conn::new();
        c.send(Direction::ToWorkload, 0, SYN, b"");
        let hello = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0,
        ];
        let o = c.send(Direction::ToWorkload, 1, ACK, &hello);
        assert!(o.non_http && o.event.is_none());
        assert!(opens_flow(
            &FrameBuilder::ipv4().flags(SYN).build().expected,
            None
        ));
        assert!(!opens_flow(&FrameBuilder::ipv4().build().expected, None));
    }
}

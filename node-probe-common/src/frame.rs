//! Ethernet (up to two VLAN tags), IPv4 or IPv6, and TCP, read with constant-size loads.
//!
//! No loops and no recursion: the verifier walks every path, and the two VLAN tags are two
//! written-out steps. IPv4 options are skipped by the header length; the IP length, not the
//! frame's, bounds the payload, since a short frame is padded to Ethernet's 60-byte minimum.

use crate::counter::Counter;
use crate::packet::Packet;

const ETHERNET_HEADER: usize = 14;
const VLAN_TAG: usize = 4;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IEEE 802.1Q customer tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// IEEE 802.1ad service tag (the outer tag of QinQ).
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPV4_MIN_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const TCP_MIN_HEADER: usize = 20;
const PROTOCOL_TCP: u8 = 6;
/// More-fragments flag and fragment offset in the IPv4 flags/offset field.
const IPV4_MF_AND_OFFSET: u16 = 0x3fff;

/// The shortest Ethernet + IP + TCP header run a parsed frame can have (untagged IPv4, no
/// options): a [`Frame`]'s payload never starts before it.
pub const MIN_HEADERS: usize = ETHERNET_HEADER + IPV4_MIN_HEADER + TCP_MIN_HEADER;

/// The IP version of a frame or flow. Its discriminant is what [`FlowKey`](crate::FlowKey)
/// stores.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Family {
    /// IPv4; its addresses are stored IPv4-mapped (`::ffff:a.b.c.d`).
    Ipv4 = 4,
    /// IPv6.
    Ipv6 = 6,
}

impl Family {
    /// The family a stored discriminant names, if any.
    #[inline(always)]
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            4 => Some(Self::Ipv4),
            6 => Some(Self::Ipv6),
            _ => None,
        }
    }
}

/// The TCP flags byte (byte 13 of the header); every bit pattern is a valid value.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement number is valid.
    pub const ACK: u8 = 0x10;

    /// Whether every bit of `mask` is set.
    #[inline(always)]
    pub const fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// A TCP segment's headers, as the parser found them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Frame {
    /// The IP version.
    pub family: Family,
    /// Source address; IPv4 is IPv4-mapped.
    pub src_addr: [u8; 16],
    /// Destination address; IPv4 is IPv4-mapped.
    pub dst_addr: [u8; 16],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful when [`TcpFlags::ACK`] is set).
    pub ack: u32,
    /// The flags byte.
    pub flags: TcpFlags,
    /// Offset of the TCP payload from the start of the frame; at least [`MIN_HEADERS`].
    pub payload_offset: usize,
    /// Bytes of TCP payload, from the IP length (not the frame length).
    pub payload_len: usize,
}

impl Frame {
    /// Offset just past the payload's last byte; never beyond the frame.
    #[inline(always)]
    pub const fn payload_end(&self) -> usize {
        self.payload_offset + self.payload_len
    }
}

/// Why a frame was not parsed into a [`Frame`]. Every variant passes the packet; the kernel
/// counts it under [`ParseError::counter`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParseError {
    /// The frame ends before a header, or before the end its IP header gives.
    Truncated,
    /// The EtherType, after at most two VLAN tags, is neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp,
    /// A third VLAN tag.
    TooManyVlans,
    /// The IP header's version field disagrees with the EtherType.
    IpVersion,
    /// IPv4 header length (IHL) below 5 words.
    Ipv4HeaderLength,
    /// IPv4 total length smaller than its header.
    Ipv4TotalLength,
    /// An IPv4 fragment (more-fragments set or a non-zero offset): fragments are not reassembled.
    Ipv4Fragment,
    /// IPv6 payload length 0 (a jumbogram, or a BIG TCP packet): not parsed.
    Ipv6PayloadLength,
    /// The IPv6 next header is an extension header (IANA's list: hop-by-hop, routing,
    /// fragment, ESP, AH, destination options, mobility, HIP, shim6, experimental), which is
    /// not followed.
    Ipv6Extension,
    /// The IP payload is not TCP.
    NotTcp,
    /// TCP data offset below 5 words, or a TCP header that does not fit in the IP payload.
    TcpHeaderLength,
}

impl ParseError {
    /// The counter this outcome is counted under.
    #[inline(always)]
    pub const fn counter(self) -> Counter {
        match self {
            Self::NotIp | Self::NotTcp => Counter::NotTcp,
            Self::Ipv4Fragment => Counter::Ipv4Fragments,
            Self::Ipv6Extension => Counter::Ipv6Extensions,
            Self::Truncated
            | Self::TooManyVlans
            | Self::IpVersion
            | Self::Ipv4HeaderLength
            | Self::Ipv4TotalLength
            | Self::Ipv6PayloadLength
            | Self::TcpHeaderLength => Counter::ParseFailures,
        }
    }
}

/// Parses an Ethernet frame carrying TCP over IPv4 or IPv6.
#[inline(always)]
pub fn parse_frame<P: Packet + ?Sized>(packet: &P) -> Result<Frame, ParseError> {
    let (ethertype, l3) = ethertype(packet)?;
    // One TCP step after either IP version, not one inlined into each: the BPF stack is 512
    // bytes, and two copies of the TCP header and the frame would take their own slots.
    let ip = match ethertype {
        ETHERTYPE_IPV4 => ipv4(packet, l3)?,
        ETHERTYPE_IPV6 => ipv6(packet, l3)?,
        _ => return Err(ParseError::NotIp),
    };
    tcp(packet, ip)
}

/// What the IP header says about the TCP segment it carries.
struct IpHeader {
    family: Family,
    /// The addresses' bytes in a `u128` each (native order, so no byte moves): where the two
    /// IP versions meet, two integers per address stay in registers, where 16 separate bytes
    /// were spilled to the BPF stack.
    src_addr: u128,
    dst_addr: u128,
    /// Offset of the TCP header.
    l4: usize,
    /// Offset just past the IP payload.
    ip_end: usize,
}

/// The EtherType after at most two VLAN tags, and the offset of the header it announces.
#[inline(always)]
fn ethertype<P: Packet + ?Sized>(packet: &P) -> Result<(u16, usize), ParseError> {
    let outer = be16(load::<2, P>(packet, ETHERNET_HEADER - 2)?);
    if !is_vlan(outer) {
        return Ok((outer, ETHERNET_HEADER));
    }
    let first = ETHERNET_HEADER + VLAN_TAG;
    let inner = be16(load::<2, P>(packet, first - 2)?);
    if !is_vlan(inner) {
        return Ok((inner, first));
    }
    let second = first + VLAN_TAG;
    let ethertype = be16(load::<2, P>(packet, second - 2)?);
    if is_vlan(ethertype) {
        return Err(ParseError::TooManyVlans);
    }
    Ok((ethertype, second))
}

#[inline(always)]
const fn is_vlan(ethertype: u16) -> bool {
    ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ
}

#[inline(always)]
fn ipv4<P: Packet + ?Sized>(packet: &P, l3: usize) -> Result<IpHeader, ParseError> {
    let bytes = load::<IPV4_MIN_HEADER, P>(packet, l3)?;
    let [
        version_ihl,
        _tos,
        len_hi,
        len_lo,
        _id_hi,
        _id_lo,
        frag_hi,
        frag_lo,
        _ttl,
        protocol,
        ..,
    ] = bytes;
    if version_ihl >> 4 != 4 {
        return Err(ParseError::IpVersion);
    }
    let header = usize::from(version_ihl & 0x0f) * 4;
    if header < IPV4_MIN_HEADER {
        return Err(ParseError::Ipv4HeaderLength);
    }
    let total = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if total < header {
        return Err(ParseError::Ipv4TotalLength);
    }
    if protocol != PROTOCOL_TCP {
        return Err(ParseError::NotTcp);
    }
    if u16::from_be_bytes([frag_hi, frag_lo]) & IPV4_MF_AND_OFFSET != 0 {
        return Err(ParseError::Ipv4Fragment);
    }
    // The addresses are copied as slices of the loaded header: bound to 8 separate bytes, they
    // were spilled to the BPF stack one 8-byte slot each.
    let (_, addresses) = bytes.split_at(12);
    let (src, dst) = addresses.split_at(4);
    Ok(IpHeader {
        family: Family::Ipv4,
        src_addr: u128::from_ne_bytes(v4_mapped(src)),
        dst_addr: u128::from_ne_bytes(v4_mapped(dst)),
        l4: l3 + header,
        ip_end: l3 + total,
    })
}

/// `::ffff:a.b.c.d` from the 4 bytes of `addr`.
#[inline(always)]
fn v4_mapped(addr: &[u8]) -> [u8; 16] {
    let mut mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];
    if let (Some(tail), Some(addr)) = (mapped.last_chunk_mut::<4>(), addr.first_chunk::<4>()) {
        *tail = *addr;
    }
    mapped
}

/// The IANA "IPv6 Extension Header Types" registry.
#[inline(always)]
const fn is_ipv6_extension(next_header: u8) -> bool {
    matches!(
        next_header,
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254
    )
}

#[inline(always)]
fn ipv6<P: Packet + ?Sized>(packet: &P, l3: usize) -> Result<IpHeader, ParseError> {
    let header = load::<IPV6_HEADER, P>(packet, l3)?;
    let [
        version,
        _,
        _,
        _,
        len_hi,
        len_lo,
        next_header,
        _hop_limit,
        ..,
    ] = header;
    if version >> 4 != 6 {
        return Err(ParseError::IpVersion);
    }
    if is_ipv6_extension(next_header) {
        return Err(ParseError::Ipv6Extension);
    }
    if next_header != PROTOCOL_TCP {
        return Err(ParseError::NotTcp);
    }
    let payload = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if payload == 0 {
        return Err(ParseError::Ipv6PayloadLength);
    }
    let (_, addresses) = header.split_at(8);
    let (src, dst) = addresses.split_at(16);
    let (Ok(src), Ok(dst)) = (src.try_into(), dst.try_into()) else {
        // Unreachable: a 40-byte header leaves exactly 2 × 16 address bytes.
        return Err(ParseError::Truncated);
    };
    let l4 = l3 + IPV6_HEADER;
    Ok(IpHeader {
        family: Family::Ipv6,
        src_addr: u128::from_ne_bytes(src),
        dst_addr: u128::from_ne_bytes(dst),
        l4,
        ip_end: l4 + payload,
    })
}

/// The TCP header the IP header announces.
#[inline(always)]
fn tcp<P: Packet + ?Sized>(packet: &P, ip: IpHeader) -> Result<Frame, ParseError> {
    let IpHeader {
        family,
        src_addr,
        dst_addr,
        l4,
        ip_end,
    } = ip;
    if ip_end > packet.len() {
        return Err(ParseError::Truncated);
    }
    let [
        sp_hi,
        sp_lo,
        dp_hi,
        dp_lo,
        q0,
        q1,
        q2,
        q3,
        a0,
        a1,
        a2,
        a3,
        data_offset,
        flags,
        ..,
    ] = load::<TCP_MIN_HEADER, P>(packet, l4)?;
    let header = usize::from(data_offset >> 4) * 4;
    let payload_offset = l4 + header;
    if header < TCP_MIN_HEADER || payload_offset > ip_end {
        return Err(ParseError::TcpHeaderLength);
    }
    Ok(Frame {
        family,
        src_addr: src_addr.to_ne_bytes(),
        dst_addr: dst_addr.to_ne_bytes(),
        src_port: u16::from_be_bytes([sp_hi, sp_lo]),
        dst_port: u16::from_be_bytes([dp_hi, dp_lo]),
        seq: u32::from_be_bytes([q0, q1, q2, q3]),
        ack: u32::from_be_bytes([a0, a1, a2, a3]),
        flags: TcpFlags(flags),
        payload_offset,
        payload_len: ip_end - payload_offset,
    })
}

#[inline(always)]
fn load<const N: usize, P: Packet + ?Sized>(
    packet: &P,
    offset: usize,
) -> Result<[u8; N], ParseError> {
    packet.load::<N>(offset).ok_or(ParseError::Truncated)
}

#[inline(always)]
const fn be16(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FrameBuilder, Ip};

    fn parse(bytes: &[u8]) -> Result<Frame, ParseError> {
        parse_frame(bytes)
    }

    #[test]
    fn ipv4_tcp() {
        let built = FrameBuilder::ipv4()
            .payload(b"GET / HTTP/1.1\r\n\r\n")
            .build();
        let frame = parse(&built.bytes).unwrap();
        assert_eq!(frame, built.expected);
        assert_eq!(frame.payload_offset, MIN_HEADERS);
        assert_eq!(frame.src_addr[10..], [0xff, 0xff, 10, 0, 0, 1]);
    }

    #[test]
    fn ipv6_tcp() {
        let built = FrameBuilder::ipv6().payload(b"HTTP/1.1 200 OK\r\n").build();
        let frame = parse(&built.bytes).unwrap();
        assert_eq!(frame, built.expected);
        assert_eq!(frame.family, Family::Ipv6);
        assert_eq!(frame.payload_offset, 14 + 40 + 20);
    }

    #[test]
    fn one_and_two_vlan_tags() {
        for tags in [
            &[ETHERTYPE_VLAN][..],
            &[ETHERTYPE_QINQ, ETHERTYPE_VLAN],
            &[ETHERTYPE_VLAN, ETHERTYPE_VLAN],
        ] {
            for builder in [FrameBuilder::ipv4(), FrameBuilder::ipv6()] {
                let built = builder.vlans(tags).payload(b"x").build();
                let frame = parse(&built.bytes).unwrap();
                assert_eq!(frame, built.expected);
            }
        }
        let three = FrameBuilder::ipv4()
            .vlans(&[ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_VLAN])
            .build();
        assert_eq!(parse(&three.bytes), Err(ParseError::TooManyVlans));
    }

    #[test]
    fn ip_and_tcp_options_are_skipped() {
        let built = FrameBuilder::ipv4()
            .ip_options(&[1, 1, 1, 0, 7, 3, 4, 0])
            .tcp_options(&[2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])
            .payload(b"PUT /a HTTP/1.1\r\n")
            .build();
        let frame = parse(&built.bytes).unwrap();
        assert_eq!(frame, built.expected);
        assert_eq!(frame.payload_offset, MIN_HEADERS + 8 + 16);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        // A bare ACK is 54 bytes; the wire pads it to 60 and a sender may add more.
        for padding in [6, 40] {
            let built = FrameBuilder::ipv4().padding(padding).build();
            let frame = parse(&built.bytes).unwrap();
            assert_eq!(frame.payload_len, 0);
            assert_eq!(frame, built.expected);
        }
        let built = FrameBuilder::ipv6().payload(b"abc").padding(9).build();
        assert_eq!(parse(&built.bytes).unwrap().payload_len, 3);
    }

    #[test]
    fn ip_length_beyond_the_frame_is_truncated() {
        let mut built = FrameBuilder::ipv4().payload(b"abcd").build();
        built.bytes.pop();
        assert_eq!(parse(&built.bytes), Err(ParseError::Truncated));
        let mut built = FrameBuilder::ipv6().payload(b"abcd").build();
        built.bytes.pop();
        assert_eq!(parse(&built.bytes), Err(ParseError::Truncated));
    }

    #[test]
    fn fragments_are_not_parsed() {
        for field in [0x2000, 0x0001, 0x1fff, 0x3fff] {
            let built = FrameBuilder::ipv4()
                .fragment(field)
                .payload(b"GET ")
                .build();
            assert_eq!(parse(&built.bytes), Err(ParseError::Ipv4Fragment));
        }
        // Don't-fragment alone is a whole datagram.
        let built = FrameBuilder::ipv4().fragment(0x4000).build();
        assert_eq!(parse(&built.bytes), Ok(built.expected));
    }

    #[test]
    fn ipv6_extension_headers_are_a_defined_outcome() {
        for next in [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254] {
            let built = FrameBuilder::ipv6().next_header(next).build();
            assert_eq!(
                parse(&built.bytes),
                Err(ParseError::Ipv6Extension),
                "next header {next}"
            );
            assert_eq!(ParseError::Ipv6Extension.counter(), Counter::Ipv6Extensions);
        }
        for next in [17, 58, 59] {
            let built = FrameBuilder::ipv6().next_header(next).build();
            assert_eq!(
                parse(&built.bytes),
                Err(ParseError::NotTcp),
                "next header {next}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        let b = FrameBuilder::ipv4;
        assert_eq!(
            parse(&b().ethertype(0x0806).build().bytes),
            Err(ParseError::NotIp)
        );
        assert_eq!(
            parse(&b().protocol(17).build().bytes),
            Err(ParseError::NotTcp)
        );
        assert_eq!(
            parse(&b().ihl(4).build().bytes),
            Err(ParseError::Ipv4HeaderLength)
        );
        assert_eq!(
            parse(&b().total_len(19).build().bytes),
            Err(ParseError::Ipv4TotalLength)
        );
        // A total length that leaves no room for the TCP header.
        assert_eq!(
            parse(&b().total_len(30).build().bytes),
            Err(ParseError::TcpHeaderLength)
        );
        assert_eq!(
            parse(&b().data_offset(4).build().bytes),
            Err(ParseError::TcpHeaderLength)
        );
        assert_eq!(
            parse(&b().data_offset(15).build().bytes),
            Err(ParseError::TcpHeaderLength)
        );
        assert_eq!(
            parse(&b().version(6).build().bytes),
            Err(ParseError::IpVersion)
        );
        assert_eq!(
            parse(&FrameBuilder::ipv6().version(4).build().bytes),
            Err(ParseError::IpVersion)
        );
        assert_eq!(
            parse(&FrameBuilder::ipv6().payload_len_field(0).build().bytes),
            Err(ParseError::Ipv6PayloadLength)
        );
        assert_eq!(parse(&[]), Err(ParseError::Truncated));
    }

    #[test]
    fn every_cut_is_an_error_or_the_same_frame() {
        let frames = [
            FrameBuilder::ipv4().payload(b"GET /x HTTP/1.1\r\n").build(),
            FrameBuilder::ipv4()
                .vlans(&[ETHERTYPE_QINQ, ETHERTYPE_VLAN])
                .ip_options(&[1; 12])
                .build(),
            FrameBuilder::ipv6()
                .tcp_options(&[1; 20])
                .payload(b"HTTP/1.0 404 x")
                .build(),
            FrameBuilder::ipv6()
                .vlans(&[ETHERTYPE_VLAN])
                .payload(b"abc")
                .padding(3)
                .build(),
        ];
        for built in frames {
            let full = parse(&built.bytes).unwrap();
            for cut in 0..built.bytes.len() {
                match parse(&built.bytes[..cut]) {
                    // Only the padding can go without changing the frame.
                    Ok(frame) => {
                        assert_eq!(frame, full);
                        assert!(cut >= full.payload_end(), "cut {cut} kept a frame");
                    }
                    Err(e) => assert_eq!(e, ParseError::Truncated, "cut {cut}"),
                }
            }
        }
    }

    #[test]
    fn addresses_ports_and_numbers_are_in_host_order() {
        let built = FrameBuilder::new(Ip::V6 {
            src: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        })
        .ports(0x1234, 80)
        .seq_ack(0xdead_beef, 7)
        .flags(TcpFlags::SYN | TcpFlags::ACK)
        .build();
        let frame = parse(&built.bytes).unwrap();
        assert_eq!((frame.src_port, frame.dst_port), (0x1234, 80));
        assert_eq!((frame.seq, frame.ack), (0xdead_beef, 7));
        assert!(frame.flags.has(TcpFlags::SYN | TcpFlags::ACK));
        assert!(!frame.flags.has(TcpFlags::FIN));
        assert_eq!(frame.dst_addr[..2], [0xfe, 0x80]);
    }
}

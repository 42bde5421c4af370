//! A frame builder for the tests: each header is written field by field from its RFC layout,
//! so a test states what it varies instead of carrying hex blobs.

use std::vec::Vec;

use crate::frame::{Family, Frame, TcpFlags};

/// The network layer of a built frame.
#[derive(Clone, Copy, Debug)]
pub enum Ip {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

/// A frame under construction; every field has a valid default.
#[derive(Clone, Debug)]
pub struct FrameBuilder {
    ip: Ip,
    vlans: Vec<u16>,
    ethertype: Option<u16>,
    version: Option<u8>,
    ihl: Option<u8>,
    total_len: Option<u16>,
    fragment: u16,
    protocol: u8,
    ip_options: Vec<u8>,
    payload_len_field: Option<u16>,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    data_offset: Option<u8>,
    tcp_options: Vec<u8>,
    payload: Vec<u8>,
    padding: usize,
}

/// A built frame and the [`Frame`] a correct parser returns for it.
pub struct Built {
    pub bytes: Vec<u8>,
    pub expected: Frame,
}

fn v4_mapped([a, b, c, d]: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]
}

impl FrameBuilder {
    pub fn new(ip: Ip) -> Self {
        Self {
            ip,
            vlans: Vec::new(),
            ethertype: None,
            version: None,
            ihl: None,
            total_len: None,
            fragment: 0,
            protocol: 6,
            ip_options: Vec::new(),
            payload_len_field: None,
            src_port: 40_000,
            dst_port: 8080,
            seq: 1_000,
            ack: 2_000,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            data_offset: None,
            tcp_options: Vec::new(),
            payload: Vec::new(),
            padding: 0,
        }
    }

    pub fn ipv4() -> Self {
        Self::new(Ip::V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
        })
    }

    pub fn ipv6() -> Self {
        let mut src = [0; 16];
        src[..2].copy_from_slice(&[0xfd, 0x00]);
        src[15] = 1;
        let mut dst = src;
        dst[15] = 2;
        Self::new(Ip::V6 { src, dst })
    }

    /// VLAN tag protocol identifiers, outermost first.
    pub fn vlans(mut self, tpids: &[u16]) -> Self {
        self.vlans = tpids.to_vec();
        self
    }
    pub fn ethertype(mut self, ethertype: u16) -> Self {
        self.ethertype = Some(ethertype);
        self
    }
    pub fn version(mut self, version: u8) -> Self {
        self.version = Some(version);
        self
    }
    pub fn ihl(mut self, ihl: u8) -> Self {
        self.ihl = Some(ihl);
        self
    }
    pub fn total_len(mut self, total_len: u16) -> Self {
        self.total_len = Some(total_len);
        self
    }
    pub fn fragment(mut self, flags_and_offset: u16) -> Self {
        self.fragment = flags_and_offset;
        self
    }
    pub fn protocol(mut self, protocol: u8) -> Self {
        self.protocol = protocol;
        self
    }
    /// IPv6 next header; the same field as IPv4's protocol.
    pub fn next_header(self, next_header: u8) -> Self {
        self.protocol(next_header)
    }
    pub fn ip_options(mut self, options: &[u8]) -> Self {
        assert!(options.len().is_multiple_of(4));
        self.ip_options = options.to_vec();
        self
    }
    pub fn payload_len_field(mut self, len: u16) -> Self {
        self.payload_len_field = Some(len);
        self
    }
    pub fn ports(mut self, src: u16, dst: u16) -> Self {
        (self.src_port, self.dst_port) = (src, dst);
        self
    }
    pub fn seq_ack(mut self, seq: u32, ack: u32) -> Self {
        (self.seq, self.ack) = (seq, ack);
        self
    }
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }
    pub fn data_offset(mut self, words: u8) -> Self {
        self.data_offset = Some(words);
        self
    }
    pub fn tcp_options(mut self, options: &[u8]) -> Self {
        assert!(options.len().is_multiple_of(4));
        self.tcp_options = options.to_vec();
        self
    }
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }
    /// Bytes after the IP datagram, as Ethernet's minimum frame size adds.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    pub fn build(&self) -> Built {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1]);
        for (i, tpid) in self.vlans.iter().enumerate() {
            bytes.extend_from_slice(&tpid.to_be_bytes());
            bytes.extend_from_slice(&(100 + i as u16).to_be_bytes()); // PCP 0, VID 100+
        }
        let (family, src_addr, dst_addr, default_ethertype) = match self.ip {
            Ip::V4 { src, dst } => (Family::Ipv4, v4_mapped(src), v4_mapped(dst), 0x0800),
            Ip::V6 { src, dst } => (Family::Ipv6, src, dst, 0x86dd),
        };
        bytes.extend_from_slice(&self.ethertype.unwrap_or(default_ethertype).to_be_bytes());

        let mut tcp = Vec::new();
        tcp.extend_from_slice(&self.src_port.to_be_bytes());
        tcp.extend_from_slice(&self.dst_port.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        let words = self
            .data_offset
            .unwrap_or(((20 + self.tcp_options.len()) / 4) as u8);
        tcp.push(words << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]); // window, checksum, urgent pointer
        tcp.extend_from_slice(&self.tcp_options);
        let tcp_header = tcp.len();
        tcp.extend_from_slice(&self.payload);

        match self.ip {
            Ip::V4 { src, dst } => {
                let header = 20 + self.ip_options.len();
                let total = self.total_len.unwrap_or((header + tcp.len()) as u16);
                let ihl = self.ihl.unwrap_or((header / 4) as u8);
                bytes.push(self.version.unwrap_or(4) << 4 | ihl);
                bytes.push(0);
                bytes.extend_from_slice(&total.to_be_bytes());
                bytes.extend_from_slice(&[0x12, 0x34]);
                bytes.extend_from_slice(&self.fragment.to_be_bytes());
                bytes.extend_from_slice(&[64, self.protocol, 0, 0]);
                bytes.extend_from_slice(&src);
                bytes.extend_from_slice(&dst);
                bytes.extend_from_slice(&self.ip_options);
            }
            Ip::V6 { src, dst } => {
                bytes.extend_from_slice(&[self.version.unwrap_or(6) << 4, 0, 0, 0]);
                let len = self.payload_len_field.unwrap_or(tcp.len() as u16);
                bytes.extend_from_slice(&len.to_be_bytes());
                bytes.extend_from_slice(&[self.protocol, 64]);
                bytes.extend_from_slice(&src);
                bytes.extend_from_slice(&dst);
            }
        }
        let l4 = bytes.len();
        bytes.extend_from_slice(&tcp);
        bytes.resize(bytes.len() + self.padding, 0);
        Built {
            bytes,
            expected: Frame {
                family,
                src_addr,
                dst_addr,
                src_port: self.src_port,
                dst_port: self.dst_port,
                seq: self.seq,
                ack: self.ack,
                flags: TcpFlags(self.flags),
                payload_offset: l4 + tcp_header,
                payload_len: self.payload.len(),
            },
        }
    }
}

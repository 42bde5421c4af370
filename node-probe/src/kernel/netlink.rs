//! Interfaces appearing and disappearing: a NETLINK_ROUTE socket subscribed to `RTMGRP_LINK`,
//! and a bounded parser of the `RTM_NEWLINK` / `RTM_DELLINK` messages it receives.
//!
//! The socket is opened before the interfaces that exist are listed, so that one created in
//! between is seen at least once; seeing it twice is harmless. When the kernel drops
//! notifications (`ENOBUFS`: the socket's buffer overflowed) or a datagram cannot be trusted,
//! the caller lists the interfaces again rather than guess what it missed.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};
use tokio::io::unix::AsyncFd;

/// `RTMGRP_LINK` from `linux/rtnetlink.h`.
const RTMGRP_LINK: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
/// `struct nlmsghdr`.
const NLMSG_HEADER: usize = 16;
/// `struct ifinfomsg`.
const IFINFOMSG: usize = 16;
/// `struct rtattr`'s header.
const RTA_HEADER: usize = 4;
const IFLA_IFNAME: u16 = 3;
/// A datagram this long may have been cut by the receive buffer; it is not trusted.
const DATAGRAM_MAX: usize = 64 * 1024;

/// One change to the interfaces.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum LinkEvent {
    /// The interface exists with this name: new, renamed, or only its state changed.
    Present {
        /// `ifi_index`.
        index: u32,
        /// `IFLA_IFNAME`.
        name: String,
    },
    /// The interface is gone (deleted, or moved to another network namespace).
    Gone {
        /// `ifi_index`.
        index: u32,
    },
}

/// What a datagram held.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Datagram {
    /// The link events, in order.
    pub(crate) events: Vec<LinkEvent>,
    /// Something was malformed, cut or reported lost: list the interfaces again.
    pub(crate) resync: bool,
}

/// Parses every message in one datagram. Never panics; a malformed message ends the parse
/// with `resync` set.
pub(crate) fn parse(mut bytes: &[u8]) -> Datagram {
    let mut out = Datagram::default();
    while !bytes.is_empty() {
        let Some((header, _)) = bytes.split_first_chunk::<NLMSG_HEADER>() else {
            out.resync = true;
            break;
        };
        let [l0, l1, l2, l3, t0, t1, ..] = *header;
        let len = u32::from_ne_bytes([l0, l1, l2, l3]) as usize;
        let kind = u16::from_ne_bytes([t0, t1]);
        let Some(message) = bytes.get(NLMSG_HEADER..len).filter(|_| len >= NLMSG_HEADER) else {
            out.resync = true;
            break;
        };
        match kind {
            RTM_NEWLINK | RTM_DELLINK => match link(kind, message) {
                Some(event) => out.events.push(event),
                None => out.resync = true,
            },
            NLMSG_ERROR | NLMSG_OVERRUN => out.resync = true,
            _ => {}
        }
        bytes = bytes.get(align(len)..).unwrap_or_default();
    }
    out
}

/// An `ifinfomsg` and its attributes.
fn link(kind: u16, message: &[u8]) -> Option<LinkEvent> {
    let (info, mut attrs) = message.split_first_chunk::<IFINFOMSG>()?;
    let [_, _, _, _, i0, i1, i2, i3, ..] = *info;
    let index = u32::from_ne_bytes([i0, i1, i2, i3]);
    if kind == RTM_DELLINK {
        return Some(LinkEvent::Gone { index });
    }
    while let Some((&[a0, a1, b0, b1], _)) = attrs.split_first_chunk::<RTA_HEADER>() {
        let len = usize::from(u16::from_ne_bytes([a0, a1]));
        let value = attrs.get(RTA_HEADER..len).filter(|_| len >= RTA_HEADER)?;
        if u16::from_ne_bytes([b0, b1]) == IFLA_IFNAME {
            let name = value.split(|&b| b == 0).next().unwrap_or_default();
            return Some(LinkEvent::Present {
                index,
                name: String::from_utf8_lossy(name).into_owned(),
            });
        }
        attrs = attrs.get(align(len)..).unwrap_or_default();
    }
    // A new link always carries its name; one without is not something to act on.
    None
}

/// Netlink's 4-byte alignment.
fn align(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// A NETLINK_ROUTE socket receiving link notifications.
pub(crate) struct LinkSocket {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl LinkSocket {
    /// Opens and subscribes the socket. Needs a tokio runtime with I/O enabled.
    pub(crate) fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, RTMGRP_LINK))?;
        #[allow(unsafe_code, reason = "tokio's fd registration is unsafe; see SAFETY")]
        // SAFETY: the OwnedFd is the socket just opened; it stays open, and `as_raw_fd`
        // returns it, for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Self {
            fd,
            buf: vec![0; DATAGRAM_MAX],
        })
    }

    /// The next datagram's events. A lost notification (`ENOBUFS`) is a datagram asking
    /// for a resync; other errors are returned.
    pub(crate) async fn next(&mut self) -> io::Result<Datagram> {
        loop {
            let mut guard = self.fd.readable().await?;
            let received = guard.try_io(|fd| {
                recv(fd.get_ref().as_raw_fd(), &mut self.buf, MsgFlags::empty())
                    .map_err(io::Error::from)
            });
            match received {
                Ok(Ok(len)) if len >= self.buf.len() => {
                    return Ok(Datagram {
                        events: Vec::new(),
                        resync: true,
                    });
                }
                Ok(Ok(len)) => return Ok(parse(self.buf.get(..len).unwrap_or_default())),
                Ok(Err(error)) if error.raw_os_error() == Some(Errno::ENOBUFS as i32) => {
                    return Ok(Datagram {
                        events: Vec::new(),
                        resync: true,
                    });
                }
                Ok(Err(error)) => return Err(error),
                // Not ready after all: wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, index: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![0u8; IFINFOMSG];
        body[4..8].copy_from_slice(&index.to_ne_bytes());
        for (kind, value) in attrs {
            let len = RTA_HEADER + value.len();
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(value);
            body.resize(align(body.len()), 0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&((NLMSG_HEADER + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn new_and_deleted_links() {
        let mut datagram = message(
            RTM_NEWLINK,
            7,
            &[(4, &1500u32.to_ne_bytes()), (IFLA_IFNAME, b"tap0\0")],
        );
        datagram.extend(message(RTM_DELLINK, 9, &[(IFLA_IFNAME, b"fc-1\0")]));
        datagram.extend(message(0x99, 1, &[]));
        assert_eq!(
            parse(&datagram),
            Datagram {
                events: vec![
                    LinkEvent::Present {
                        index: 7,
                        name: "tap0".into()
                    },
                    LinkEvent::Gone { index: 9 },
                ],
                resync: false,
            }
        );
    }

    #[test]
    fn lost_or_malformed_messages_ask_for_a_resync() {
        assert!(parse(&message(NLMSG_ERROR, 0, &[])).resync);
        assert!(parse(&message(NLMSG_OVERRUN, 0, &[])).resync);
        // A new link without a name.
        assert!(parse(&message(RTM_NEWLINK, 3, &[(4, &[0; 4])])).resync);
        // A length shorter than its own header.
        let mut bad = message(RTM_NEWLINK, 3, &[(IFLA_IFNAME, b"tap1\0")]);
        bad[..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(parse(&bad).resync);
    }

    #[test]
    fn every_cut_of_a_datagram_parses_without_panicking() {
        let mut datagram = message(RTM_NEWLINK, 7, &[(IFLA_IFNAME, b"tap0\0")]);
        datagram.extend(message(RTM_DELLINK, 9, &[]));
        for cut in 0..datagram.len() {
            let parsed = parse(&datagram[..cut]);
            if cut > 0 && cut != datagram.len() - (NLMSG_HEADER + IFINFOMSG) {
                assert!(parsed.resync, "cut at {cut}");
            }
        }
        for byte in 0..datagram.len() {
            for value in [0u8, 1, 0x7f, 0xff] {
                let mut flipped = datagram.clone();
                flipped[byte] = value;
                let _ = parse(&flipped);
            }
        }
    }
}

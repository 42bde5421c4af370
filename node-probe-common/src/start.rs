//! Recognising the start of an HTTP/1.x message from the first bytes of a TCP payload.
//!
//! This runs in the kernel on every payload-carrying packet, so it is byte compares on a fixed
//! array and nothing else. It is deliberately a little stricter than "a method and a space":
//! body segments start at arbitrary bytes, and a body that happens to begin with `GET ` should
//! not open a span.

use crate::frame::Frame;
use crate::packet::Packet;

/// Bytes the kernel loads from the payload's start: the longest pattern, a status line's
/// `HTTP/1.1 200 `, is 13 bytes. A shorter payload starts no message (a complete head is at
/// least 17 bytes, so only a head split into tiny segments is missed).
pub const START_LEN: usize = 13;

/// The kind of HTTP/1.x message a payload starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Start {
    /// A request line: a known method, a space and the first character of a target.
    Request,
    /// A status line: `HTTP/1.0` or `HTTP/1.1`, a space, three digits, then a space (or the
    /// line's end, for servers that send no reason phrase and no space).
    Response,
}

/// The message a payload starts, or `None` (TLS, HTTP/2, other protocols, a body segment).
///
/// Methods are those the semantic conventions know (as `trace_core::http::known_method`
/// lists them): RFC 9110's eight, PATCH and QUERY. Methods are case-sensitive.
#[inline(always)]
pub fn payload_start(head: &[u8; START_LEN]) -> Option<Start> {
    match *head {
        [
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            b'1',
            b'.',
            b'0' | b'1',
            b' ',
            a,
            b,
            c,
            end,
        ] if a.is_ascii_digit()
            && b.is_ascii_digit()
            && c.is_ascii_digit()
            && matches!(end, b' ' | b'\r' | b'\n') =>
        {
            Some(Start::Response)
        }
        [b'G', b'E', b'T', b' ', target, ..]
        | [b'P', b'U', b'T', b' ', target, ..]
        | [b'H', b'E', b'A', b'D', b' ', target, ..]
        | [b'P', b'O', b'S', b'T', b' ', target, ..]
        | [b'P', b'A', b'T', b'C', b'H', b' ', target, ..]
        | [b'T', b'R', b'A', b'C', b'E', b' ', target, ..]
        | [b'Q', b'U', b'E', b'R', b'Y', b' ', target, ..]
        | [b'D', b'E', b'L', b'E', b'T', b'E', b' ', target, ..]
        | [b'C', b'O', b'N', b'N', b'E', b'C', b'T', b' ', target, ..]
        | [b'O', b'P', b'T', b'I', b'O', b'N', b'S', b' ', target, ..]
            if target.is_ascii_graphic() =>
        {
            Some(Start::Request)
        }
        _ => None,
    }
}

/// The message `frame`'s payload starts: one [`START_LEN`]-byte load and [`payload_start`].
#[inline(always)]
pub fn packet_start<P: Packet + ?Sized>(packet: &P, frame: &Frame) -> Option<Start> {
    if frame.payload_len < START_LEN {
        return None;
    }
    payload_start(&packet.load::<START_LEN>(frame.payload_offset)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(bytes: &[u8]) -> Option<Start> {
        let mut head = [0; START_LEN];
        let n = bytes.len().min(START_LEN);
        head[..n].copy_from_slice(&bytes[..n]);
        payload_start(&head)
    }

    #[test]
    fn request_lines() {
        for line in [
            "GET / HTTP/1.1\r\n",
            "HEAD /x HTTP/1.1\r\n",
            "POST /api HTTP/1.1\r\n",
            "PUT /a HTTP/1.0\r\n",
            "DELETE /a/b HTTP/1.1\r\n",
            "CONNECT example.com:443 HTTP/1.1\r\n",
            "OPTIONS * HTTP/1.1\r\n",
            "TRACE / HTTP/1.1\r\n",
            "PATCH /p HTTP/1.1\r\n",
            "QUERY /q HTTP/1.1\r\n",
            "GET http://example.com/ HTTP/1.1\r\n",
        ] {
            assert_eq!(start(line.as_bytes()), Some(Start::Request), "{line}");
        }
    }

    #[test]
    fn status_lines() {
        for line in [
            "HTTP/1.1 200 OK\r\n",
            "HTTP/1.0 404 \r\n",
            "HTTP/1.1 204\r\n",
            "HTTP/1.1 100\n",
        ] {
            assert_eq!(start(line.as_bytes()), Some(Start::Response), "{line}");
        }
    }

    #[test]
    fn a_packet_shorter_than_the_window_starts_nothing() {
        use crate::testing::FrameBuilder;
        let built = FrameBuilder::ipv4().payload(b"GET / HTTP/1.").build();
        assert_eq!(
            packet_start(&built.bytes[..], &built.expected),
            Some(Start::Request)
        );
        // Padding after the payload is not read as payload.
        let built = FrameBuilder::ipv4()
            .payload(b"GET / HTTP/1")
            .padding(20)
            .build();
        assert_eq!(packet_start(&built.bytes[..], &built.expected), None);
    }

    #[test]
    fn everything_else_is_none() {
        let tls_client_hello = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0,
        ];
        assert_eq!(payload_start(&tls_client_hello), None);
        for bytes in [
            "PRI * HTTP/2.0\r\n\r\nSM",
            "get / HTTP/1.1\r\n",
            "GET  / HTTP/1.1",
            "GETX / HTTP/1.1",
            "GET\t/ HTTP/1.1",
            "POST\r\n",
            "HTTP/1.2 200 OK\r\n",
            "HTTP/2 200\r\n",
            "HTTP/1.1 20 OK\r\n",
            "HTTP/1.1 2000 OK\r\n",
            "HTTP/1.1 abc OK\r\n",
            "SSH-2.0-OpenSSH_9.2",
            "",
        ] {
            assert_eq!(start(bytes.as_bytes()), None, "{bytes:?}");
        }
    }
}

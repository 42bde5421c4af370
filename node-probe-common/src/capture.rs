//! Copying the first bytes of a payload into an event with constant-size loads only.
//!
//! A payload shorter than [`PREFIX_LEN`] cannot be read with one `PREFIX_LEN`-byte load from
//! its start (the load would run past the frame), and a load of a run-time length is what the
//! verifier refuses. So the copy uses a window of constant size `W` that *ends* at the payload's
//! end and reaches back into the headers: the payload is then the window's last
//! `payload_len` bytes, and the event records where it begins. Each smaller window in the
//! ladder is [`MIN_HEADERS`] shorter than the one before, which is exactly what a frame too short
//! for the previous window can be missing, so one of them always fits the whole payload.

use crate::frame::{Frame, MIN_HEADERS};
use crate::names::PREFIX_LEN;
use crate::packet::Packet;

const W1: usize = PREFIX_LEN - MIN_HEADERS;
const W2: usize = W1 - MIN_HEADERS;
const W3: usize = W2 - MIN_HEADERS;
// The ladder must reach a window no longer than the shortest possible frame; a larger
// PREFIX_LEN needs another step.
const _: () = assert!(W3 <= MIN_HEADERS);

/// Where the captured payload bytes sit in the prefix array: `prefix[start..start + len]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Captured {
    /// Offset of the payload's first byte in the array.
    pub start: u16,
    /// Payload bytes captured: `min(payload_len, PREFIX_LEN)`, or 0 when the frame could not be
    /// read.
    pub len: u16,
}

/// Copies the payload's first `min(payload_len, PREFIX_LEN)` bytes into `out`, at most four
/// constant-size loads, each straight into `out` (in the kernel, the ring-buffer entry). Bytes of `out` outside the returned range are headers or untouched.
#[inline(always)]
pub fn capture_prefix<P: Packet + ?Sized>(
    packet: &P,
    frame: &Frame,
    out: &mut [u8; PREFIX_LEN],
) -> Captured {
    if frame.payload_len == 0 {
        return Captured::default();
    }
    if frame.payload_len >= PREFIX_LEN {
        return if packet.load_into(frame.payload_offset, out) {
            Captured {
                start: 0,
                len: PREFIX_LEN as u16,
            }
        } else {
            Captured::default()
        };
    }
    window::<PREFIX_LEN, P>(packet, frame, out)
        .or_else(|| window::<W1, P>(packet, frame, out))
        .or_else(|| window::<W2, P>(packet, frame, out))
        .or_else(|| window::<W3, P>(packet, frame, out))
        .unwrap_or_default()
}

/// The `W` bytes ending at the payload's end, when the frame has them and they hold the whole
/// payload.
#[inline(always)]
fn window<const W: usize, P: Packet + ?Sized>(
    packet: &P,
    frame: &Frame,
    out: &mut [u8; PREFIX_LEN],
) -> Option<Captured> {
    let end = frame.payload_end();
    if end < W || frame.payload_len > W {
        return None;
    }
    if !packet.load_into(end - W, out.first_chunk_mut::<W>()?) {
        return None;
    }
    Some(Captured {
        start: (W - frame.payload_len) as u16,
        len: frame.payload_len as u16,
    })
}

/// Whether the payload ends with a blank line (`\n\r\n` or `\n\n`): a head that ends in this
/// packet. One 4-byte load.
#[inline(always)]
pub fn ends_with_blank_line<P: Packet + ?Sized>(packet: &P, frame: &Frame) -> bool {
    if frame.payload_len < 4 {
        return false;
    }
    matches!(
        packet.load::<4>(frame.payload_end() - 4),
        Some([_, b'\n', b'\r', b'\n'] | [_, _, b'\n', b'\n'])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::parse_frame;
    use crate::testing::FrameBuilder;

    fn captured(bytes: &[u8]) -> std::vec::Vec<u8> {
        let frame = parse_frame(bytes).unwrap();
        let mut out = [0xaa; PREFIX_LEN];
        let c = capture_prefix(bytes, &frame, &mut out);
        out[usize::from(c.start)..][..usize::from(c.len)].to_vec()
    }

    #[test]
    fn every_payload_length_is_captured_whole_up_to_the_prefix() {
        let payload: std::vec::Vec<u8> = (0..=255u8).cycle().take(PREFIX_LEN + 40).collect();
        for builder in [
            FrameBuilder::ipv4(),
            FrameBuilder::ipv6(),
            FrameBuilder::ipv4().vlans(&[0x8100]).tcp_options(&[1; 12]),
        ] {
            for len in 0..payload.len() {
                let built = builder.clone().payload(&payload[..len]).build();
                let want = &payload[..len.min(PREFIX_LEN)];
                assert_eq!(captured(&built.bytes), want, "payload of {len}");
                // Padding after the datagram is never taken for payload.
                let padded = builder.clone().payload(&payload[..len]).padding(7).build();
                assert_eq!(captured(&padded.bytes), want, "padded payload of {len}");
            }
        }
    }

    #[test]
    fn blank_line_at_the_end() {
        let ends = |payload: &[u8]| {
            let built = FrameBuilder::ipv4().payload(payload).padding(4).build();
            ends_with_blank_line(&built.bytes[..], &built.expected)
        };
        assert!(ends(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(ends(b"GET / HTTP/1.1\n\n"));
        assert!(ends(b"\r\n\r\n"));
        assert!(!ends(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!ends(b"POST / HTTP/1.1\r\n\r\n{}"));
    }
}

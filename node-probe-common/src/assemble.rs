//! Reassembling a head that a client split across segments, from the captured prefixes of a
//! start event and its continuation events, in TCP-sequence order and bounded.
//!
//! It is pure and allocation-free, so it lives here beside the parsers it feeds and is tested
//! (and fuzzed) on the host like them; the agent keeps one per connection with a head pending.

use crate::seq::seq_after;

/// Where an assembly stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Assembly {
    /// More bytes may follow.
    Open,
    /// The blank line that ends the head is in the buffer.
    Complete,
    /// The buffer is full without the blank line.
    Full,
    /// Bytes are missing (a segment lost, reordered or captured only in part), so nothing
    /// further can be added.
    Gap,
}

/// What [`HeadAssembler::push`] did with a segment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Push {
    /// Its new bytes were appended (as far as the buffer had room).
    Appended,
    /// All its bytes had been seen: dropped.
    Retransmit,
    /// It starts after a gap: dropped, and the assembly is now [`Assembly::Gap`].
    Gap,
    /// The assembly was no longer [`Assembly::Open`]: dropped.
    Closed,
}

/// A head of at most `N` bytes, built from segments.
#[derive(Clone, Debug)]
pub struct HeadAssembler<const N: usize> {
    buf: [u8; N],
    len: usize,
    next_seq: u32,
    state: Assembly,
}

impl<const N: usize> HeadAssembler<N> {
    /// Starts with the message start's segment: the sequence number of its first payload byte,
    /// its captured bytes, and its whole payload length (more than `captured` when the capture
    /// was cut).
    pub fn new(seq: u32, captured: &[u8], payload_len: u32) -> Self {
        let mut assembler = Self {
            buf: [0; N],
            len: 0,
            next_seq: seq,
            state: Assembly::Open,
        };
        assembler.append(captured, payload_len);
        assembler
    }

    /// Adds a later segment of the same direction. Overlap with bytes already held (a partial
    /// retransmit) is skipped; a segment past the next expected byte closes the assembly.
    pub fn push(&mut self, seq: u32, captured: &[u8], payload_len: u32) -> Push {
        if self.state != Assembly::Open {
            return Push::Closed;
        }
        let end = seq.wrapping_add(payload_len);
        if !seq_after(end, self.next_seq) {
            return Push::Retransmit;
        }
        if seq_after(seq, self.next_seq) {
            self.state = Assembly::Gap;
            return Push::Gap;
        }
        let seen = self.next_seq.wrapping_sub(seq);
        match captured.get(seen as usize..) {
            Some(new) => self.append(new, payload_len - seen),
            None => {
                // The new bytes begin beyond what the kernel captured of this segment.
                self.state = Assembly::Gap;
                self.next_seq = end;
                return Push::Gap;
            }
        }
        Push::Appended
    }

    /// Appends the captured part of a segment of `payload_len` new bytes.
    fn append(&mut self, captured: &[u8], payload_len: u32) {
        let captured = captured.get(..payload_len as usize).unwrap_or(captured);
        let room = self.buf.get_mut(self.len..).unwrap_or_default();
        let copied = captured.len().min(room.len());
        if let (Some(dst), Some(src)) = (room.get_mut(..copied), captured.get(..copied)) {
            dst.copy_from_slice(src);
        }
        // The blank line may straddle the previous segment's last two bytes.
        let from = self.len.saturating_sub(2);
        self.len += copied;
        self.next_seq = self.next_seq.wrapping_add(payload_len);
        self.state = if self.buf.get(from..self.len).is_some_and(has_blank_line) {
            Assembly::Complete
        } else if self.len == N {
            Assembly::Full
        } else if captured.len() < payload_len as usize {
            Assembly::Gap
        } else {
            Assembly::Open
        };
    }

    /// The bytes held, from the start of the head.
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Where the assembly stands.
    pub fn state(&self) -> Assembly {
        self.state
    }
}

/// `\n\r\n` or `\n\n`: a line end followed by an empty line.
fn has_blank_line(bytes: &[u8]) -> bool {
    bytes.windows(2).enumerate().any(|(i, pair)| match pair {
        [b'\n', b'\n'] => true,
        [b'\n', b'\r'] => bytes.get(i + 2) == Some(&b'\n'),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"GET /a/long/path HTTP/1.1\r\nHost: h\r\ntraceparent: 00-x\r\n\r\n";

    fn len(bytes: &[u8]) -> u32 {
        bytes.len() as u32
    }

    #[test]
    fn every_split_point_reassembles_the_head() {
        for cut in 1..HEAD.len() {
            let (a, b) = HEAD.split_at(cut);
            let mut asm = HeadAssembler::<256>::new(1_000, a, len(a));
            let want = if has_blank_line(a) {
                Assembly::Complete
            } else {
                Assembly::Open
            };
            assert_eq!(asm.state(), want, "cut {cut}");
            if want == Assembly::Open {
                assert_eq!(asm.push(1_000 + len(a), b, len(b)), Push::Appended);
                assert_eq!(asm.bytes(), HEAD, "cut {cut}");
                assert_eq!(asm.state(), Assembly::Complete, "cut {cut}");
            }
        }
    }

    #[test]
    fn retransmits_and_overlaps() {
        let (a, rest) = HEAD.split_at(10);
        let (b, c) = rest.split_at(10);
        let seq = u32::MAX - 12; // across the wrap
        let mut asm = HeadAssembler::<256>::new(seq, a, len(a));
        assert_eq!(asm.push(seq, a, len(a)), Push::Retransmit);
        // A retransmit that repeats a and adds b.
        let ab = &HEAD[..20];
        assert_eq!(asm.push(seq, ab, len(ab)), Push::Appended);
        assert_eq!(asm.bytes(), ab);
        assert_eq!(asm.push(seq.wrapping_add(10), b, len(b)), Push::Retransmit);
        assert_eq!(asm.push(seq.wrapping_add(20), c, len(c)), Push::Appended);
        assert_eq!(asm.bytes(), HEAD);
        assert_eq!(asm.push(seq.wrapping_add(len(HEAD)), b"x", 1), Push::Closed);
    }

    #[test]
    fn gaps_close_the_assembly() {
        let (a, rest) = HEAD.split_at(10);
        let mut asm = HeadAssembler::<256>::new(0, a, len(a));
        assert_eq!(asm.push(11, &rest[1..], len(rest) - 1), Push::Gap);
        assert_eq!(asm.state(), Assembly::Gap);
        assert_eq!(asm.push(10, rest, len(rest)), Push::Closed);

        // The kernel captured only part of the first segment.
        let asm = HeadAssembler::<256>::new(0, a, len(a) + 50);
        assert_eq!(asm.state(), Assembly::Gap);

        // A retransmit whose new bytes lie beyond its captured part.
        let mut asm = HeadAssembler::<256>::new(0, a, len(a));
        assert_eq!(asm.push(0, &HEAD[..5], 30), Push::Gap);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut asm = HeadAssembler::<16>::new(0, &HEAD[..10], 10);
        assert_eq!(asm.push(10, &HEAD[10..30], 20), Push::Appended);
        assert_eq!(asm.state(), Assembly::Full);
        assert_eq!(asm.bytes(), &HEAD[..16]);
        // A blank line within the cap wins over a full buffer.
        let asm = HeadAssembler::<4>::new(0, b"A\n\nB", 4);
        assert_eq!(asm.state(), Assembly::Complete);
    }

    #[test]
    fn blank_lines() {
        assert!(has_blank_line(b"a\r\n\r\n"));
        assert!(has_blank_line(b"a\n\n"));
        assert!(has_blank_line(b"\n\r\n"));
        assert!(!has_blank_line(b"a\r\nb\r\n"));
        assert!(!has_blank_line(b"\n\r"));
        assert!(!has_blank_line(b""));
    }
}

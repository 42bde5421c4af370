//! Reading HTTP/1.x messages off a byte stream, bounded, keeping the exact bytes received.

use std::io::{self, Read};

use crate::http::{Framing, head_end};

/// The longest chunk-size line accepted, extensions included.
const MAX_CHUNK_LINE: usize = 1024;

/// Why a message could not be read.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The peer closed the connection before sending anything of a new message.
    Closed,
    /// The socket failed or timed out.
    Io(io::Error),
    /// The head exceeded its limit.
    HeadTooLarge,
    /// The body exceeded its limit.
    BodyTooLarge,
    /// The framing is broken, or the peer closed mid-message.
    Malformed(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed"),
            Self::Io(error) => write!(f, "{error}"),
            Self::HeadTooLarge => f.write_str("head too large"),
            Self::BodyTooLarge => f.write_str("body too large"),
            Self::Malformed(what) => f.write_str(what),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// A stream with the bytes read past the current message kept for the next one (pipelining),
/// and the bytes of the current message recorded as they were received.
pub(crate) struct Wire<S> {
    stream: S,
    pending: Vec<u8>,
    raw: Vec<u8>,
}

impl<S: Read> Wire<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            raw: Vec::new(),
        }
    }

    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }

    /// The bytes of the message read so far, leaving the record empty for the next one.
    pub(crate) fn take_raw(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.raw)
    }

    /// Reads up to and including the blank line that ends a head of at most `max` bytes.
    pub(crate) fn read_head(&mut self, max: usize) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(end) = head_end(&self.pending) {
                return if end > max {
                    Err(WireError::HeadTooLarge)
                } else {
                    Ok(self.take(end))
                };
            }
            if self.pending.len() >= max {
                return Err(WireError::HeadTooLarge);
            }
            if !self.fill()? {
                return Err(if self.pending.is_empty() && self.raw.is_empty() {
                    WireError::Closed
                } else {
                    WireError::Malformed("connection closed inside the head")
                });
            }
        }
    }

    /// Reads a body framed as `framing` (`None`: until the peer closes), of at most `max`
    /// decoded bytes; returns the decoded body.
    pub(crate) fn read_body(
        &mut self,
        framing: Option<Framing>,
        max: usize,
    ) -> Result<Vec<u8>, WireError> {
        match framing {
            Some(Framing::Length(length)) => {
                let length = usize::try_from(length)
                    .ok()
                    .filter(|&l| l <= max)
                    .ok_or(WireError::BodyTooLarge)?;
                self.read_exact(length)
            }
            Some(Framing::Chunked) => self.read_chunked(max),
            None => {
                while self.fill()? {
                    if self.pending.len() > max {
                        return Err(WireError::BodyTooLarge);
                    }
                }
                let all = self.pending.len();
                Ok(self.take(all))
            }
        }
    }

    fn read_chunked(&mut self, max: usize) -> Result<Vec<u8>, WireError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(MAX_CHUNK_LINE)?;
            let size = line.split(|&b| b == b';').next().unwrap_or_default();
            let size = std::str::from_utf8(size.trim_ascii())
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .ok_or(WireError::Malformed("chunk size"))?;
            if size == 0 {
                // Trailer fields, bounded like a head, up to the blank line.
                let mut trailers = 0;
                while self.read_line(MAX_CHUNK_LINE)?.len() > 2 {
                    trailers += 1;
                    if trailers > 64 {
                        return Err(WireError::HeadTooLarge);
                    }
                }
                return Ok(body);
            }
            if body.len().saturating_add(size) > max {
                return Err(WireError::BodyTooLarge);
            }
            body.extend_from_slice(&self.read_exact(size)?);
            if self.read_exact(2)? != b"\r\n" {
                return Err(WireError::Malformed("chunk data not followed by CRLF"));
            }
        }
    }

    /// Reads a line including its CRLF, of at most `max` bytes.
    fn read_line(&mut self, max: usize) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(at) = self.pending.windows(2).position(|w| w == b"\r\n") {
                return if at + 2 > max {
                    Err(WireError::Malformed("line too long"))
                } else {
                    Ok(self.take(at + 2))
                };
            }
            if self.pending.len() >= max {
                return Err(WireError::Malformed("line too long"));
            }
            if !self.fill()? {
                return Err(WireError::Malformed("connection closed inside the body"));
            }
        }
    }

    fn read_exact(&mut self, length: usize) -> Result<Vec<u8>, WireError> {
        while self.pending.len() < length {
            if !self.fill()? {
                return Err(WireError::Malformed("connection closed inside the body"));
            }
        }
        Ok(self.take(length))
    }

    /// Moves the first `length` pending bytes into the record and returns them.
    fn take(&mut self, length: usize) -> Vec<u8> {
        let taken: Vec<u8> = self
            .pending
            .drain(..length.min(self.pending.len()))
            .collect();
        self.raw.extend_from_slice(&taken);
        taken
    }

    /// Reads once more from the stream; false at end of stream.
    fn fill(&mut self) -> Result<bool, WireError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(read) => {
                    self.pending
                        .extend_from_slice(chunk.get(..read).unwrap_or_default());
                    return Ok(true);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that hands out its bytes a few at a time, as segments arrive.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    fn wire(bytes: &[u8], step: usize) -> Wire<Trickle> {
        Wire::new(Trickle(bytes.to_vec(), step))
    }

    #[test]
    fn pipelined_messages_are_kept_apart_with_their_exact_bytes() {
        let first = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let second = b"GET /b HTTP/1.1\r\n\r\n";
        for step in [1, 7, 4096] {
            let mut w = wire(&[&first[..], &second[..]].concat(), step);
            w.read_head(1024).unwrap();
            assert_eq!(w.read_body(Some(Framing::Length(3)), 10).unwrap(), b"abc");
            assert_eq!(w.take_raw(), first);
            w.read_head(1024).unwrap();
            assert_eq!(w.take_raw(), second);
            assert!(matches!(w.read_head(1024), Err(WireError::Closed)));
        }
    }

    #[test]
    fn chunked_bodies_decode_and_keep_their_raw_bytes() {
        let message = b"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let mut w = wire(message, 3);
        assert_eq!(w.read_body(Some(Framing::Chunked), 100).unwrap(), b"hello!");
        assert_eq!(w.take_raw(), &message[..message.len() - 4]);
        assert_eq!(w.read_exact(4).unwrap(), b"NEXT", "what follows is kept");
    }

    #[test]
    fn limits_hold() {
        let mut w = wire(b"GET / HTTP/1.1\r\nA: aaaaaaaaaaaaaaaa\r\n\r\n", 5);
        assert!(matches!(w.read_head(20), Err(WireError::HeadTooLarge)));
        let mut w = wire(&[b'x'; 100], 100);
        assert!(matches!(w.read_head(50), Err(WireError::HeadTooLarge)));
        let mut w = wire(b"", 1);
        assert!(matches!(
            w.read_body(Some(Framing::Length(11)), 10),
            Err(WireError::BodyTooLarge)
        ));
        let mut w = wire(b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n", 4);
        assert!(matches!(
            w.read_body(Some(Framing::Chunked), 10),
            Err(WireError::BodyTooLarge)
        ));
        let mut w = wire(&[b'y'; 20], 3);
        assert!(matches!(
            w.read_body(None, 10),
            Err(WireError::BodyTooLarge)
        ));
    }

    #[test]
    fn broken_framing_is_malformed_not_a_panic() {
        for body in [
            &b"zz\r\nab\r\n0\r\n\r\n"[..],
            b"2\r\nabXX0\r\n\r\n",
            b"2\r\nab",
            b"ffffffffffffffffffffffff\r\n",
            b"\r\n",
            b"+2\r\nab\r\n0\r\n\r\n",
        ] {
            let mut w = wire(body, 2);
            assert!(
                matches!(
                    w.read_body(Some(Framing::Chunked), 1 << 20),
                    Err(WireError::Malformed(_) | WireError::BodyTooLarge)
                ),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let mut w = wire(b"GET / HTT", 2);
        assert!(matches!(w.read_head(100), Err(WireError::Malformed(_))));
    }
}

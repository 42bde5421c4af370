//! HTTP/1.1 on a TCP stream: heads parsed with httparse, bodies framed by Content-Length,
//! chunked encoding or the end of the connection, each kept both as the bytes that crossed the
//! wire (forwarded unchanged) and decoded (what the filter's body callbacks see).
//!
//! Hand-written rather than hyper: hyper's header map groups repeated names together and a
//! SigV4-signed request must reach the workload with its headers in the order they came.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest request or status line plus header block accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// The largest body accepted, buffered whole.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_HEADERS: usize = 128;

/// Why an exchange on a connection failed.
#[derive(Debug)]
pub enum WireError {
    /// The peer closed before sending anything of a new message.
    Closed,
    /// The peer did not send in time.
    Timeout,
    /// A socket error, or the peer closed in the middle of a message.
    Io(std::io::Error),
    /// The head is larger than [`MAX_HEAD`].
    HeadTooLarge,
    /// The body is larger than [`MAX_BODY`].
    BodyTooLarge,
    /// Not HTTP/1.x.
    Malformed(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed"),
            Self::Timeout => f.write_str("timed out"),
            Self::Io(e) => write!(f, "{e}"),
            Self::HeadTooLarge => f.write_str("header block too large"),
            Self::BodyTooLarge => f.write_str("body too large"),
            Self::Malformed(what) => write!(f, "malformed HTTP/1.1: {what}"),
        }
    }
}

impl From<std::io::Error> for WireError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// A TCP stream with what has been read from it and not yet consumed.
pub struct Conn {
    /// The stream.
    pub stream: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
}

/// How a message's body is delimited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Framing {
    /// `Content-Length` (0 for none).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// A response without either: its body ends with the connection.
    UntilClose,
}

/// A body as received.
#[derive(Default, Debug)]
pub struct Body {
    /// Every byte after the head, framing included: what is forwarded.
    pub raw: Vec<u8>,
    /// The payload, framing removed.
    pub decoded: Vec<u8>,
}

/// A parsed head: the start line's parts and the headers, names lowercased (as Envoy's HTTP/1
/// codec does), in the order they came.
#[derive(Debug)]
pub struct Head {
    /// Request method, or empty for a response.
    pub method: String,
    /// Request target, or empty for a response.
    pub target: String,
    /// Response status, or 0 for a request.
    pub status: u16,
    /// Response reason phrase.
    pub reason: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header pairs.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Head {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header(&self.headers, name)
    }

    /// The body framing, as RFC 9112 section 6.3 decides it (`is_response` only matters for
    /// a message with neither length nor chunking).
    pub fn framing(&self, is_response: bool) -> Result<Framing, WireError> {
        if let Some(coding) = self.header("transfer-encoding") {
            let last = coding.rsplit(|b| *b == b',').next().unwrap_or_default();
            if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Ok(Framing::Chunked);
            }
            return if is_response {
                Ok(Framing::UntilClose)
            } else {
                Err(WireError::Malformed("a transfer coding other than chunked"))
            };
        }
        let lengths: Vec<&[u8]> = self
            .headers
            .iter()
            .filter(|(k, _)| k == b"content-length")
            .map(|(_, v)| v.as_slice())
            .collect();
        match lengths.first() {
            Some(first) => {
                if lengths.iter().any(|l| l != first) {
                    return Err(WireError::Malformed("conflicting content-length"));
                }
                std::str::from_utf8(first)
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                    .map(Framing::Length)
                    .ok_or(WireError::Malformed("bad content-length"))
            }
            None if is_response => Ok(Framing::UntilClose),
            None => Ok(Framing::Length(0)),
        }
    }

    /// Whether the connection stays open after this message.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or_default();
        let has = |token: &[u8]| {
            connection
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        };
        if self.minor_version == 0 {
            has(b"keep-alive")
        } else {
            !has(b"close")
        }
    }
}

/// The first value of `name` among `headers`.
pub fn header<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
}

impl Conn {
    /// Wraps a connected stream; every read waits at most `timeout`.
    pub fn new(stream: TcpStream, timeout: Duration) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            timeout,
        }
    }

    /// Reads more bytes into the buffer; `Ok(false)` at the end of the stream.
    async fn fill(&mut self) -> Result<bool, WireError> {
        let mut chunk = [0u8; 16 * 1024];
        let read = tokio::time::timeout(self.timeout, self.stream.read(&mut chunk))
            .await
            .map_err(|_| WireError::Timeout)??;
        self.buf
            .extend_from_slice(chunk.get(..read).unwrap_or_default());
        Ok(read > 0)
    }

    /// Waits for the first byte of a new message; `Closed` if the peer closes first.
    pub async fn wait_for_message(&mut self) -> Result<(), WireError> {
        while self.buf.is_empty() {
            if !self.fill().await? {
                return Err(WireError::Closed);
            }
        }
        Ok(())
    }

    /// Reads and parses a request head.
    pub async fn read_request_head(&mut self) -> Result<Head, WireError> {
        self.read_head(false).await
    }

    /// Reads and parses a response head, skipping interim (1xx) responses other than 101.
    pub async fn read_response_head(&mut self) -> Result<Head, WireError> {
        loop {
            let head = self.read_head(true).await?;
            if !(100..200).contains(&head.status) || head.status == 101 {
                return Ok(head);
            }
        }
    }

    async fn read_head(&mut self, response: bool) -> Result<Head, WireError> {
        loop {
            if let Some((head, used)) = parse_head(&self.buf, response)? {
                self.buf.drain(..used);
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(WireError::HeadTooLarge);
            }
            if !self.fill().await? {
                return Err(if self.buf.is_empty() {
                    WireError::Closed
                } else {
                    WireError::Io(std::io::ErrorKind::UnexpectedEof.into())
                });
            }
        }
    }

    /// Reads a body framed as `framing`.
    pub async fn read_body(&mut self, framing: Framing) -> Result<Body, WireError> {
        match framing {
            Framing::Length(length) => {
                if length > MAX_BODY {
                    return Err(WireError::BodyTooLarge);
                }
                let raw = self.take_exact(length).await?;
                Ok(Body {
                    decoded: raw.clone(),
                    raw,
                })
            }
            Framing::UntilClose => {
                while self.fill().await? {
                    if self.buf.len() > MAX_BODY {
                        return Err(WireError::BodyTooLarge);
                    }
                }
                let raw = std::mem::take(&mut self.buf);
                Ok(Body {
                    decoded: raw.clone(),
                    raw,
                })
            }
            Framing::Chunked => self.read_chunked().await,
        }
    }

    async fn take_exact(&mut self, length: usize) -> Result<Vec<u8>, WireError> {
        while self.buf.len() < length {
            if !self.fill().await? {
                return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Ok(self.buf.drain(..length).collect())
    }

    async fn take_line(&mut self) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(self.buf.drain(..end + 2).collect());
            }
            if self.buf.len() > MAX_HEAD {
                return Err(WireError::HeadTooLarge);
            }
            if !self.fill().await? {
                return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    async fn read_chunked(&mut self) -> Result<Body, WireError> {
        let mut body = Body::default();
        loop {
            let line = self.take_line().await?;
            body.raw.extend_from_slice(&line);
            let size = line
                .split(|b| *b == b';' || *b == b'\r')
                .next()
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok())
                .ok_or(WireError::Malformed("bad chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line that ends the message.
                loop {
                    let trailer = self.take_line().await?;
                    body.raw.extend_from_slice(&trailer);
                    if trailer == b"\r\n" {
                        return Ok(body);
                    }
                }
            }
            if body.decoded.len().saturating_add(size) > MAX_BODY {
                return Err(WireError::BodyTooLarge);
            }
            let data = self.take_exact(size.saturating_add(2)).await?;
            if !data.ends_with(b"\r\n") {
                return Err(WireError::Malformed("chunk without CRLF"));
            }
            body.decoded
                .extend_from_slice(data.get(..size).unwrap_or_default());
            body.raw.extend_from_slice(&data);
        }
    }

    /// Writes `bytes` whole.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        tokio::time::timeout(self.timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| WireError::Timeout)??;
        Ok(())
    }
}

fn parse_head(buf: &[u8], response: bool) -> Result<Option<(Head, usize)>, WireError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let lower = |name: &str| name.to_ascii_lowercase().into_bytes();
    if response {
        let mut parsed = httparse::Response::new(&mut slots);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(used)) => Ok(Some((
                Head {
                    method: String::new(),
                    target: String::new(),
                    status: parsed.code.unwrap_or_default(),
                    reason: parsed.reason.unwrap_or_default().to_owned(),
                    minor_version: parsed.version.unwrap_or(1),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| (lower(h.name), h.value.to_vec()))
                        .collect(),
                },
                used,
            ))),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(WireError::Malformed("response head")),
        }
    } else {
        let mut parsed = httparse::Request::new(&mut slots);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(used)) => Ok(Some((
                Head {
                    method: parsed.method.unwrap_or_default().to_owned(),
                    target: parsed.path.unwrap_or_default().to_owned(),
                    status: 0,
                    reason: String::new(),
                    minor_version: parsed.version.unwrap_or(1),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| (lower(h.name), h.value.to_vec()))
                        .collect(),
                },
                used,
            ))),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(WireError::Malformed("request head")),
        }
    }
}

/// Writes a header block: `name: value` lines and the empty line.
pub fn write_headers<'a>(
    out: &mut Vec<u8>,
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) {
    for (name, value) in headers {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether a response to `method` with `status` carries no body whatever its headers say.
pub fn bodiless(method: &str, status: u16) -> bool {
    method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
}

//! HTTP/1.x message heads: finding where one ends and parsing it, with no I/O.
//!
//! Strict on purpose (CRLF line endings, no obsolete line folding, one `Content-Length`): the
//! workload stands in for a real service, and an ambiguous head is answered 400 rather than
//! guessed at.

/// A parsed request line and header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method token, as sent.
    pub method: String,
    /// The request target, as sent (path and query).
    pub target: String,
    /// The minor version of HTTP/1.x.
    pub minor_version: u8,
    /// The header fields in the order received; names as sent, values without surrounding
    /// whitespace.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A parsed status line and header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The header fields in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The head is not valid HTTP/1.x; the text says which rule it broke.
    Malformed(&'static str),
    /// A version other than HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed head: {what}"),
            Self::UnsupportedVersion => f.write_str("unsupported HTTP version"),
        }
    }
}

/// How the message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// A chunked body follows the head.
    Chunked,
}

/// The offset just past the blank line that ends a head, if `buf` holds a whole head.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

impl RequestHead {
    /// Parses a whole head, including its final blank line, as [`head_end`] delimits it.
    pub fn parse(head: &[u8]) -> Result<Self, HeadError> {
        let mut lines = split_lines(head)?;
        let request_line = lines.next().ok_or(HeadError::Malformed("empty head"))?;
        let mut parts = request_line.split(|&b| b == b' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HeadError::Malformed(
                "request line is not METHOD SP TARGET SP VERSION",
            ));
        };
        if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
            return Err(HeadError::Malformed("method is not a token"));
        }
        if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
            return Err(HeadError::Malformed("request target"));
        }
        Ok(Self {
            method: ascii(method),
            target: ascii(target),
            minor_version: parse_version(version)?,
            headers: parse_fields(lines)?,
        })
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header(&self.headers, name)
    }

    /// Every value of the headers named `name`, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The path part of the target, without the query.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The query part of the target, without the `?`.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// How the body is delimited (RFC 9112 section 6.3): chunked when `Transfer-Encoding` ends
    /// in chunked, else `Content-Length`, else no body.
    pub fn framing(&self) -> Result<Framing, HeadError> {
        framing(&self.headers, false)
    }

    /// Whether the connection stays open after this exchange.
    pub fn keep_alive(&self) -> bool {
        let tokens = connection_tokens(&self.headers);
        if self.minor_version == 0 {
            tokens.iter().any(|t| t == "keep-alive")
        } else {
            !tokens.iter().any(|t| t == "close")
        }
    }
}

impl ResponseHead {
    /// Parses a whole response head, including its final blank line.
    pub fn parse(head: &[u8]) -> Result<Self, HeadError> {
        let mut lines = split_lines(head)?;
        let status_line = lines.next().ok_or(HeadError::Malformed("empty head"))?;
        let mut parts = status_line.splitn(3, |&b| b == b' ');
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return Err(HeadError::Malformed("status line is not VERSION SP CODE"));
        };
        parse_version(version)?;
        let status = std::str::from_utf8(code)
            .ok()
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse().ok())
            .ok_or(HeadError::Malformed("status code"))?;
        Ok(Self {
            status,
            headers: parse_fields(lines)?,
        })
    }

    /// How the body is delimited; `None` when it runs to the end of the connection.
    pub fn framing(&self) -> Result<Option<Framing>, HeadError> {
        let declared = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            || header(&self.headers, "transfer-encoding").is_some();
        if declared {
            framing(&self.headers, true).map(Some)
        } else {
            Ok(None)
        }
    }
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

fn split_lines(head: &[u8]) -> Result<impl Iterator<Item = &[u8]>, HeadError> {
    let body = head
        .strip_suffix(b"\r\n\r\n")
        .ok_or(HeadError::Malformed("head does not end in a blank line"))?;
    let pieces: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let last = pieces.len().saturating_sub(1);
    let lines = pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            if i == last {
                Some(piece)
            } else {
                piece.strip_suffix(b"\r")
            }
        })
        .collect::<Option<Vec<_>>>()
        .filter(|lines| lines.iter().all(|l| !l.contains(&b'\r') && !l.contains(&0)))
        .ok_or(HeadError::Malformed("bare CR or LF, or NUL, in head"))?;
    Ok(lines.into_iter())
}

fn parse_version(version: &[u8]) -> Result<u8, HeadError> {
    match version {
        b"HTTP/1.1" => Ok(1),
        b"HTTP/1.0" => Ok(0),
        v if v.starts_with(b"HTTP/") => Err(HeadError::UnsupportedVersion),
        _ => Err(HeadError::Malformed("version")),
    }
}

fn parse_fields<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<(String, Vec<u8>)>, HeadError> {
    lines
        .map(|line| {
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(HeadError::Malformed("header line without a colon"))?;
            let (name, value) = line.split_at(colon);
            if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
                // Also refuses obsolete line folding and whitespace before the colon, which
                // RFC 9112 section 5.1 requires a server to reject.
                return Err(HeadError::Malformed("header name is not a token"));
            }
            let value = value.get(1..).unwrap_or_default().trim_ascii();
            if value.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
                return Err(HeadError::Malformed("control character in a header value"));
            }
            Ok((ascii(name), value.to_vec()))
        })
        .collect()
}

fn framing(headers: &[(String, Vec<u8>)], response: bool) -> Result<Framing, HeadError> {
    let transfer_encoding: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| comma_tokens(v))
        .collect();
    let lengths: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_slice())
        .collect();
    if !transfer_encoding.is_empty() {
        // A request with both is a smuggling vector (RFC 9112 section 6.1): refuse it.
        if !lengths.is_empty() && !response {
            return Err(HeadError::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        return match transfer_encoding.last().map(String::as_str) {
            Some("chunked") => Ok(Framing::Chunked),
            _ => Err(HeadError::Malformed(
                "Transfer-Encoding does not end in chunked",
            )),
        };
    }
    let mut length = None;
    for value in lengths {
        let parsed = std::str::from_utf8(value)
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(HeadError::Malformed("Content-Length"))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(HeadError::Malformed("conflicting Content-Length values"));
        }
        length = Some(parsed);
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

fn connection_tokens(headers: &[(String, Vec<u8>)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| comma_tokens(v))
        .collect()
}

fn comma_tokens(value: &[u8]) -> impl Iterator<Item = String> + '_ {
    value
        .split(|&b| b == b',')
        .map(|t| ascii(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// The tchar set of RFC 9110 section 5.6.2.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes `%XX` escapes and `+` (as a space) in a query component; bad escapes stay as sent.
pub fn percent_decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (b, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded value of the first `key=value` pair named `key` in `query`.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| percent_decode(k) == key)
        .map(|(_, v)| percent_decode(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_parses() {
        let head =
            b"GET /a/b?x=1 HTTP/1.1\r\nHost: vm\r\nX-Empty:\r\ntraceparent:  00-ab  \r\n\r\n";
        let parsed = RequestHead::parse(head).unwrap();
        assert_eq!(parsed.method, "GET");
        assert_eq!(parsed.path(), "/a/b");
        assert_eq!(parsed.query(), "x=1");
        assert_eq!(parsed.minor_version, 1);
        assert_eq!(parsed.header("TRACEPARENT"), Some(&b"00-ab"[..]));
        assert_eq!(parsed.header("x-empty"), Some(&b""[..]));
        assert_eq!(parsed.framing(), Ok(Framing::Length(0)));
        assert!(parsed.keep_alive());
    }

    #[test]
    fn malformed_heads_are_refused() {
        for head in [
            &b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET /  HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTX/1.1\r\n\r\n",
            b"GET / HTTP/1.1\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\0c\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert!(
                matches!(RequestHead::parse(head), Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        assert_eq!(
            RequestHead::parse(b"GET / HTTP/2.0\r\n\r\n"),
            Err(HeadError::UnsupportedVersion)
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |fields: &str| {
            RequestHead::parse(format!("POST / HTTP/1.1\r\n{fields}\r\n").as_bytes())
                .and_then(|h| h.framing())
        };
        assert_eq!(framing("Content-Length: 12\r\n"), Ok(Framing::Length(12)));
        assert_eq!(
            framing("Content-Length: 3\r\nContent-Length: 3\r\n"),
            Ok(Framing::Length(3))
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip, Chunked\r\n"),
            Ok(Framing::Chunked)
        );
        for bad in [
            "Content-Length: 3\r\nContent-Length: 4\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
        ] {
            assert!(framing(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keep_alive_defaults_by_version() {
        let keep = |head: &[u8]| RequestHead::parse(head).unwrap().keep_alive();
        assert!(!keep(b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n"));
        assert!(!keep(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(keep(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn a_response_head_parses() {
        let head =
            ResponseHead::parse(b"HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\n").unwrap();
        assert_eq!(head.status, 503);
        assert_eq!(head.framing(), Ok(None));
        let head = ResponseHead::parse(b"HTTP/1.0 200\r\ncontent-length: 2\r\n\r\n").unwrap();
        assert_eq!(head.framing(), Ok(Some(Framing::Length(2))));
        assert!(ResponseHead::parse(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
    }

    #[test]
    fn the_head_ends_after_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn query_parameters_are_decoded() {
        let query = "to=10.0.0.1%3A80&path=%2Fx%3Fa%3D1&flag&bad=%zz+y";
        assert_eq!(query_param(query, "to").as_deref(), Some("10.0.0.1:80"));
        assert_eq!(query_param(query, "path").as_deref(), Some("/x?a=1"));
        assert_eq!(query_param(query, "flag").as_deref(), Some(""));
        assert_eq!(query_param(query, "bad").as_deref(), Some("%zz y"));
        assert_eq!(query_param(query, "missing"), None);
    }

    #[test]
    fn no_panic_on_arbitrary_bytes() {
        // A cheap deterministic generator: every prefix and byte flip of a valid head.
        let valid = b"POST /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n".to_vec();
        for cut in 0..=valid.len() {
            for flip in 0..valid.len() {
                let mut bytes = valid.get(..cut).unwrap().to_vec();
                if let Some(b) = bytes.get_mut(flip) {
                    *b ^= 0xa5;
                }
                bytes.extend_from_slice(b"\r\n\r\n");
                let _ = RequestHead::parse(&bytes).map(|h| (h.framing(), h.keep_alive()));
                let _ = ResponseHead::parse(&bytes).map(|h| h.framing());
            }
        }
    }
}

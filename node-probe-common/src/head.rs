//! HTTP/1.x request and status lines and header fields (RFC 9112 §3, §4, §5) from the
//! captured prefix of a payload, which may end anywhere. User space only, but still `no_std`:
//! everything returned borrows from the input.
//!
//! Line ends are CRLF, or a bare LF, which RFC 9112 §2.2 lets a recipient accept. Validating a
//! `traceparent` value is trace-core's job (`trace_core::w3c`); this only finds it.

/// The HTTP version of a request or status line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// `network.protocol.version`: `1.0` or `1.1`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "1.0",
            Self::Http11 => "1.1",
        }
    }
}

/// Why bytes are not the start of an HTTP/1.x request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HeadError {
    /// The bytes end before the method's space: nothing is known yet.
    Truncated,
    /// The method is empty or not a token.
    Method,
    /// The target is empty or holds a control character.
    Target,
    /// The version is not `HTTP/1.0` or `HTTP/1.1`.
    Version,
    /// Something other than the line's end follows the version.
    LineEnd,
}

/// What the captured bytes say about a request's `traceparent`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TraceParentField<'a> {
    /// No `traceparent` line among the captured lines. With an incomplete head it may still
    /// be further on.
    Absent,
    /// One `traceparent`, its value with the surrounding whitespace removed, unvalidated.
    Value(&'a [u8]),
    /// More than one `traceparent` line, which W3C Trace Context treats as invalid
    /// (`TraceParentError::Duplicated` in trace-core).
    Repeated,
    /// A `traceparent` line whose value the capture cut.
    Cut,
}

/// A request line and what the captured header lines say.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RequestHead<'a> {
    /// The method, a token (case-sensitive).
    pub method: &'a [u8],
    /// The request target as far as it was captured.
    pub target: &'a [u8],
    /// Whether the bytes end inside the target, so `target` is only its beginning.
    pub target_cut: bool,
    /// The version, or `None` when the bytes end before it is complete.
    pub version: Option<Version>,
    /// Whether the request line's end was captured.
    pub complete_line: bool,
    /// The `traceparent` header, from the complete lines.
    pub traceparent: TraceParentField<'a>,
    /// Whether the blank line that ends the head was captured.
    pub complete_head: bool,
    /// The bytes after the request line: its header lines (for [`Fields`]); empty when the
    /// line is not complete.
    pub fields: &'a [u8],
}

/// Parses the request line at the start of `bytes` and looks for a `traceparent` among the
/// header lines that follow it.
pub fn parse_request_head(bytes: &[u8]) -> Result<RequestHead<'_>, HeadError> {
    let Some(space) = bytes.iter().position(|&b| b == b' ') else {
        return if bytes.iter().all(|&b| is_tchar(b)) {
            Err(HeadError::Truncated)
        } else {
            Err(HeadError::Method)
        };
    };
    let (method, rest) = bytes.split_at(space);
    let rest = rest.get(1..).unwrap_or_default();
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HeadError::Method);
    }
    let target_end = rest.iter().position(|&b| !is_target_byte(b));
    let mut head = RequestHead {
        method,
        target: rest,
        target_cut: true,
        version: None,
        complete_line: false,
        traceparent: TraceParentField::Absent,
        complete_head: false,
        fields: &[],
    };
    let Some(target_end) = target_end else {
        return Ok(head);
    };
    let (target, rest) = rest.split_at(target_end);
    if target.is_empty() {
        return Err(HeadError::Target);
    }
    head.target = target;
    head.target_cut = false;
    let Some(rest) = rest.strip_prefix(b" ") else {
        return Err(HeadError::Target);
    };
    let (version, rest) = match split_version(rest) {
        Ok(Some(split)) => split,
        Ok(None) => return Ok(head),
        Err(()) => return Err(HeadError::Version),
    };
    head.version = Some(version);
    let Some(fields) = line_end(rest).map_err(|()| HeadError::LineEnd)? else {
        return Ok(head);
    };
    head.complete_line = true;
    head.fields = fields;
    let mut lines = Fields::new(fields);
    let mut found = TraceParentField::Absent;
    for field in lines.by_ref() {
        if field.name.eq_ignore_ascii_case(TRACEPARENT) {
            found = match found {
                TraceParentField::Absent => TraceParentField::Value(field.value),
                _ => TraceParentField::Repeated,
            };
        }
    }
    head.complete_head = lines.is_complete();
    if !head.complete_head && cut_field_is(lines.rest(), TRACEPARENT) {
        found = match found {
            TraceParentField::Absent => TraceParentField::Cut,
            _ => TraceParentField::Repeated,
        };
    }
    head.traceparent = found;
    Ok(head)
}

const TRACEPARENT: &[u8] = b"traceparent";

/// Whether an unfinished header line has a complete name equal to `name`.
fn cut_field_is(line: &[u8], name: &[u8]) -> bool {
    line.iter()
        .position(|&b| b == b':')
        .and_then(|colon| line.get(..colon))
        .is_some_and(|found| found.eq_ignore_ascii_case(name))
}

/// A status line (RFC 9112 §4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StatusLine<'a> {
    /// The version.
    pub version: Version,
    /// The three-digit status code.
    pub code: u16,
    /// Whether the line's end was captured.
    pub complete_line: bool,
    /// The bytes after the status line (for [`Fields`]); empty when the line is not complete.
    pub fields: &'a [u8],
}

/// Parses the status line at the start of `bytes`: the version, a space, three digits and a
/// space (or the line's end, for servers that send no reason phrase). `None` for anything
/// else, including bytes that end before the code's next byte.
pub fn parse_status_line(bytes: &[u8]) -> Option<StatusLine<'_>> {
    let (version, rest) = split_version(bytes).ok()??;
    let (&[b' ', a, b, c], rest) = rest.split_first_chunk::<4>()? else {
        return None;
    };
    if !(a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit()) {
        return None;
    }
    let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    let (complete_line, fields) = match rest.first()? {
        b' ' => {
            // The reason phrase: any text up to the line's end.
            match rest.iter().position(|&b| b == b'\n') {
                Some(lf) => (true, rest.get(lf + 1..).unwrap_or_default()),
                None => (false, &[][..]),
            }
        }
        _ => match line_end(rest).ok()? {
            Some(fields) => (true, fields),
            None => (false, &[][..]),
        },
    };
    Some(StatusLine {
        version,
        code,
        complete_line,
        fields,
    })
}

/// The version at the start of `bytes` and what follows it; `Ok(None)` when `bytes` end inside
/// it.
fn split_version(bytes: &[u8]) -> Result<Option<(Version, &[u8])>, ()> {
    match bytes.split_first_chunk::<8>() {
        Some((b"HTTP/1.0", rest)) => Ok(Some((Version::Http10, rest))),
        Some((b"HTTP/1.1", rest)) => Ok(Some((Version::Http11, rest))),
        Some(_) => Err(()),
        None if b"HTTP/1.0".starts_with(bytes) || b"HTTP/1.1".starts_with(bytes) => Ok(None),
        None => Err(()),
    }
}

/// What follows a line's end at the start of `bytes`: `Ok(None)` when the bytes end first
/// (a lone CR included), `Err` for anything but CRLF or LF.
fn line_end(bytes: &[u8]) -> Result<Option<&[u8]>, ()> {
    match bytes {
        [] | [b'\r'] => Ok(None),
        [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => Ok(Some(rest)),
        _ => Err(()),
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A request-target byte: anything visible, obs-text included (clients do send raw UTF-8).
fn is_target_byte(b: u8) -> bool {
    b > b' ' && b != 0x7f
}

/// One header field line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Field<'a> {
    /// The name, as sent (compare it case-insensitively).
    pub name: &'a [u8],
    /// The value without leading and trailing whitespace.
    pub value: &'a [u8],
}

/// The complete header field lines at the start of `bytes`, up to the blank line that ends the
/// head or the last line's end before the bytes stop. Lines that are not `name: value` (a
/// space before the colon, an obsolete folded continuation, no colon) are skipped.
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    rest: &'a [u8],
    complete: bool,
}

impl<'a> Fields<'a> {
    /// Iterates the field lines of `bytes`, which start after the start line.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            complete: false,
        }
    }

    /// Whether the blank line ending the head has been reached.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// What is not consumed yet: once exhausted, the body's first bytes after a complete head,
    /// or else the unfinished last line.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        while !self.complete {
            let lf = self.rest.iter().position(|&b| b == b'\n')?;
            let (line, rest) = self.rest.split_at(lf);
            self.rest = rest.get(1..).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                self.complete = true;
            } else if let Some(field) = field(line) {
                return Some(field);
            }
        }
        None
    }
}

fn field(line: &[u8]) -> Option<Field<'_>> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = line.split_at(colon);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    Some(Field {
        name,
        value: trim_ows(value.get(1..).unwrap_or_default()),
    })
}

/// Removes RFC 9110 §5.6.3 optional whitespace (SP and HTAB) from both ends.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_complete_request_head() {
        let bytes = format!(
            "GET /api/v1/items?id=3 HTTP/1.1\r\nHost: a\r\nTraceParent:\t {TP} \r\nAccept: */*\r\n\r\nbody"
        );
        let head = parse_request_head(bytes.as_bytes()).unwrap();
        assert_eq!(head.method, b"GET");
        assert_eq!(head.target, b"/api/v1/items?id=3");
        assert!(!head.target_cut);
        assert_eq!(head.version, Some(Version::Http11));
        assert!(head.complete_line && head.complete_head);
        assert_eq!(head.traceparent, TraceParentField::Value(TP.as_bytes()));
        let mut fields = Fields::new(head.fields);
        assert_eq!(
            fields.next(),
            Some(Field {
                name: b"Host",
                value: b"a"
            })
        );
        assert_eq!(fields.by_ref().count(), 2);
        assert_eq!(fields.rest(), b"body");
    }

    #[test]
    fn bare_lf_line_ends() {
        let bytes = format!("POST /p HTTP/1.0\ntraceparent: {TP}\n\n");
        let head = parse_request_head(bytes.as_bytes()).unwrap();
        assert_eq!(head.version, Some(Version::Http10));
        assert!(head.complete_head);
        assert_eq!(head.traceparent, TraceParentField::Value(TP.as_bytes()));
    }

    #[test]
    fn every_cut_of_a_head_is_consistent() {
        let full = format!("OPTIONS /a/b HTTP/1.1\r\nHost: h\r\ntraceparent: {TP}\r\n\r\n");
        let full = full.as_bytes();
        for cut in 0..=full.len() {
            let bytes = &full[..cut];
            match parse_request_head(bytes) {
                Err(e) => {
                    assert_eq!(e, HeadError::Truncated, "cut {cut}");
                    assert!(cut < "OPTIONS ".len());
                }
                Ok(head) => {
                    assert_eq!(head.method, b"OPTIONS");
                    assert!(b"/a/b".starts_with(head.target), "cut {cut}");
                    assert_eq!(head.target_cut, cut <= "OPTIONS /a/b".len(), "cut {cut}");
                    assert_eq!(
                        head.version.is_some(),
                        cut >= "OPTIONS /a/b HTTP/1.1".len(),
                        "cut {cut}"
                    );
                    assert_eq!(head.complete_line, cut >= "OPTIONS /a/b HTTP/1.1\r\n".len());
                    let tp_line = "OPTIONS /a/b HTTP/1.1\r\nHost: h\r\ntraceparent:".len();
                    let tp_end = tp_line + 1 + TP.len() + 1;
                    let want = if cut > tp_end {
                        TraceParentField::Value(TP.as_bytes())
                    } else if cut >= tp_line {
                        TraceParentField::Cut
                    } else {
                        TraceParentField::Absent
                    };
                    assert_eq!(head.traceparent, want, "cut {cut}");
                    assert_eq!(head.complete_head, cut == full.len());
                }
            }
        }
    }

    #[test]
    fn traceparent_repeated_or_malformed_lines() {
        let bytes = format!("GET / HTTP/1.1\r\ntraceparent: {TP}\r\nTRACEPARENT: {TP}\r\n\r\n");
        assert_eq!(
            parse_request_head(bytes.as_bytes()).unwrap().traceparent,
            TraceParentField::Repeated
        );
        let bytes = format!("GET / HTTP/1.1\r\ntraceparent: {TP}\r\ntraceparent: 00-");
        assert_eq!(
            parse_request_head(bytes.as_bytes()).unwrap().traceparent,
            TraceParentField::Repeated
        );
        // A space before the colon is not a field (RFC 9112 §5.1), nor is a folded line.
        let bytes = format!(
            "GET / HTTP/1.1\r\ntraceparent : {TP}\r\n traceparent: {TP}\r\nX-traceparent: 1\r\n\r\n"
        );
        let head = parse_request_head(bytes.as_bytes()).unwrap();
        assert_eq!(head.traceparent, TraceParentField::Absent);
        assert!(head.complete_head);
        let empty = parse_request_head(b"GET / HTTP/1.1\r\ntraceparent:\r\n\r\n").unwrap();
        assert_eq!(empty.traceparent, TraceParentField::Value(b""));
    }

    #[test]
    fn bad_request_lines() {
        assert_eq!(parse_request_head(b""), Err(HeadError::Truncated));
        assert_eq!(parse_request_head(b"GE"), Err(HeadError::Truncated));
        assert_eq!(
            parse_request_head(b"G\x00T / HTTP/1.1"),
            Err(HeadError::Method)
        );
        assert_eq!(parse_request_head(b" / HTTP/1.1"), Err(HeadError::Method));
        assert_eq!(
            parse_request_head(b"GET(x) / HTTP/1.1"),
            Err(HeadError::Method)
        );
        assert_eq!(
            parse_request_head(b"GET  / HTTP/1.1"),
            Err(HeadError::Target)
        );
        assert_eq!(parse_request_head(b"GET /\r\n"), Err(HeadError::Target));
        assert_eq!(
            parse_request_head(b"GET / HTTP/2.0\r\n"),
            Err(HeadError::Version)
        );
        assert_eq!(
            parse_request_head(b"GET / http/1.1\r\n"),
            Err(HeadError::Version)
        );
        assert_eq!(
            parse_request_head(b"GET / HTTP/1.2"),
            Err(HeadError::Version)
        );
        assert_eq!(
            parse_request_head(b"GET / HTTP/1.1 \r\n"),
            Err(HeadError::LineEnd)
        );
        assert_eq!(
            parse_request_head(b"GET / HTTP/1.1\rX"),
            Err(HeadError::LineEnd)
        );
        // Valid as far as it goes.
        assert!(parse_request_head(b"GET / HTTP/1.1\r").is_ok_and(|h| !h.complete_line));
        assert!(parse_request_head("GET /caf\u{e9} HTTP/1.1\r\n".as_bytes()).is_ok());
    }

    #[test]
    fn status_lines() {
        let line = parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n")
            .unwrap();
        assert_eq!(
            (line.version, line.code, line.complete_line),
            (Version::Http11, 503, true)
        );
        assert_eq!(
            Fields::new(line.fields).next(),
            Some(Field {
                name: b"Retry-After",
                value: b"1"
            })
        );
        let line = parse_status_line(b"HTTP/1.0 200\r\nA: b").unwrap();
        assert_eq!(
            (line.version, line.code, line.complete_line),
            (Version::Http10, 200, true)
        );
        assert_eq!(line.fields, b"A: b");
        let cut = parse_status_line(b"HTTP/1.1 404 Not Fo").unwrap();
        assert_eq!(
            (cut.code, cut.complete_line, cut.fields),
            (404, false, &b""[..])
        );
        for bad in [
            &b"HTTP/1.1 20"[..],
            b"HTTP/1.1 200",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1 2x0 OK\r\n",
            b"HTTP/1.2 200 OK\r\n",
            b"HTTP/2 200\r\n",
            b"HTTP/1.1  200 OK\r\n",
            b"HTTP/1.1 200\rX",
            b"GET / HTTP/1.1\r\n",
            b"",
        ] {
            assert_eq!(
                parse_status_line(bad),
                None,
                "{:?}",
                std::string::String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn version_prefixes() {
        for cut in 0..8 {
            assert_eq!(split_version(&b"HTTP/1.1"[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(
            split_version(b"HTTP/1.1"),
            Ok(Some((Version::Http11, &b""[..])))
        );
        assert_eq!(split_version(b"HTTP/2"), Err(()));
        assert_eq!(split_version(b"XTTP"), Err(()));
    }
}

//! What a request's captured head says, owned, so that the exchange can outlive the event.

use node_probe_common::{
    Fields, HeadError, TraceParentField, Version, parse_request_head, parse_status_line,
};
use trace_core::w3c::{TraceParent, TraceParentError, TraceState};

/// The `traceparent` a request carried, as far as the capture shows.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SeenParent {
    /// None among the captured header lines.
    Absent,
    /// A valid one, with the `tracestate` beside it when that was valid too.
    Valid(TraceParent, TraceState),
    /// One that trace-core refused (repeated, malformed).
    Invalid(TraceParentError),
    /// The capture cut it.
    Cut,
}

/// A request's head, as captured.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RequestHead {
    /// The method.
    pub method: String,
    /// The request target as far as it was captured.
    pub target: String,
    /// Whether the capture ended inside the target.
    pub target_cut: bool,
    /// The version, when captured.
    pub version: Option<Version>,
    /// `Host`.
    pub host: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// The `traceparent`.
    pub parent: SeenParent,
    /// Whether the head's end was captured.
    pub complete: bool,
    /// Whether the method is `HEAD`, whose response has no body whatever it says.
    pub is_head: bool,
}

impl RequestHead {
    /// Reads a head from the bytes at the start of a request. `Err` when they are not one
    /// (the kernel's recogniser looks only at a short prefix).
    pub fn parse(bytes: &[u8]) -> Result<Self, HeadError> {
        let head = parse_request_head(bytes)?;
        let mut host = None;
        let mut user_agent = None;
        let mut tracestate: Option<&[u8]> = None;
        for field in Fields::new(head.fields) {
            if field.name.eq_ignore_ascii_case(b"host") {
                host.get_or_insert_with(|| text(field.value));
            } else if field.name.eq_ignore_ascii_case(b"user-agent") {
                user_agent.get_or_insert_with(|| text(field.value));
            } else if field.name.eq_ignore_ascii_case(b"tracestate") {
                tracestate.get_or_insert(field.value);
            }
        }
        let parent = match head.traceparent {
            TraceParentField::Absent => SeenParent::Absent,
            TraceParentField::Cut => SeenParent::Cut,
            TraceParentField::Repeated => SeenParent::Invalid(TraceParentError::Duplicated),
            TraceParentField::Value(value) => match TraceParent::parse(value) {
                Ok(parent) => SeenParent::Valid(
                    parent,
                    // A bad tracestate is dropped and the parent kept, as W3C asks.
                    tracestate
                        .and_then(|v| TraceState::parse(v).ok())
                        .unwrap_or_default(),
                ),
                Err(e) => SeenParent::Invalid(e),
            },
        };
        let method = text(head.method);
        Ok(Self {
            is_head: method == "HEAD",
            method,
            target: text(head.target),
            target_cut: head.target_cut,
            version: head.version,
            host,
            user_agent,
            parent,
            complete: head.complete_head,
        })
    }
}

/// What a response's captured start says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Bytes from the status line to the end of the body, when the capture holds the whole
    /// head and it gives a `Content-Length` (or the status has no body).
    pub length: Option<u64>,
}

impl ResponseHead {
    /// Reads a status line and, when the head is complete in `bytes`, the message length
    /// (RFC 9112 §6.3). `None` when the bytes are no status line.
    pub fn parse(bytes: &[u8], request_was_head: bool) -> Option<Self> {
        let line = parse_status_line(bytes)?;
        let mut fields = Fields::new(line.fields);
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut conflicting = false;
        for field in fields.by_ref() {
            if field.name.eq_ignore_ascii_case(b"content-length") {
                let value = core::str::from_utf8(field.value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
                match (content_length, value) {
                    (None, Some(v)) => content_length = Some(v),
                    (Some(a), Some(b)) if a == b => {}
                    _ => conflicting = true,
                }
            } else if field.name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = true;
            }
        }
        let head_len = fields
            .is_complete()
            .then(|| bytes.len().saturating_sub(fields.rest().len()) as u64);
        let no_body = request_was_head || matches!(line.code, 100..=199 | 204 | 304);
        let length = match head_len {
            Some(head) if no_body => Some(head),
            Some(head) if !chunked && !conflicting => {
                content_length.map(|body| head.saturating_add(body))
            }
            _ => None,
        };
        Some(Self {
            status: line.code,
            length,
        })
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_head_with_a_valid_parent() {
        let bytes = format!(
            "GET /a?b=1 HTTP/1.1\r\nHost: vm:8080\r\nUser-Agent: curl\r\ntraceparent: {TP}\r\ntracestate: ot=th:8\r\n\r\n"
        );
        let head = RequestHead::parse(bytes.as_bytes()).unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/a?b=1");
        assert_eq!(head.host.as_deref(), Some("vm:8080"));
        assert_eq!(head.user_agent.as_deref(), Some("curl"));
        assert!(head.complete);
        let SeenParent::Valid(parent, state) = head.parent else {
            panic!("{:?}", head.parent)
        };
        assert_eq!(
            parent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(state.as_str(), "ot=th:8");
    }

    #[test]
    fn bad_parents_are_told_apart() {
        let bad = "GET / HTTP/1.1\r\ntraceparent: 00-zz\r\n\r\n";
        assert!(matches!(
            RequestHead::parse(bad.as_bytes()).unwrap().parent,
            SeenParent::Invalid(_)
        ));
        let twice = format!("GET / HTTP/1.1\r\ntraceparent: {TP}\r\ntraceparent: {TP}\r\n\r\n");
        assert_eq!(
            RequestHead::parse(twice.as_bytes()).unwrap().parent,
            SeenParent::Invalid(TraceParentError::Duplicated)
        );
        let cut = "GET / HTTP/1.1\r\ntraceparent: 00-4bf9";
        assert_eq!(
            RequestHead::parse(cut.as_bytes()).unwrap().parent,
            SeenParent::Cut
        );
        assert!(RequestHead::parse(b"\x16\x03\x01 garbage").is_err());
    }

    #[test]
    fn response_lengths() {
        let r = ResponseHead::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false)
            .unwrap();
        assert_eq!((r.status, r.length), (200, Some(38 + 5)));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(ResponseHead::parse(chunked, false).unwrap().length, None);
        let cut = b"HTTP/1.1 200 OK\r\nContent-Len";
        assert_eq!(ResponseHead::parse(cut, false).unwrap().length, None);
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            ResponseHead::parse(no_content, false).unwrap().length,
            Some(27)
        );
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
        assert_eq!(ResponseHead::parse(head, true).unwrap().length, Some(39));
        let conflicting = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            ResponseHead::parse(conflicting, false).unwrap().length,
            None
        );
        assert!(ResponseHead::parse(b"HTTP/2 200", false).is_none());
    }
}

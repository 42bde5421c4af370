//! B3 propagation (Zipkin): the single `b3` header and the `X-B3-*` multi headers.

use core::fmt;

use crate::context::{SpanContext, TraceFlags};
use crate::id::{SpanId, TraceId};
use crate::w3c::trim_ows;

/// Header name of the single form.
pub const B3: &str = "b3";
/// Header names of the multi form.
pub const X_B3_TRACE_ID: &str = "x-b3-traceid";
/// The span ID multi header.
pub const X_B3_SPAN_ID: &str = "x-b3-spanid";
/// The parent span ID multi header.
pub const X_B3_PARENT_SPAN_ID: &str = "x-b3-parentspanid";
/// The sampling decision multi header.
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
/// The debug flag multi header.
pub const X_B3_FLAGS: &str = "x-b3-flags";

/// A B3 sampling state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sampling {
    /// `0`: do not record.
    Deny,
    /// `1`: record.
    Accept,
    /// `d` or `X-B3-Flags: 1`: record, and the caller asked for debug.
    Debug,
}

impl Sampling {
    /// Whether this state means "sampled".
    pub fn is_sampled(self) -> bool {
        !matches!(self, Self::Deny)
    }
}

/// What a B3 header carried.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum B3Header {
    /// A full context.
    Context(B3Context),
    /// Only a sampling decision, with no IDs (`b3: 0`, `b3: 1`, `b3: d`, or only `X-B3-Sampled`).
    SamplingOnly(Sampling),
}

/// A B3 context.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct B3Context {
    /// The trace ID; a 64-bit ID is left-padded with zeros.
    pub trace_id: TraceId,
    /// The caller's span ID.
    pub span_id: SpanId,
    /// The caller's parent, when sent.
    pub parent_span_id: Option<SpanId>,
    /// The sampling state; `None` defers the decision to the receiver.
    pub sampling: Option<Sampling>,
}

/// Why a B3 header was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum B3Error {
    /// The trace ID is not 16 or 32 lowercase hex digits, or is all-zero.
    TraceId,
    /// The span ID is not 16 lowercase hex digits, or is all-zero.
    SpanId,
    /// The parent span ID is not 16 lowercase hex digits, or is all-zero.
    ParentSpanId,
    /// The sampling state is not `0`, `1` or `d` (`true`/`false` are accepted in multi).
    Sampling,
    /// The single header has the wrong number of fields.
    Fields,
    /// Only one of the trace and span ID headers is present.
    Incomplete,
    /// A multi header was sent more than once.
    Duplicated,
}

impl fmt::Display for B3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TraceId => "b3 trace id is invalid",
            Self::SpanId => "b3 span id is invalid",
            Self::ParentSpanId => "b3 parent span id is invalid",
            Self::Sampling => "b3 sampling state is invalid",
            Self::Fields => "b3 header has the wrong number of fields",
            Self::Incomplete => "b3 trace id and span id must be sent together",
            Self::Duplicated => "b3 header sent more than once",
        })
    }
}

impl std::error::Error for B3Error {}

/// The values of the `X-B3-*` headers that arrived, at most one each.
#[derive(Clone, Copy, Default, Debug)]
pub struct MultiHeaders<'a> {
    /// `X-B3-TraceId`.
    pub trace_id: Option<&'a [u8]>,
    /// `X-B3-SpanId`.
    pub span_id: Option<&'a [u8]>,
    /// `X-B3-ParentSpanId`.
    pub parent_span_id: Option<&'a [u8]>,
    /// `X-B3-Sampled`.
    pub sampled: Option<&'a [u8]>,
    /// `X-B3-Flags`.
    pub flags: Option<&'a [u8]>,
}

impl MultiHeaders<'_> {
    /// True when none of the headers arrived.
    pub fn is_empty(&self) -> bool {
        self.trace_id.is_none()
            && self.span_id.is_none()
            && self.parent_span_id.is_none()
            && self.sampled.is_none()
            && self.flags.is_none()
    }
}

fn parse_trace_id(value: &[u8]) -> Result<TraceId, B3Error> {
    let id = match value.len() {
        32 => TraceId::from_hex(value),
        16 => crate::hex::decode::<8>(value).map(|low| {
            let mut bytes = [0u8; 16];
            if let Some(tail) = bytes.get_mut(8..) {
                tail.copy_from_slice(&low);
            }
            TraceId::from_bytes(bytes)
        }),
        _ => None,
    };
    id.filter(TraceId::is_valid).ok_or(B3Error::TraceId)
}

fn parse_span_id(value: &[u8], error: B3Error) -> Result<SpanId, B3Error> {
    SpanId::from_hex(value)
        .filter(SpanId::is_valid)
        .ok_or(error)
}

fn parse_single_sampling(value: &[u8]) -> Result<Sampling, B3Error> {
    match value {
        b"0" => Ok(Sampling::Deny),
        b"1" => Ok(Sampling::Accept),
        b"d" => Ok(Sampling::Debug),
        _ => Err(B3Error::Sampling),
    }
}

/// Parses the single `b3` header:
/// `{TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]` or a lone `{SamplingState}`.
pub fn parse_single(value: &[u8]) -> Result<B3Header, B3Error> {
    let value = trim_ows(value);
    let mut fields = value.split(|b| *b == b'-');
    let (Some(first), second, third, fourth, None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(B3Error::Fields);
    };
    let Some(span_id) = second else {
        return parse_single_sampling(first).map(B3Header::SamplingOnly);
    };
    let trace_id = parse_trace_id(first)?;
    let span_id = parse_span_id(span_id, B3Error::SpanId)?;
    let sampling = third.map(parse_single_sampling).transpose()?;
    let parent_span_id = fourth
        .map(|v| parse_span_id(v, B3Error::ParentSpanId))
        .transpose()?;
    Ok(B3Header::Context(B3Context {
        trace_id,
        span_id,
        parent_span_id,
        sampling,
    }))
}

/// Parses the `X-B3-*` headers. Returns `None` when none of them arrived.
pub fn parse_multi(headers: &MultiHeaders<'_>) -> Option<Result<B3Header, B3Error>> {
    if headers.is_empty() {
        return None;
    }
    Some(parse_present_multi(headers))
}

fn parse_present_multi(headers: &MultiHeaders<'_>) -> Result<B3Header, B3Error> {
    let debug = headers.flags.map(trim_ows) == Some(b"1");
    let sampled = headers
        .sampled
        .map(|v| match trim_ows(v) {
            b"1" | b"true" => Ok(Sampling::Accept),
            b"0" | b"false" => Ok(Sampling::Deny),
            _ => Err(B3Error::Sampling),
        })
        .transpose()?;
    // Debug implies an accept decision, whatever X-B3-Sampled says.
    let sampling = if debug {
        Some(Sampling::Debug)
    } else {
        sampled
    };
    match (headers.trace_id, headers.span_id) {
        (Some(trace_id), Some(span_id)) => Ok(B3Header::Context(B3Context {
            trace_id: parse_trace_id(trim_ows(trace_id))?,
            span_id: parse_span_id(trim_ows(span_id), B3Error::SpanId)?,
            parent_span_id: headers
                .parent_span_id
                .map(|v| parse_span_id(trim_ows(v), B3Error::ParentSpanId))
                .transpose()?,
            sampling,
        })),
        (None, None) => sampling
            .map(B3Header::SamplingOnly)
            .ok_or(B3Error::Incomplete),
        _ => Err(B3Error::Incomplete),
    }
}

impl B3Context {
    /// The W3C view of this context. B3 says nothing about the randomness of its IDs, so the
    /// random flag stays clear; a deferred decision reads as unsampled here, and callers that
    /// care look at `sampling` directly.
    pub fn to_span_context(&self) -> SpanContext {
        let sampled = self.sampling.is_some_and(Sampling::is_sampled);
        SpanContext {
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: TraceFlags::default().with_sampled(sampled),
            trace_state: Default::default(),
        }
    }

    /// The B3 view of a W3C context. W3C has no debug flag, so a caller's debug request is
    /// passed in to be forwarded.
    pub fn from_span_context(
        context: &SpanContext,
        parent_span_id: Option<SpanId>,
        debug: bool,
    ) -> Self {
        let sampling = match (debug, context.is_sampled()) {
            (true, _) => Sampling::Debug,
            (false, true) => Sampling::Accept,
            (false, false) => Sampling::Deny,
        };
        Self {
            trace_id: context.trace_id,
            span_id: context.span_id,
            parent_span_id,
            sampling: Some(sampling),
        }
    }

    /// The single `b3` header value.
    pub fn single_header(&self) -> String {
        let mut out = String::with_capacity(68);
        out.push_str(&self.trace_id.to_string());
        out.push('-');
        out.push_str(&self.span_id.to_string());
        if let Some(sampling) = self.sampling {
            out.push('-');
            out.push(match sampling {
                Sampling::Deny => '0',
                Sampling::Accept => '1',
                Sampling::Debug => 'd',
            });
            if let Some(parent) = self.parent_span_id {
                out.push('-');
                out.push_str(&parent.to_string());
            }
        }
        out
    }

    /// The `X-B3-*` headers as `(name, value)` pairs.
    pub fn multi_headers(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (X_B3_TRACE_ID, self.trace_id.to_string()),
            (X_B3_SPAN_ID, self.span_id.to_string()),
        ];
        if let Some(parent) = self.parent_span_id {
            out.push((X_B3_PARENT_SPAN_ID, parent.to_string()));
        }
        match self.sampling {
            Some(Sampling::Debug) => out.push((X_B3_FLAGS, "1".into())),
            Some(Sampling::Accept) => out.push((X_B3_SAMPLED, "1".into())),
            Some(Sampling::Deny) => out.push((X_B3_SAMPLED, "0".into())),
            None => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SPAN: &str = "e457b5a2e4d86bd1";
    const PARENT: &str = "05e3ac9a4f6e3b90";

    fn context(header: B3Header) -> B3Context {
        match header {
            B3Header::Context(c) => c,
            other => panic!("expected a context, got {other:?}"),
        }
    }

    #[test]
    fn parses_every_single_header_form() {
        let full = format!("{TRACE}-{SPAN}-1-{PARENT}");
        let c = context(parse_single(full.as_bytes()).unwrap());
        assert_eq!(c.trace_id.to_string(), TRACE);
        assert_eq!(c.span_id.to_string(), SPAN);
        assert_eq!(c.parent_span_id.unwrap().to_string(), PARENT);
        assert_eq!(c.sampling, Some(Sampling::Accept));
        assert_eq!(c.single_header(), full);

        let deferred = context(parse_single(format!("{TRACE}-{SPAN}").as_bytes()).unwrap());
        assert_eq!(deferred.sampling, None);
        let debug = context(parse_single(format!("{TRACE}-{SPAN}-d").as_bytes()).unwrap());
        assert_eq!(debug.sampling, Some(Sampling::Debug));
        let deny = context(parse_single(format!("{TRACE}-{SPAN}-0").as_bytes()).unwrap());
        assert_eq!(deny.sampling, Some(Sampling::Deny));

        assert_eq!(
            parse_single(b"0"),
            Ok(B3Header::SamplingOnly(Sampling::Deny))
        );
        assert_eq!(
            parse_single(b"1"),
            Ok(B3Header::SamplingOnly(Sampling::Accept))
        );
        assert_eq!(
            parse_single(b"d"),
            Ok(B3Header::SamplingOnly(Sampling::Debug))
        );
    }

    #[test]
    fn pads_64_bit_trace_ids() {
        let c = context(parse_single(format!("64fe8b2a57d3eff7-{SPAN}-1").as_bytes()).unwrap());
        assert_eq!(c.trace_id.to_string(), "000000000000000064fe8b2a57d3eff7");
    }

    #[test]
    fn rejects_malformed_single_headers() {
        let cases = [
            (format!("{TRACE}-{SPAN}-2"), B3Error::Sampling),
            (format!("{TRACE}-{SPAN}-1-{PARENT}-x"), B3Error::Fields),
            (format!("{TRACE}-0000000000000000-1"), B3Error::SpanId),
            (
                format!("00000000000000000000000000000000-{SPAN}"),
                B3Error::TraceId,
            ),
            (format!("{}-{SPAN}", &TRACE[..20]), B3Error::TraceId),
            (format!("{}-{SPAN}", TRACE.to_uppercase()), B3Error::TraceId),
            (
                format!("{TRACE}-{SPAN}-1-0000000000000000"),
                B3Error::ParentSpanId,
            ),
            ("true".to_string(), B3Error::Sampling),
            (String::new(), B3Error::Sampling),
        ];
        for (value, error) in cases {
            assert_eq!(parse_single(value.as_bytes()), Err(error), "{value}");
        }
    }

    #[test]
    fn parses_multi_headers() {
        let headers = MultiHeaders {
            trace_id: Some(TRACE.as_bytes()),
            span_id: Some(SPAN.as_bytes()),
            parent_span_id: Some(PARENT.as_bytes()),
            sampled: Some(b"1"),
            flags: None,
        };
        let c = context(parse_multi(&headers).unwrap().unwrap());
        assert_eq!(c.sampling, Some(Sampling::Accept));
        assert_eq!(c.parent_span_id.unwrap().to_string(), PARENT);
        let round: Vec<(&str, String)> = c.multi_headers();
        assert_eq!(round[0], (X_B3_TRACE_ID, TRACE.to_string()));
        assert_eq!(round[3], (X_B3_SAMPLED, "1".to_string()));

        let debug = MultiHeaders {
            flags: Some(b"1"),
            sampled: Some(b"0"),
            ..headers
        };
        assert_eq!(
            context(parse_multi(&debug).unwrap().unwrap()).sampling,
            Some(Sampling::Debug)
        );

        let legacy = MultiHeaders {
            sampled: Some(b"true"),
            ..headers
        };
        assert_eq!(
            context(parse_multi(&legacy).unwrap().unwrap()).sampling,
            Some(Sampling::Accept)
        );

        let only_sampled = MultiHeaders {
            sampled: Some(b"0"),
            ..MultiHeaders::default()
        };
        assert_eq!(
            parse_multi(&only_sampled),
            Some(Ok(B3Header::SamplingOnly(Sampling::Deny)))
        );
        assert_eq!(parse_multi(&MultiHeaders::default()), None);
    }

    #[test]
    fn rejects_incomplete_or_malformed_multi_headers() {
        let only_trace = MultiHeaders {
            trace_id: Some(TRACE.as_bytes()),
            ..MultiHeaders::default()
        };
        assert_eq!(parse_multi(&only_trace), Some(Err(B3Error::Incomplete)));
        let bad_sampled = MultiHeaders {
            trace_id: Some(TRACE.as_bytes()),
            span_id: Some(SPAN.as_bytes()),
            sampled: Some(b"yes"),
            ..MultiHeaders::default()
        };
        assert_eq!(parse_multi(&bad_sampled), Some(Err(B3Error::Sampling)));
        let only_parent = MultiHeaders {
            parent_span_id: Some(PARENT.as_bytes()),
            ..MultiHeaders::default()
        };
        assert_eq!(parse_multi(&only_parent), Some(Err(B3Error::Incomplete)));
    }

    #[test]
    fn converts_to_and_from_w3c() {
        let c = context(parse_single(format!("{TRACE}-{SPAN}-1").as_bytes()).unwrap());
        let w3c = c.to_span_context();
        assert!(w3c.is_sampled());
        assert!(!w3c.flags.is_random());
        assert_eq!(w3c.trace_id.to_string(), TRACE);
        let back = B3Context::from_span_context(&w3c, None, false);
        assert_eq!(back.single_header(), format!("{TRACE}-{SPAN}-1"));
        let deny = B3Context::from_span_context(
            &SpanContext {
                flags: TraceFlags::default(),
                ..w3c.clone()
            },
            None,
            false,
        );
        assert_eq!(deny.sampling, Some(Sampling::Deny));
        let debug = B3Context::from_span_context(&w3c, None, true);
        assert_eq!(debug.single_header(), format!("{TRACE}-{SPAN}-d"));
        assert_eq!(
            debug.multi_headers().last(),
            Some(&(X_B3_FLAGS, "1".to_string()))
        );
        let debug = B3Context::from_span_context(&w3c, None, true);
        assert_eq!(debug.single_header(), format!("{TRACE}-{SPAN}-d"));
        assert_eq!(
            debug.multi_headers().last(),
            Some(&(X_B3_FLAGS, "1".to_string()))
        );
    }
}

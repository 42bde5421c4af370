//! Reading the caller's context from request headers, and writing ours to the next hop.
//!
//! W3C Trace Context is tried first, then B3 single, then B3 multi. The format that carried
//! the context is remembered so that the next hop can be sent the same format. A malformed
//! header never becomes an error for the caller: it becomes "no context", and the reason is
//! reported in [`Incoming::problem`] for a metric or a log line.

use core::fmt;

use crate::b3::{self, B3Context, B3Error, B3Header, MultiHeaders};
use crate::context::SpanContext;
use crate::id::SpanId;
use crate::w3c::{self, TraceParent, TraceParentError, TraceState, TraceStateError};

/// Read access to request headers.
pub trait HeaderSource {
    /// Calls `f` with each value of header `name` (given in lowercase; match it without regard to
    /// case), in the order they arrived.
    fn for_each_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8]));

    /// Calls `f(i, value)` with each value of every header named `names[i]`, each name's values
    /// in the order they arrived. The default asks for one name after the other; a source that
    /// holds a plain list reads it once instead.
    fn for_each_value_of<'a>(&'a self, names: &[&str], f: &mut dyn FnMut(usize, &'a [u8])) {
        for (i, name) in names.iter().enumerate() {
            self.for_each_value(name, &mut |value| f(i, value));
        }
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderSource for [(K, V)] {
    fn for_each_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        for (key, value) in self {
            if is_named(key.as_ref(), name) {
                f(value.as_ref());
            }
        }
    }

    fn for_each_value_of<'a>(&'a self, names: &[&str], f: &mut dyn FnMut(usize, &'a [u8])) {
        for (key, value) in self {
            let key = key.as_ref();
            if let Some(i) = names.iter().position(|name| is_named(key, name)) {
                f(i, value.as_ref());
            }
        }
    }
}

/// Whether header `key` is `name` (lowercase), without regard to case. Names arrive lowercase
/// from HTTP/2 and from Envoy, so a plain comparison settles nearly every header; the
/// case-folding one runs only for a key of the same length that differs.
#[inline]
fn is_named(key: &str, name: &str) -> bool {
    key.len() == name.len() && (key == name || key.eq_ignore_ascii_case(name))
}

/// A propagation format.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// W3C `traceparent` and `tracestate`.
    TraceContext,
    /// The single `b3` header.
    B3Single,
    /// The `X-B3-*` headers.
    B3Multi,
}

/// Why an incoming header was ignored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Problem {
    /// `traceparent` was malformed; the trace restarts.
    TraceParent(TraceParentError),
    /// `tracestate` was malformed; it is dropped, the trace continues.
    TraceState(TraceStateError),
    /// A B3 header was malformed.
    B3(B3Error),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TraceParent(e) => e.fmt(f),
            Self::TraceState(e) => e.fmt(f),
            Self::B3(e) => e.fmt(f),
        }
    }
}

/// What the caller sent.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Incoming {
    /// The format that carried the context or decision, if any.
    pub format: Option<Format>,
    /// The caller's span, when a valid context arrived.
    pub parent: Option<SpanContext>,
    /// The caller's sampling decision; `None` when absent or deferred.
    pub sampled: Option<bool>,
    /// The caller asked for debug (B3 `d` or `X-B3-Flags: 1`).
    pub debug: bool,
    /// The first header that was ignored, and why.
    pub problem: Option<Problem>,
}

/// Reads the caller's context.
pub fn extract<H: HeaderSource + ?Sized>(headers: &H) -> Incoming {
    let mut problem = None;
    // traceparent and tracestate in one pass: W3C is the common case.
    let mut w3c_values = [(None, 0usize); 2];
    headers.for_each_value_of(&[w3c::TRACEPARENT, w3c::TRACESTATE], &mut |i, value| {
        if let Some((first, count)) = w3c_values.get_mut(i) {
            first.get_or_insert(value);
            *count += 1;
        }
    });
    let [traceparent, tracestate] = w3c_values;
    match traceparent {
        (Some(value), 1) => match TraceParent::parse(value) {
            Ok(parent) => return from_w3c(headers, parent, tracestate),
            Err(error) => problem = Some(Problem::TraceParent(error)),
        },
        (Some(_), _) => problem = Some(Problem::TraceParent(TraceParentError::Duplicated)),
        (None, _) => {}
    }
    let b3 = match one_value(headers, b3::B3) {
        Ok(Some(single)) => Some((Format::B3Single, b3::parse_single(single))),
        Ok(None) => match multi_headers(headers) {
            None => None,
            Some(Err(error)) => Some((Format::B3Multi, Err(error))),
            Some(Ok(multi)) => b3::parse_multi(&multi).map(|result| (Format::B3Multi, result)),
        },
        Err(error) => Some((Format::B3Single, Err(error))),
    };
    let Some((format, result)) = b3 else {
        return Incoming {
            problem,
            ..Incoming::default()
        };
    };
    match result {
        Ok(header) => Incoming {
            problem,
            ..from_b3(format, header)
        },
        Err(error) => Incoming {
            problem: problem.or(Some(Problem::B3(error))),
            ..Incoming::default()
        },
    }
}

/// The first value of a header and how many values arrived, without allocating.
fn first_value<'a, H: HeaderSource + ?Sized>(
    headers: &'a H,
    name: &str,
) -> (Option<&'a [u8]>, usize) {
    let mut first = None;
    let mut count = 0;
    headers.for_each_value(name, &mut |value| {
        count += 1;
        first.get_or_insert(value);
    });
    (first, count)
}

/// The only value of a header that must not repeat.
fn one_value<'a, H: HeaderSource + ?Sized>(
    headers: &'a H,
    name: &str,
) -> Result<Option<&'a [u8]>, B3Error> {
    match first_value(headers, name) {
        (_, count) if count > 1 => Err(B3Error::Duplicated),
        (first, _) => Ok(first),
    }
}

fn multi_headers<H: HeaderSource + ?Sized>(
    headers: &H,
) -> Option<Result<MultiHeaders<'_>, B3Error>> {
    let read = || -> Result<MultiHeaders<'_>, B3Error> {
        Ok(MultiHeaders {
            trace_id: one_value(headers, b3::X_B3_TRACE_ID)?,
            span_id: one_value(headers, b3::X_B3_SPAN_ID)?,
            parent_span_id: one_value(headers, b3::X_B3_PARENT_SPAN_ID)?,
            sampled: one_value(headers, b3::X_B3_SAMPLED)?,
            flags: one_value(headers, b3::X_B3_FLAGS)?,
        })
    };
    match read() {
        Ok(multi) if multi.is_empty() => None,
        other => Some(other),
    }
}

/// The caller's W3C context; `tracestate` is its first value and how many arrived.
fn from_w3c<'a, H: HeaderSource + ?Sized>(
    headers: &'a H,
    parent: TraceParent,
    tracestate: (Option<&'a [u8]>, usize),
) -> Incoming {
    // One tracestate header is the common case; only repeated ones are collected.
    let parsed = match tracestate {
        (None, _) => Ok(TraceState::default()),
        (Some(value), 1) => TraceState::parse(value),
        (Some(_), _) => {
            let mut all = Vec::new();
            headers.for_each_value(w3c::TRACESTATE, &mut |value| all.push(value));
            TraceState::parse_values(all.into_iter())
        }
    };
    let (trace_state, problem) = match parsed {
        Ok(state) => (state, None),
        Err(error) => (TraceState::default(), Some(Problem::TraceState(error))),
    };
    Incoming {
        format: Some(Format::TraceContext),
        parent: Some(SpanContext {
            trace_id: parent.trace_id,
            span_id: parent.parent_id,
            flags: parent.flags,
            trace_state,
        }),
        sampled: Some(parent.flags.is_sampled()),
        debug: false,
        problem,
    }
}

fn from_b3(format: Format, header: B3Header) -> Incoming {
    let (parent, sampling) = match header {
        B3Header::Context(context) => (Some(context.to_span_context()), context.sampling),
        B3Header::SamplingOnly(sampling) => (None, Some(sampling)),
    };
    Incoming {
        format: Some(format),
        parent,
        sampled: sampling.map(b3::Sampling::is_sampled),
        debug: sampling == Some(b3::Sampling::Debug),
        problem: None,
    }
}

/// Which formats to write to the next hop.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default))]
pub struct Formats {
    /// Write W3C `traceparent` and `tracestate` (on by default; off only when configured
    /// away, e.g. `OTEL_PROPAGATORS=b3`).
    pub trace_context: bool,
    /// Also write the single `b3` header.
    pub b3_single: bool,
    /// Also write the `X-B3-*` headers.
    pub b3_multi: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Self {
            trace_context: true,
            b3_single: false,
            b3_multi: false,
        }
    }
}

impl Formats {
    /// These formats plus the one the caller used, so that a B3-only caller's next hop also
    /// gets B3.
    pub fn with_incoming(mut self, incoming: Option<Format>) -> Self {
        match incoming {
            Some(Format::B3Single) => self.b3_single = true,
            Some(Format::B3Multi) => self.b3_multi = true,
            Some(Format::TraceContext) => self.trace_context = true,
            None => {}
        }
        self
    }
}

/// Every header name [`inject`] may write, and every one [`extract`] reads; remove these
/// before injecting so that no stale copy of a caller's header survives.
pub const INJECTED_HEADERS: [&str; 8] = [
    w3c::TRACEPARENT,
    w3c::TRACESTATE,
    b3::B3,
    b3::X_B3_TRACE_ID,
    b3::X_B3_SPAN_ID,
    b3::X_B3_PARENT_SPAN_ID,
    b3::X_B3_SAMPLED,
    b3::X_B3_FLAGS,
];

/// Whether any of `names` (lowercase) is a propagation header. When none is, [`extract`] would
/// find nothing, and a caller holding all names at hand can skip its lookups.
pub fn carries_context<'a>(mut names: impl Iterator<Item = &'a str>) -> bool {
    names.any(|name| INJECTED_HEADERS.contains(&name))
}

/// Writes `context` for the next hop, through `set(name, value)`. `parent_span_id` is the
/// parent of `context`'s span, for B3's optional parent field; `debug` forwards a caller's B3
/// debug request, which W3C cannot carry.
pub fn inject(
    context: &SpanContext,
    parent_span_id: Option<SpanId>,
    debug: bool,
    formats: Formats,
    mut set: impl FnMut(&'static str, &str),
) {
    if formats.trace_context {
        let traceparent = TraceParent {
            trace_id: context.trace_id,
            parent_id: context.span_id,
            flags: context.flags,
        }
        .to_bytes();
        if let Ok(value) = core::str::from_utf8(&traceparent) {
            set(w3c::TRACEPARENT, value);
        }
        if !context.trace_state.is_empty() {
            set(w3c::TRACESTATE, context.trace_state.as_str());
        }
    }
    if !(formats.b3_single || formats.b3_multi) {
        return;
    }
    let b3 = B3Context::from_span_context(context, parent_span_id, debug);
    if formats.b3_single {
        set(b3::B3, &b3.single_header());
    }
    if formats.b3_multi {
        for (name, value) in b3.multi_headers() {
            set(name, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that only answers by name, so it reads through the default
    /// `for_each_value_of`.
    struct ByName<'a>(&'a [(&'a str, &'a str)]);

    impl HeaderSource for ByName<'_> {
        fn for_each_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
            self.0.for_each_value(name, f);
        }
    }

    #[test]
    fn one_pass_and_name_by_name_read_the_same_context() {
        const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cases: [&[(&str, &str)]; 5] = [
            &[
                ("Host", "a"),
                ("TraceParent", PARENT),
                ("tracestate", "a=1"),
            ],
            &[
                ("tracestate", "a=1"),
                ("traceparent", PARENT),
                ("TRACESTATE", "b=2"),
            ],
            &[("traceparent", PARENT), ("traceparent", PARENT)],
            &[("tracestate", "a=1")],
            &[
                ("traceparent", "00-bad"),
                ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ],
        ];
        for headers in cases {
            assert_eq!(extract(headers), extract(&ByName(headers)), "{headers:?}");
        }
        let both = extract(cases[1]);
        assert_eq!(
            both.parent
                .map(|p| p.trace_state.as_str().to_owned())
                .as_deref(),
            Some("a=1,b=2"),
            "every tracestate value, in order"
        );
    }
}

//! W3C Trace Context Level 2: the `traceparent` and `tracestate` headers.

mod traceparent;
mod tracestate;

pub use traceparent::{TRACEPARENT_LEN, TraceParent, TraceParentError};
pub use tracestate::{MAX_MEMBERS, MAX_TRACESTATE_INPUT, TraceState, TraceStateError};

/// Header name of the trace parent.
pub const TRACEPARENT: &str = "traceparent";
/// Header name of the vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// Strips HTTP optional whitespace (space and horizontal tab) from both ends.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

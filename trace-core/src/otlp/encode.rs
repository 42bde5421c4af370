//! `ExportTraceServiceRequest` encoding, field numbers as in `opentelemetry/proto/trace/v1`.

use super::wire;
use crate::span::{Event, KeyValue, Link, Resource, Scope, Span, SpanKind, StatusCode, Value};

/// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`: the `is_remote` bit below is meaningful.
const HAS_IS_REMOTE: u32 = 0x100;
/// `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`: the parent lives in another process.
const IS_REMOTE: u32 = 0x200;

/// Appends one `ExportTraceServiceRequest` holding `spans` under `resource` and `scope`.
pub fn encode_request(resource: &Resource, scope: &Scope, spans: &[Span], buf: &mut Vec<u8>) {
    // Each span body is written here first, so its length prefix can be written before it
    // without moving the body afterwards.
    let mut span_body = Vec::with_capacity(1024);
    envelope(resource, scope, buf, |buf| {
        for span in spans {
            span_body.clear();
            encode_span(&mut span_body, span);
            // ScopeSpans.spans = 2
            wire::delimited_header(buf, 2, span_body.len());
            buf.extend_from_slice(&span_body);
        }
    });
}

/// Appends `span` as one `ScopeSpans.spans` entry. Entries appended one after another are a
/// span list that [`encode_request_from_entries`] wraps: a span can be encoded the moment it
/// finishes, by the thread that made it, and batched as bytes.
pub fn encode_span_entry(span: &Span, buf: &mut Vec<u8>) {
    // ScopeSpans.spans = 2
    wire::message(buf, 2, |buf| encode_span(buf, span));
}

/// Appends one `ExportTraceServiceRequest` around `entries`, spans appended by
/// [`encode_span_entry`], under `resource` and `scope`.
pub fn encode_request_from_entries(
    resource: &Resource,
    scope: &Scope,
    entries: &[u8],
    buf: &mut Vec<u8>,
) {
    envelope(resource, scope, buf, |buf| buf.extend_from_slice(entries));
}

/// The request around the span list that `spans` writes.
fn envelope(
    resource: &Resource,
    scope: &Scope,
    buf: &mut Vec<u8>,
    spans: impl FnOnce(&mut Vec<u8>),
) {
    // ExportTraceServiceRequest.resource_spans = 1
    wire::message(buf, 1, |buf| {
        // ResourceSpans.resource = 1
        wire::message(buf, 1, |buf| attributes(buf, 1, &resource.attributes));
        // ResourceSpans.scope_spans = 2
        wire::message(buf, 2, |buf| {
            // ScopeSpans.scope = 1
            wire::message(buf, 1, |buf| {
                wire::bytes(buf, 1, scope.name.as_bytes());
                wire::bytes(buf, 2, scope.version.as_bytes());
            });
            spans(buf);
        });
    });
}

fn encode_span(buf: &mut Vec<u8>, span: &Span) {
    let context = &span.context;
    wire::bytes(buf, 1, context.trace_id.as_bytes());
    wire::bytes(buf, 2, context.span_id.as_bytes());
    wire::bytes(buf, 3, context.trace_state.as_str().as_bytes());
    if let Some(parent) = span.parent_span_id {
        wire::bytes(buf, 4, parent.as_bytes());
    }
    wire::bytes(buf, 5, span.name.as_bytes());
    wire::uint(buf, 6, kind(span.kind));
    wire::fixed64(buf, 7, span.start_unix_nano);
    wire::fixed64(buf, 8, span.end_unix_nano);
    attributes(buf, 9, &span.attributes);
    wire::uint(buf, 10, u64::from(span.dropped_attributes));
    for event in &span.events {
        wire::message(buf, 11, |buf| encode_event(buf, event));
    }
    wire::uint(buf, 12, u64::from(span.dropped_events));
    for link in &span.links {
        wire::message(buf, 13, |buf| encode_link(buf, link));
    }
    wire::uint(buf, 14, u64::from(span.dropped_links));
    if span.status.code != StatusCode::Unset || !span.status.message.is_empty() {
        wire::message(buf, 15, |buf| {
            wire::bytes(buf, 2, span.status.message.as_bytes());
            wire::uint(buf, 3, status_code(span.status.code));
        });
    }
    let remote = if span.parent_is_remote { IS_REMOTE } else { 0 };
    wire::fixed32(
        buf,
        16,
        u32::from(context.flags.to_wire()) | HAS_IS_REMOTE | remote,
    );
}

fn encode_event(buf: &mut Vec<u8>, event: &Event) {
    wire::fixed64(buf, 1, event.time_unix_nano);
    wire::bytes(buf, 2, event.name.as_bytes());
    attributes(buf, 3, &event.attributes);
}

fn encode_link(buf: &mut Vec<u8>, link: &Link) {
    let context = &link.context;
    wire::bytes(buf, 1, context.trace_id.as_bytes());
    wire::bytes(buf, 2, context.span_id.as_bytes());
    wire::bytes(buf, 3, context.trace_state.as_str().as_bytes());
    attributes(buf, 4, &link.attributes);
    wire::fixed32(
        buf,
        6,
        u32::from(context.flags.to_wire()) | HAS_IS_REMOTE | IS_REMOTE,
    );
}

/// Attributes are most of a span, so each `KeyValue` and `AnyValue` length is computed up
/// front rather than patched in after the body is written.
fn attributes(buf: &mut Vec<u8>, field: u32, attributes: &[KeyValue]) {
    for attribute in attributes {
        let key = attribute.key.as_bytes();
        let value_len = any_value_len(&attribute.value);
        let key_len = if key.is_empty() {
            0
        } else {
            wire::delimited_len(1, key.len())
        };
        wire::delimited_header(buf, field, key_len + wire::delimited_len(2, value_len));
        wire::bytes(buf, 1, key);
        // KeyValue.value = 2, an AnyValue whose oneof member is always written.
        wire::delimited_header(buf, 2, value_len);
        match &attribute.value {
            Value::Str(s) => wire::oneof_bytes(buf, 1, s.as_bytes()),
            Value::Bool(b) => wire::oneof_uint(buf, 2, u64::from(*b)),
            Value::Int(i) => wire::oneof_uint(buf, 3, *i as u64),
            Value::Double(d) => wire::fixed64(buf, 4, d.to_bits()),
        }
    }
}

/// The encoded length of an `AnyValue` holding `value`.
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Str(s) => wire::delimited_len(1, s.len()),
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + wire::varint_len(*i as u64),
        Value::Double(_) => 9,
    }
}

fn kind(kind: SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn status_code(code: StatusCode) -> u64 {
    match code {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    }
}

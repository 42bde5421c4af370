//! The span model, shaped after the OTLP `Span` message.

use std::borrow::Cow;

use crate::context::{SpanContext, TraceFlags};
use crate::id::{SpanId, TraceId};

/// The most attributes a span keeps; further ones are counted as dropped.
pub const MAX_ATTRIBUTES: usize = 128;
/// The most events a span keeps.
pub const MAX_EVENTS: usize = 32;
/// The most links a span keeps.
pub const MAX_LINKS: usize = 8;
/// The longest string attribute value kept, in bytes; longer ones are cut at a char boundary.
pub const MAX_VALUE_LEN: usize = 1024;

/// The role of a span.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum SpanKind {
    /// Internal work.
    #[default]
    Internal,
    /// Handling a request that arrived.
    Server,
    /// A request sent to another service.
    Client,
    /// Sending a message.
    Producer,
    /// Receiving a message.
    Consumer,
}

/// A span's outcome.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum StatusCode {
    /// Not set: the default for success of HTTP spans.
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed.
    Error,
}

/// A span's status: a code and, for errors, a message.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Status {
    /// The code.
    pub code: StatusCode,
    /// A human-readable description of an error.
    pub message: Cow<'static, str>,
}

/// An attribute value.
#[derive(Clone, PartialEq, Debug)]
pub enum Value {
    /// A string.
    Str(Cow<'static, str>),
    /// A 64-bit signed integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A double.
    Double(f64),
}

impl From<&'static str> for Value {
    fn from(value: &'static str) -> Self {
        Self::Str(Cow::Borrowed(value))
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Str(Cow::Owned(value))
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Self::Double(value)
    }
}

/// A named attribute.
#[derive(Clone, PartialEq, Debug)]
pub struct KeyValue {
    /// The name, usually one of [`crate::semconv`].
    pub key: Cow<'static, str>,
    /// The value.
    pub value: Value,
}

impl KeyValue {
    /// An attribute, with an over-long string value cut to [`MAX_VALUE_LEN`].
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        let value = match value.into() {
            Value::Str(s) if s.len() > MAX_VALUE_LEN => Value::Str(truncate(s)),
            other => other,
        };
        Self {
            key: key.into(),
            value,
        }
    }
}

fn truncate(s: Cow<'static, str>) -> Cow<'static, str> {
    let mut end = MAX_VALUE_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.get(..end).unwrap_or_default()),
        Cow::Owned(mut o) => {
            o.truncate(end);
            Cow::Owned(o)
        }
    }
}

/// Something that happened at one moment during a span.
#[derive(Clone, PartialEq, Debug)]
pub struct Event {
    /// When, in Unix nanoseconds.
    pub time_unix_nano: u64,
    /// What.
    pub name: Cow<'static, str>,
    /// Details.
    pub attributes: Vec<KeyValue>,
}

/// A reference to another span, such as an untrusted caller's context.
#[derive(Clone, PartialEq, Debug)]
pub struct Link {
    /// The linked span's context.
    pub context: SpanContext,
    /// Why it is linked.
    pub attributes: Vec<KeyValue>,
}

/// Attributes that describe the process that produced the spans.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Resource {
    /// Usually `service.name` plus location tags.
    pub attributes: Vec<KeyValue>,
}

/// The instrumentation scope: which library made the spans.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Scope {
    /// Library name.
    pub name: Cow<'static, str>,
    /// Library version.
    pub version: Cow<'static, str>,
}

impl Default for Scope {
    fn default() -> Self {
        Self {
            name: Cow::Borrowed("threadline"),
            version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
        }
    }
}

/// One finished or in-flight span.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Span {
    /// This span's context (trace ID, span ID, flags, trace state).
    pub context: SpanContext,
    /// The parent span, if any.
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent came from another process.
    pub parent_is_remote: bool,
    /// Low-cardinality name, e.g. `GET /users/{id}`.
    pub name: Cow<'static, str>,
    /// The span's role.
    pub kind: SpanKind,
    /// Start, in Unix nanoseconds.
    pub start_unix_nano: u64,
    /// End, in Unix nanoseconds.
    pub end_unix_nano: u64,
    /// Attributes, at most [`MAX_ATTRIBUTES`].
    pub attributes: Vec<KeyValue>,
    /// Attributes that did not fit.
    pub dropped_attributes: u32,
    /// Events, at most [`MAX_EVENTS`].
    pub events: Vec<Event>,
    /// Events that did not fit.
    pub dropped_events: u32,
    /// Links, at most [`MAX_LINKS`].
    pub links: Vec<Link>,
    /// Links that did not fit.
    pub dropped_links: u32,
    /// The outcome.
    pub status: Status,
}

impl Span {
    /// The trace ID.
    pub fn trace_id(&self) -> TraceId {
        self.context.trace_id
    }

    /// The span ID.
    pub fn span_id(&self) -> SpanId {
        self.context.span_id
    }

    /// The trace flags.
    pub fn flags(&self) -> TraceFlags {
        self.context.flags
    }

    /// Adds an attribute, or counts it as dropped when the span is full.
    pub fn set_attribute(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes.push(KeyValue::new(key, value));
        } else {
            self.dropped_attributes = self.dropped_attributes.saturating_add(1);
        }
    }

    /// Adds an event, or counts it as dropped when the span is full.
    pub fn add_event(&mut self, event: Event) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(event);
        } else {
            self.dropped_events = self.dropped_events.saturating_add(1);
        }
    }

    /// Adds a link, or counts it as dropped when the span is full.
    pub fn add_link(&mut self, link: Link) {
        if self.links.len() < MAX_LINKS {
            self.links.push(link);
        } else {
            self.dropped_links = self.dropped_links.saturating_add(1);
        }
    }

    /// Marks the span as failed.
    pub fn set_error(&mut self, message: impl Into<Cow<'static, str>>) {
        self.status = Status {
            code: StatusCode::Error,
            message: message.into(),
        };
    }

    /// Duration in nanoseconds (0 if the clock went backwards).
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_and_counted() {
        let mut span = Span::default();
        for i in 0..(MAX_ATTRIBUTES + 3) {
            span.set_attribute(format!("k{i}"), i as i64);
        }
        assert_eq!(span.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(span.dropped_attributes, 3);
        for _ in 0..(MAX_LINKS + 1) {
            span.add_link(Link {
                context: SpanContext::default(),
                attributes: vec![],
            });
        }
        assert_eq!(span.dropped_links, 1);
    }

    #[test]
    fn long_values_are_cut_at_a_char_boundary() {
        let long = "é".repeat(MAX_VALUE_LEN);
        let kv = KeyValue::new("k", long);
        let Value::Str(s) = kv.value else { panic!() };
        assert!(s.len() <= MAX_VALUE_LEN);
        assert!(s.len() >= MAX_VALUE_LEN - 1);
    }
}

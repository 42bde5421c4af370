//! Decoding through the official OpenTelemetry protobuf definitions.

pub use opentelemetry_proto::tonic as proto;
pub use prost::DecodeError;

use proto::collector::trace::v1::ExportTraceServiceRequest;

/// Decodes an OTLP/HTTP protobuf traces body.
pub fn decode_request(bytes: &[u8]) -> Result<ExportTraceServiceRequest, DecodeError> {
    prost::Message::decode(bytes)
}

/// The value of attribute `key` on a decoded span, if it has one.
pub fn attribute<'a>(
    span: &'a proto::trace::v1::Span,
    key: &str,
) -> Option<&'a proto::common::v1::any_value::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

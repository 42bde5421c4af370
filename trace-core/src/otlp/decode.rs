//! Decoding through the official OpenTelemetry protobuf definitions.

pub use opentelemetry_proto::tonic as proto;
pub use prost::DecodeError;

use proto::collector::trace::v1::ExportTraceServiceRequest;

/// Decodes an OTLP/HTTP protobuf traces body.
pub fn decode_request(bytes: &[u8]) -> Result<ExportTraceServiceRequest, DecodeError> {
    prost::Message::decode(bytes)
}

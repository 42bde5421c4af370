//! OTLP: spans as `ExportTraceServiceRequest` protobuf bytes.
//!
//! Encoding is written here, straight from [`crate::span`] into a byte buffer, because it is
//! on every component's data path and runs inside the wasm filter: it allocates nothing per
//! attribute and pulls no protobuf runtime into the `.wasm`. `benches/otlp.rs` compares it
//! with building and encoding the `opentelemetry-proto` messages. Decoding, used by receivers
//! and tests, goes through the official definitions in `opentelemetry-proto`.

#[cfg(feature = "decode")]
mod decode;
mod encode;
mod wire;

#[cfg(feature = "decode")]
pub use decode::{DecodeError, attribute, decode_request, proto};
pub use encode::{encode_request, encode_request_from_entries, encode_span_entry};

/// Content type of OTLP/HTTP protobuf bodies.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// Default path of the OTLP/HTTP traces endpoint.
pub const TRACES_PATH: &str = "/v1/traces";

//! OTLP/gRPC with tonic, sending the bytes trace-core already encoded.

use bytes::Buf;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::config::Export;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Passes an encoded `ExportTraceServiceRequest` through and discards the response body.
struct RawCodec;

struct RawEncoder;

struct DiscardDecoder;

impl Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = DiscardDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DiscardDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: bytes::Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl Decoder for DiscardDecoder {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Self::Error> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

/// One unary `Export` call.
pub async fn export(
    channel: tonic::transport::Channel,
    body: bytes::Bytes,
    settings: &Export,
) -> Result<(), String> {
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.map_err(|e| format!("grpc: {e}"))?;
    let mut request = tonic::Request::new(body);
    for (name, value) in &settings.headers {
        let key = tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|e| format!("export.headers: {name}: {e}"))?;
        let value = value
            .parse()
            .map_err(|_| format!("export.headers: {name}: invalid value"))?;
        request.metadata_mut().insert(key, value);
    }
    let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
    client
        .unary(request, path, RawCodec)
        .await
        .map(|_| ())
        .map_err(|status| format!("grpc: {status}"))
}

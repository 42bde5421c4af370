//! OTLP/gRPC with tonic, sending the bytes trace-core already encoded.

use bytes::{Buf, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic_types::StatusExt;
use trace_core::export::Delivery;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Request metadata: the configured headers.
pub type Metadata = Vec<(MetadataKey<Ascii>, MetadataValue<Ascii>)>;

/// One unary `Export` call: how it ended, and a readable error when it failed.
pub async fn export(
    channel: tonic::transport::Channel,
    metadata: &Metadata,
    body: Bytes,
) -> (Delivery, Option<String>) {
    let mut client = tonic::client::Grpc::new(channel);
    if let Err(e) = client.ready().await {
        return (Delivery::NoResponse, Some(format!("grpc: {e}")));
    }
    let mut request = tonic::Request::new(body);
    for (key, value) in metadata {
        request.metadata_mut().insert(key.clone(), value.clone());
    }
    let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
    match client.unary(request, path, RawCodec).await {
        Ok(_) => (
            Delivery::Grpc {
                code: tonic::Code::Ok as i32,
                retry_info_ms: None,
            },
            None,
        ),
        Err(status) => {
            // The server's RetryInfo, when it sent one, is its throttling hint.
            let retry_info_ms = status
                .get_details_retry_info()
                .and_then(|info| info.retry_delay)
                .map(|delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
            let delivery = Delivery::Grpc {
                code: status.code() as i32,
                retry_info_ms,
            };
            (delivery, Some(format!("grpc: {status}")))
        }
    }
}

/// Passes an encoded `ExportTraceServiceRequest` through and discards the response body.
struct RawCodec;

struct RawEncoder;

struct DiscardDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
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
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
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

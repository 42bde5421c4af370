//! Sending one encoded `ExportTraceServiceRequest` to the collector, over OTLP/HTTP protobuf
//! or OTLP/gRPC, and saying how it ended in the export policy's terms ([`Delivery`]).

use std::time::Duration;

use bytes::{Buf, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_types::StatusExt;
use trace_core::export::Delivery;
use trace_core::export::verdict::retry_after_ms;
use trace_core::otel_env::Protocol;
use trace_core::otlp::CONTENT_TYPE;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Where batches go and how.
pub enum Transport {
    /// OTLP/HTTP protobuf.
    Http {
        /// The traces URL.
        url: String,
        /// The client, with the configured headers and timeout.
        client: reqwest::Client,
    },
    /// OTLP/gRPC.
    Grpc {
        /// The collector, connected on first use.
        channel: tonic::transport::Channel,
        /// Request metadata (the configured headers).
        metadata: Vec<(
            tonic::metadata::MetadataKey<tonic::metadata::Ascii>,
            tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
        )>,
    },
}

impl Transport {
    /// A transport to `url` (the traces URL for HTTP, the target for gRPC). Must be called
    /// inside the runtime that will use it.
    pub fn new(
        protocol: Protocol,
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Self, String> {
        match protocol {
            Protocol::HttpProtobuf => {
                let mut map = http::HeaderMap::new();
                for (name, value) in headers {
                    let name = http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|e| format!("export.headers.{name}: {e}"))?;
                    let value = http::HeaderValue::from_str(value)
                        .map_err(|e| format!("export.headers.{name}: {e}"))?;
                    map.insert(name, value);
                }
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .default_headers(map)
                    .build()
                    .map_err(|e| format!("export: {e}"))?;
                Ok(Self::Http {
                    url: url.to_owned(),
                    client,
                })
            }
            Protocol::Grpc => {
                let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
                    .map_err(|e| format!("export.endpoint: {e}"))?
                    .timeout(timeout)
                    .connect_timeout(timeout);
                let metadata = headers
                    .iter()
                    .map(|(name, value)| {
                        let key = tonic::metadata::MetadataKey::from_bytes(
                            name.to_ascii_lowercase().as_bytes(),
                        )
                        .map_err(|e| format!("export.headers.{name}: {e}"))?;
                        let value = value
                            .parse()
                            .map_err(|e| format!("export.headers.{name}: {e}"))?;
                        Ok((key, value))
                    })
                    .collect::<Result<_, String>>()?;
                Ok(Self::Grpc {
                    channel: endpoint.connect_lazy(),
                    metadata,
                })
            }
        }
    }

    /// One attempt: how it ended, and a readable error when it failed.
    pub async fn send(&self, body: Bytes) -> (Delivery, Option<String>) {
        match self {
            Self::Http { url, client } => {
                let sent = client
                    .post(url)
                    .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Err(e) => (Delivery::NoResponse, Some(format!("{url}: {e}"))),
                    Ok(response) => {
                        let status = response.status();
                        let retry_after_ms = response
                            .headers()
                            .get(http::header::RETRY_AFTER)
                            .and_then(|v| retry_after_ms(v.as_bytes()));
                        let error = (!status.is_success()).then(|| format!("{url}: HTTP {status}"));
                        (
                            Delivery::Http {
                                status: status.as_u16(),
                                retry_after_ms,
                            },
                            error,
                        )
                    }
                }
            }
            Self::Grpc { channel, metadata } => {
                let mut client = tonic::client::Grpc::new(channel.clone());
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
                        let retry_info_ms = status
                            .get_details_retry_info()
                            .and_then(|info| info.retry_delay)
                            .map(|delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                        (
                            Delivery::Grpc {
                                code: status.code() as i32,
                                retry_info_ms,
                            },
                            Some(format!("grpc: {status}")),
                        )
                    }
                }
            }
        }
    }
}

/// Passes an encoded request through and discards the response body.
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

//! Where batches go, and one attempt at sending one: over OTLP/HTTP protobuf, over OTLP/gRPC,
//! or to the terminal when no collector is configured.
//!
//! A [`Target`] is checked once, at start, and holds no connection. A [`Transport`] is made
//! from it inside the runtime that uses it: reqwest's and tonic's connections run their
//! workers in the runtime that made them, and a request handed to a worker whose runtime is
//! gone is never sent (the flush at shutdown runs on a runtime of its own).

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use trace_core::config::FieldError;
use trace_core::export::verdict::retry_after_ms;
use trace_core::export::{Delivery, ExportDefaults, ExportSettings};
use trace_core::otel_env::Protocol;
use trace_core::otlp::CONTENT_TYPE;

use crate::grpc::{self, Metadata};

/// A checked destination.
#[derive(Clone, Debug)]
pub enum Target {
    /// Standard output: the bytes of each batch, as they are.
    Stdout,
    /// OTLP/HTTP protobuf.
    Http {
        /// The traces URL.
        url: String,
        /// The configured headers.
        headers: http::HeaderMap,
        /// Timeout of one request.
        timeout: Duration,
    },
    /// OTLP/gRPC.
    Grpc {
        /// The collector.
        endpoint: Box<tonic::transport::Endpoint>,
        /// The configured headers as metadata.
        metadata: Metadata,
    },
}

impl Target {
    /// The destination `settings` configure; without an endpoint, the terminal. Errors name
    /// the field.
    pub fn new<D: ExportDefaults>(settings: &ExportSettings<D>) -> Result<Self, FieldError> {
        let Some(url) = settings.traces_url() else {
            return Ok(Self::Stdout);
        };
        let timeout = Duration::from_millis(settings.timeout_ms);
        let header_error = |name: &str, e: &dyn std::fmt::Display| {
            FieldError::new(format!("export.headers.{name}"), e.to_string())
        };
        let target = match settings.protocol {
            Protocol::HttpProtobuf => {
                let mut headers = http::HeaderMap::new();
                for (name, value) in &settings.headers {
                    let key = http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|e| header_error(name, &e))?;
                    let value =
                        http::HeaderValue::from_str(value).map_err(|e| header_error(name, &e))?;
                    headers.insert(key, value);
                }
                Self::Http {
                    url,
                    headers,
                    timeout,
                }
            }
            Protocol::Grpc => {
                let endpoint = tonic::transport::Endpoint::from_shared(url)
                    .map_err(|e| FieldError::new(settings.endpoint_field(), e.to_string()))?
                    .timeout(timeout)
                    .connect_timeout(timeout);
                let metadata = settings
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let key = tonic::metadata::MetadataKey::from_bytes(
                            name.to_ascii_lowercase().as_bytes(),
                        )
                        .map_err(|e| header_error(name, &e))?;
                        let value = value.parse().map_err(|e| header_error(name, &e))?;
                        Ok((key, value))
                    })
                    .collect::<Result<_, FieldError>>()?;
                Self::Grpc {
                    endpoint: Box::new(endpoint),
                    metadata,
                }
            }
        };
        // A client that cannot be built is refused at start rather than at the first export.
        if let Self::Http {
            headers, timeout, ..
        } = &target
        {
            http_client(headers, *timeout).map_err(|e| FieldError::new("export", e))?;
        }
        Ok(target)
    }

    /// Whether batches go to the terminal.
    pub fn is_stdout(&self) -> bool {
        matches!(self, Self::Stdout)
    }

    /// Where the batches go, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Stdout => "stdout".to_owned(),
            Self::Http { url, .. } => url.clone(),
            Self::Grpc { endpoint, .. } => format!("grpc {}", endpoint.uri()),
        }
    }

    /// A transport to this target, for the current runtime.
    pub fn connect(&self) -> Result<Transport, String> {
        Ok(match self {
            Self::Stdout => Transport::Stdout,
            Self::Http {
                url,
                headers,
                timeout,
            } => Transport::Http {
                url: url.clone(),
                client: http_client(headers, *timeout)?,
            },
            Self::Grpc { endpoint, metadata } => Transport::Grpc {
                channel: endpoint.connect_lazy(),
                metadata: metadata.clone(),
            },
        })
    }
}

fn http_client(headers: &http::HeaderMap, timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers.clone())
        .build()
        .map_err(|e| format!("export: {e}"))
}

/// A connected destination.
pub enum Transport {
    /// Standard output.
    Stdout,
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
        /// Request metadata.
        metadata: Metadata,
    },
}

impl Transport {
    /// One attempt: how it ended, and a readable error when it failed.
    pub async fn send(&self, body: Bytes) -> (Delivery, Option<String>) {
        match self {
            Self::Stdout => {
                // The terminal is best effort: a closed stdout must not stop the exporter.
                let _ = std::io::stdout().lock().write_all(&body);
                (
                    Delivery::Http {
                        status: 200,
                        retry_after_ms: None,
                    },
                    None,
                )
            }
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
            Self::Grpc { channel, metadata } => grpc::export(channel.clone(), metadata, body).await,
        }
    }
}

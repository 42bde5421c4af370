//! OTLP/HTTP protobuf on the local port (`POST /v1/traces`), beside the filter artifact.
//!
//! A body is read up to its bound and no further: a `Content-Length` over it is answered 413
//! before the body is read, and so is a body that grows past it. A body that is no
//! `ExportTraceServiceRequest` is answered 400 (OTLP says a client must not retry it). OTLP/JSON
//! and compressed bodies are answered 415. Every one of these is counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use trace_core::otlp::{CONTENT_TYPE, TRACES_PATH, decode_request};

use super::intake::{Intake, ReceiverCount};
use crate::artifact::Artifact;

/// What the HTTP port serves.
pub struct HttpReceiver {
    /// Where requests go.
    pub intake: Intake,
    /// The largest body taken, in bytes.
    pub max_body_bytes: usize,
    /// The filter artifact, when one is served.
    pub artifact: Option<Artifact>,
}

type Body = Full<Bytes>;

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

impl HttpReceiver {
    /// Serves `listener` until `shutdown` says so; connections open then are closed gracefully.
    pub async fn serve(
        self,
        listener: TcpListener,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let receiver = Arc::new(self);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.changed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "receiver: accept failed");
                    continue;
                }
            };
            let receiver = receiver.clone();
            let service = service_fn(move |request| {
                let receiver = receiver.clone();
                async move { Ok::<_, Infallible>(receiver.handle(request, peer).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "receiver: connection ended");
                }
            });
        }
        // In-flight requests finish; idle keep-alive connections close.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), graceful.shutdown()).await;
    }

    async fn handle(&self, request: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        let path = request.uri().path();
        if let Some(artifact) = &self.artifact
            && let Some(response) = artifact.respond(request.method(), path)
        {
            return response;
        }
        if path != TRACES_PATH {
            return respond(StatusCode::NOT_FOUND, "text/plain", "not found\n");
        }
        if request.method() != Method::POST {
            return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "POST only\n");
        }
        let counts = &self.intake.counts;
        let headers = request.headers();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(CONTENT_TYPE);
        let encoded = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
        if !content_type.starts_with(CONTENT_TYPE) || encoded {
            counts.inc(ReceiverCount::Unsupported);
            return respond(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "text/plain",
                "only uncompressed application/x-protobuf is served\n",
            );
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body_bytes as u64) {
            counts.inc(ReceiverCount::TooLarge);
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "body too large\n",
            );
        }
        let body = match Limited::new(request.into_body(), self.max_body_bytes)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                counts.inc(ReceiverCount::TooLarge);
                return respond(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "text/plain",
                    "body too large\n",
                );
            }
            Err(_) => {
                counts.inc(ReceiverCount::Malformed);
                return respond(StatusCode::BAD_REQUEST, "text/plain", "body unreadable\n");
            }
        };
        match decode_request(&body) {
            Ok(request) => {
                self.intake.accept(&request);
                // An empty ExportTraceServiceResponse: every span was accepted.
                respond(StatusCode::OK, CONTENT_TYPE, Bytes::new())
            }
            Err(e) => {
                counts.inc(ReceiverCount::Malformed);
                tracing::debug!(error = %e, "receiver: malformed OTLP body");
                respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "not an ExportTraceServiceRequest\n",
                )
            }
        }
    }
}

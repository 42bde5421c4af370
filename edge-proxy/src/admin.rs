//! The admin port: Prometheus `/metrics`, and `/healthz` for liveness probes.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, TextEncoder};

/// The admin app.
pub struct Admin;

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" => {
                let encoder = TextEncoder::new();
                let mut body = Vec::new();
                match encoder.encode(&prometheus::gather(), &mut body) {
                    Ok(()) => respond(200, encoder.format_type(), body),
                    Err(e) => respond(500, "text/plain", e.to_string().into_bytes()),
                }
            }
            "/healthz" => respond(200, "text/plain", b"ok\n".to_vec()),
            _ => respond(404, "text/plain", b"not found: try /metrics\n".to_vec()),
        }
    }
}

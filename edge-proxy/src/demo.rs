//! The built-in demo upstream of the embedded default: a tiny HTTP app that answers every
//! request with the trace context it received, so a first run shows propagation end to end.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The demo core location.
pub struct DemoUpstream;

#[async_trait]
impl ServeHttp for DemoUpstream {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let header = |name: &str| {
            session
                .req_header()
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let body = format!(
            "hello from the demo core location\ntraceparent: {}\nx-request-id: {}\n",
            header("traceparent"),
            header("x-request-id")
        )
        .into_bytes();
        Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "text/plain")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

//! The admin port: Prometheus `/metrics`, and `/healthz` for liveness probes.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Serves `listener` until `shutdown` says so.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let metrics = metrics.clone();
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    Ok::<_, Infallible>(match request.uri().path() {
                        "/metrics" => match metrics.render() {
                            Ok((content_type, body)) => {
                                respond(StatusCode::OK, &content_type, body)
                            }
                            Err(e) => respond(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "text/plain",
                                e.to_string().into_bytes(),
                            ),
                        },
                        "/healthz" => respond(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
                        _ => respond(
                            StatusCode::NOT_FOUND,
                            "text/plain",
                            b"not found: try /metrics\n".to_vec(),
                        ),
                    })
                }
            });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

//! The built-in demo upstream of the embedded default: a tiny HTTP app that answers every
//! request with the trace context it received, so a first run shows propagation end to end.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::services::{Service as ServiceTrait, ServiceReadyNotifier, ServiceWithDependents};

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

/// The demo upstream as a service that reports ready only once it accepts connections, so the
/// proxy that depends on it never answers 502 in its first milliseconds.
pub struct DemoService {
    inner: Service<DemoUpstream>,
    address: SocketAddr,
}

impl DemoService {
    /// The demo upstream listening on `address`.
    pub fn new(address: SocketAddr) -> Self {
        let mut inner = Service::new("demo upstream".into(), DemoUpstream);
        inner.add_tcp(&address.to_string());
        Self { inner, address }
    }
}

#[async_trait]
impl ServiceWithDependents for DemoService {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        let address = self.address;
        tokio::spawn(async move {
            for _ in 0..READY_POLLS {
                if tokio::net::TcpStream::connect(address).await.is_ok() {
                    break;
                }
                tokio::time::sleep(READY_POLL_INTERVAL).await;
            }
            ready_notifier.notify_ready();
        });
        ServiceTrait::start_service(&mut self.inner, fds, shutdown, listeners_per_fd).await;
    }

    fn name(&self) -> &str {
        ServiceTrait::name(&self.inner)
    }
}

/// How long the proxy waits for the demo upstream at most: 500 × 10 ms.
const READY_POLLS: u32 = 500;
const READY_POLL_INTERVAL: Duration = Duration::from_millis(10);

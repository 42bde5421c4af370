//! An OTLP/HTTP receiver standing in for the collector: it decodes every request with the
//! official protobuf definitions (opentelemetry-proto, through trace-core's `decode`) and
//! keeps each span with its resource's attributes. It can be taken down for a while: it then
//! answers 503, which the OTLP rules make every exporter retry.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use trace_core::otlp::decode_request;
use trace_core::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use trace_core::otlp::proto::common::v1::{KeyValue, any_value};
use trace_core::otlp::proto::trace::v1::Span;

use crate::Error;

/// A span as the collector received it, with its resource's attributes.
pub type Received = (Vec<KeyValue>, Span);

#[derive(Default)]
struct State {
    spans: Mutex<Vec<Received>>,
    down: AtomicBool,
    refused: AtomicU64,
    undecodable: AtomicU64,
}

/// The collector; it serves until dropped.
pub struct Collector {
    state: Arc<State>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    /// Serves on `listener` (made by the caller, so it may be inside a namespace), on a
    /// thread of its own.
    pub fn start(listener: TcpListener) -> Result<Self, Error> {
        let failed = |e: std::io::Error| Error::Command {
            command: "collector".into(),
            detail: e.to_string(),
        };
        let addr = listener.local_addr().map_err(failed)?;
        listener.set_nonblocking(true).map_err(failed)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(failed)?;
        let state = Arc::new(State::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                tokio::select! {
                    () = accept(listener, serving) => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(Self {
            state,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Takes it down (every export is answered 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Export requests answered 503 while it was down.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Requests whose body did not decode as an `ExportTraceServiceRequest`.
    pub fn undecodable(&self) -> u64 {
        self.state.undecodable.load(Ordering::SeqCst)
    }

    /// Every span accepted so far.
    pub fn spans(&self) -> Vec<Received> {
        self.state
            .spans
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Waits up to `wait` until `done` holds of the spans accepted; returns them either way.
    pub fn wait_until(&self, wait: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first span accepted that `matches`, waiting up to `wait` for it; the panic names
    /// `what` and lists what did arrive.
    pub fn wait_for(
        &self,
        what: &str,
        wait: Duration,
        matches: impl Fn(&Span) -> bool,
    ) -> Received {
        let spans = self.wait_until(wait, |spans| spans.iter().any(|(_, s)| matches(s)));
        match spans.iter().find(|(_, s)| matches(s)) {
            Some(found) => found.clone(),
            None => panic!(
                "no span {what} among {:#?}",
                spans
                    .iter()
                    .map(|(_, s)| (&s.name, s.kind, attributes(s)))
                    .collect::<Vec<_>>()
            ),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: tokio::net::TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(&state, request).await) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    state: &State,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<bytes::Bytes>> {
    let status = |code: u16| {
        let mut response = http::Response::new(Full::new(bytes::Bytes::new()));
        *response.status_mut() = http::StatusCode::from_u16(code).unwrap_or_default();
        response
    };
    if request.uri().path() != "/v1/traces" {
        return status(404);
    }
    let Ok(body) = request.into_body().collect().await else {
        return status(400);
    };
    if state.down.load(Ordering::SeqCst) {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return status(503);
    }
    match decode_request(&body.to_bytes()) {
        Ok(request) => {
            keep(state, request);
            status(200)
        }
        Err(_) => {
            state.undecodable.fetch_add(1, Ordering::SeqCst);
            status(400)
        }
    }
}

fn keep(state: &State, request: ExportTraceServiceRequest) {
    let Ok(mut spans) = state.spans.lock() else {
        return;
    };
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push((resource.clone(), span));
            }
        }
    }
}

/// A span's attributes as `key=value` strings, for failure messages.
pub fn attributes(span: &Span) -> Vec<String> {
    span.attributes
        .iter()
        .map(|kv| {
            format!(
                "{}={:?}",
                kv.key,
                kv.value.as_ref().and_then(|v| v.value.as_ref())
            )
        })
        .collect()
}

/// The string attribute `key`.
pub fn string(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// The integer attribute `key`.
pub fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        any_value::Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

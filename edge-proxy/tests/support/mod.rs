//! Real parts on loopback for the edge proxy's tests: the built binary, HTTP upstreams that
//! record what they receive, an OTLP/HTTP receiver that decodes spans with the official
//! definitions, and a plain HTTP/1.1 client.
#![allow(dead_code, reason = "each test binary uses part of the support")]

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;
use tokio_stream::wrappers::TcpListenerStream;
use trace_core::otlp::decode_request;
use trace_core::otlp::proto::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use trace_core::otlp::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use trace_core::otlp::proto::trace::v1::Span;

/// A free loopback port.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A runtime for the servers of one test.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

type Handler = Arc<dyn Fn(http::request::Parts, Bytes) -> Response<Full<Bytes>> + Send + Sync>;

/// A loopback HTTP/1.1 server that can be stopped.
pub struct Server {
    pub address: SocketAddr,
    running: Arc<AtomicBool>,
}

impl Server {
    /// Serves `handler` on a free port.
    pub fn start(rt: &Runtime, handler: Handler) -> Self {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let alive = running.clone();
        rt.spawn(async move {
            while alive.load(Ordering::Relaxed) {
                let Ok(Ok((stream, _))) =
                    tokio::time::timeout(Duration::from_millis(50), listener.accept()).await
                else {
                    continue;
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            Ok::<_, Infallible>(handler(parts, body))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, running }
    }

    /// Stops accepting; the port then refuses connections.
    pub fn stop(&self) {
        self.running.store(false, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// An upstream (core location) that records each request's headers.
pub struct Upstream {
    pub server: Server,
    pub requests: Arc<Mutex<Vec<http::HeaderMap>>>,
    pub status: Arc<AtomicU16>,
}

impl Upstream {
    /// Answers 200 (or the status set later) with a short body.
    pub fn start(rt: &Runtime) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (seen, code) = (requests.clone(), status.clone());
        let server = Server::start(
            rt,
            Arc::new(move |parts, _| {
                if parts.uri.path() != "/healthz" {
                    seen.lock().unwrap().push(parts.headers);
                }
                Response::builder()
                    .status(code.load(Ordering::Relaxed))
                    .body(Full::new(Bytes::from_static(b"core says hi\n")))
                    .unwrap()
            }),
        );
        Self {
            server,
            requests,
            status,
        }
    }

    /// Requests received so far (health checks excluded).
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// A header of the last request.
    pub fn last_header(&self, name: &str) -> Option<String> {
        let requests = self.requests.lock().unwrap();
        requests
            .last()?
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

/// An OTLP/HTTP collector that decodes what it receives.
pub struct Collector {
    pub server: Server,
    pub spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    /// Accepts `/v1/traces` protobuf bodies.
    pub fn start(rt: &Runtime) -> Self {
        Self::serve(rt, None)
    }

    /// Like [`Collector::start`], but the first export hangs until released, and what it
    /// carried is not recorded: an export that never completed.
    pub fn hanging_first(rt: &Runtime) -> (Self, Hang) {
        let hang = Hang::default();
        (Self::serve(rt, Some(hang.clone())), hang)
    }

    /// Like [`Collector::start`], but the first exports are answered from `script`, one
    /// `(status, Retry-After)` each, and not recorded; later ones are accepted. The time each
    /// export arrived is kept in `arrivals`.
    pub fn scripted(rt: &Runtime, script: Vec<(u16, Option<&'static str>)>) -> (Self, Arrivals) {
        let arrivals = Arrivals::default();
        let collector = Self::serve_with(
            rt,
            None,
            Some((Arc::new(Mutex::new(script)), arrivals.clone())),
        );
        (collector, arrivals)
    }

    fn serve(rt: &Runtime, hang: Option<Hang>) -> Self {
        Self::serve_with(rt, hang, None)
    }

    fn serve_with(rt: &Runtime, hang: Option<Hang>, script: Option<(Script, Arrivals)>) -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let received = spans.clone();
        let server = Server::start(
            rt,
            Arc::new(move |parts, body| {
                assert_eq!(parts.uri.path(), "/v1/traces");
                assert_eq!(
                    parts.headers.get("content-type").unwrap(),
                    "application/x-protobuf"
                );
                if let Some(hang) = &hang
                    && !hang.started.swap(true, Ordering::SeqCst)
                {
                    // The handler is synchronous: its worker hands its other tasks on while
                    // this waits, so later exports are served meanwhile.
                    tokio::task::block_in_place(|| {
                        let deadline = Instant::now() + Duration::from_secs(10);
                        while !hang.released.load(Ordering::SeqCst) && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    });
                    return Response::new(Full::new(Bytes::new()));
                }
                if let Some((script, arrivals)) = &script {
                    arrivals.0.lock().unwrap().push(Instant::now());
                    let mut script = script.lock().unwrap();
                    if !script.is_empty() {
                        let (status, retry_after) = script.remove(0);
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        if let Some(delay) = retry_after {
                            response
                                .headers_mut()
                                .insert("retry-after", delay.parse().unwrap());
                        }
                        return response;
                    }
                }
                let request = decode_request(&body).expect("OTLP protobuf");
                let mut received = received.lock().unwrap();
                for rs in request.resource_spans {
                    for ss in rs.scope_spans {
                        received.extend(ss.spans);
                    }
                }
                Response::new(Full::new(Bytes::new()))
            }),
        );
        Self { server, spans }
    }

    /// The base URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address)
    }

    /// Waits until at least `n` spans arrived (10 s at most) and returns all of them.
    pub fn wait_for(&self, n: usize) -> Vec<Span> {
        wait_for_spans(&self.spans, n)
    }
}

/// The answers a [`Collector::scripted`] still has to give.
type Script = Arc<Mutex<Vec<(u16, Option<&'static str>)>>>;

/// When each export reached a [`Collector::scripted`].
#[derive(Clone, Default)]
pub struct Arrivals(pub Arc<Mutex<Vec<Instant>>>);

impl Arrivals {
    /// The arrival times so far.
    pub fn times(&self) -> Vec<Instant> {
        self.0.lock().unwrap().clone()
    }
}

/// The hanging export of [`Collector::hanging_first`].
#[derive(Clone, Default)]
pub struct Hang {
    /// Set once the first export arrived.
    pub started: Arc<AtomicBool>,
    /// Set to let it finish.
    pub released: Arc<AtomicBool>,
}

/// An OTLP/gRPC collector: the official `TraceService` served by tonic.
pub struct GrpcCollector {
    pub address: SocketAddr,
    pub spans: Arc<Mutex<Vec<Span>>>,
    /// The `authorization` metadata of each export call.
    pub authorizations: Arc<Mutex<Vec<Option<String>>>>,
}

struct TraceReceiver {
    spans: Arc<Mutex<Vec<Span>>>,
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
}

#[tonic::async_trait]
impl TraceService for TraceReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.authorizations.lock().unwrap().push(authorization);
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl GrpcCollector {
    /// Serves on a free loopback port until the runtime is dropped.
    pub fn start(rt: &Runtime) -> Self {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let receiver = TraceReceiver {
            spans: spans.clone(),
            authorizations: authorizations.clone(),
        };
        rt.spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Self {
            address,
            spans,
            authorizations,
        }
    }

    /// Waits until at least `n` spans arrived (10 s at most) and returns all of them.
    pub fn wait_for(&self, n: usize) -> Vec<Span> {
        wait_for_spans(&self.spans, n)
    }
}

fn wait_for_spans(spans: &Mutex<Vec<Span>>, n: usize) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = spans.lock().unwrap().clone();
        if spans.len() >= n || Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A self-signed certificate for `localhost` and its key, as PEM files in `dir`.
pub fn self_signed_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// curl with `args`; returns its standard output (`-w` text), failing the test if curl fails.
pub fn curl(args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/setup.sh");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The edge proxy binary, running.
pub struct Edge {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    dir: PathBuf,
}

/// A configuration with one listener, one admin port and the given sections (which come first,
/// so that their top-level keys stay top-level).
pub fn config(port: u16, admin_port: u16, sections: &str) -> String {
    format!(
        "{sections}\n[server]\nthreads = 1\ngrace_period_seconds = 0\ngraceful_shutdown_timeout_seconds = 2\n\
         upgrade_socket = \"/tmp/edge-test-{port}.sock\"\npid_file = \"/tmp/edge-test-{port}.pid\"\n\
         [listen]\nhttp = [\"127.0.0.1:{port}\"]\n[admin]\naddress = \"127.0.0.1:{admin_port}\"\n"
    )
}

/// The export section for `collector`, flushing every `flush_ms`.
pub fn export_to(endpoint: &str, flush_ms: u64) -> String {
    format!("[export]\nendpoint = \"{endpoint}\"\nflush_interval_ms = {flush_ms}\n")
}

/// Upstream sections for `(name, address)` pairs.
pub fn locations(upstreams: &[(&str, SocketAddr)], extra: &str) -> String {
    let mut out = format!("[upstreams]\n{extra}\n");
    for (name, address) in upstreams {
        out.push_str(&format!(
            "[[upstreams.locations]]\nname = \"{name}\"\naddress = \"{address}\"\n"
        ));
    }
    out
}

impl Edge {
    /// Starts the binary with `config` and waits for its listener.
    pub fn start(config: &str) -> Self {
        Self::start_with(Some(config), &[])
    }

    /// Starts with an optional config file and environment.
    pub fn start_with(config: Option<&str>, env: &[(&str, &str)]) -> Self {
        Self::launch(config, env, &[], None)
    }

    /// Starts with `config` and its standard output on a pipe that nobody reads until the
    /// test takes it with [`Self::take_stdout`]: a log reader that has stopped.
    pub fn start_with_unread_stdout(config: &str) -> Self {
        Self::launch(Some(config), &[], &[], Some(Stdio::piped()))
    }

    /// The pipe of [`Self::start_with_unread_stdout`].
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Starts a new process with `config` that takes over the listeners of the running one
    /// through the upgrade socket (`--upgrade`). It waits for the old process's SIGQUIT.
    pub fn start_upgrade(config: &str) -> Self {
        Self::launch(Some(config), &[], &["--upgrade"], None)
    }

    fn launch(
        config: Option<&str>,
        env: &[(&str, &str)],
        args: &[&str],
        stdout: Option<Stdio>,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("edge-test-{}", free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_edge-proxy"));
        let (port, admin_port) = match config {
            Some(text) => {
                let path = dir.join("edge.toml");
                std::fs::write(&path, text).unwrap();
                command.arg("--config").arg(&path);
                // The ports follow their table headers, wherever the other sections put theirs.
                let after = |marker: &str| -> u16 {
                    let rest = text.split(marker).nth(1).expect("marker in config");
                    rest.split('"')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .expect("a port")
                };
                (
                    after("[listen]\nhttp = [\"127.0.0.1:"),
                    after("[admin]\naddress = \"127.0.0.1:"),
                )
            }
            None => (8080, 9464),
        };
        for (key, value) in env {
            command.env(key, value);
        }
        command.args(args);
        let child = command
            .stdout(
                stdout.unwrap_or_else(|| std::fs::File::create(dir.join("stdout")).unwrap().into()),
            )
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let edge = Self {
            child,
            port,
            admin_port,
            dir,
        };
        // Only the proxy's port: the embedded default listens once its demo upstream does, so
        // the first request after that must already succeed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "edge-proxy did not listen on {port}: {}",
                edge.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        edge
    }

    /// Standard output so far (access log lines, printed spans).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    /// Standard error so far (the proxy's own logs).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// The Prometheus text of the admin port.
    pub fn metrics(&self) -> String {
        get(self.admin_port, "/metrics", &[]).2
    }

    /// A metric's value, summed over its label sets matching `labels`.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }

    /// Sends a signal (`TERM`, `QUIT`, ...).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits (15 s at most) for the process to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "edge-proxy did not stop: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A response: status, headers (lowercase names) and body.
pub type Reply = (u16, Vec<(String, String)>, String);

/// A GET over a new connection; returns the status, the headers and the body.
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Reply {
    try_get(port, path, headers).unwrap()
}

/// The status of a GET over a new connection; `None` when the connection was closed before a
/// status line came back, the one failure an HTTP client may retry for an idempotent request.
pub fn try_get_status(port: u16, path: &str) -> Option<u16> {
    try_get(port, path, &[])
        .ok()
        .map(|(status, _, _)| status)
        .filter(|&status| status != 0)
}

fn try_get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut response_headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            response_headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let mut body = String::new();
    let _ = reader.read_to_string(&mut body);
    Ok((status, response_headers, body))
}

/// Waits for `condition` (10 s at most): what the proxy does in the background, it does in
/// its own time, and more slowly on a loaded machine.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// OTLP span kinds.
pub const SERVER: i32 = 2;
/// See [`SERVER`].
pub const CLIENT: i32 = 3;

/// The spans of one kind.
pub fn find(spans: &[Span], kind: i32) -> Vec<&Span> {
    spans.iter().filter(|s| s.kind == kind).collect()
}

/// An attribute of a decoded span, as text.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    use trace_core::otlp::proto::common::v1::any_value::Value;
    let value = trace_core::otlp::attribute(span, key)?.clone();
    Some(match value {
        Value::StringValue(s) => s,
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

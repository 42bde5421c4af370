//! What the end-to-end tests of the agent on the real kernel share: a loopback OTLP/HTTP
//! collector on a listener the test made (in whichever namespace it likes), the built agent
//! started from a configuration file (optionally inside a namespace) and stopped by its PID,
//! a sidecar span posted to the agent's receiver over a socket the test made, and the client
//! side of one HTTP/1.1 exchange timed on the client's own clock.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use prost::Message;
use trace_core::otlp::decode_request;
use trace_core::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use trace_core::otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use trace_core::otlp::proto::resource::v1::Resource;
use trace_core::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// How long anything in these tests may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// A span as the collector received it, with its resource's attributes.
pub type Received = (Vec<KeyValue>, Span);

/// A collector that keeps every span it accepted, with its resource's attributes.
#[derive(Clone, Default)]
pub struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    /// Serves OTLP/HTTP on `listener` (made by the test, so it may be inside a namespace) on
    /// the current tokio runtime.
    pub fn serve(listener: std::net::TcpListener) -> Self {
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let collector = Self::default();
        let serving = collector.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let collector = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let collector = collector.clone();
                            async move {
                                assert_eq!(request.uri().path(), "/v1/traces");
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                collector.accept(decode_request(&body).unwrap());
                                Ok::<_, Infallible>(http::Response::new(Full::new(
                                    bytes::Bytes::new(),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        collector
    }

    fn accept(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.resource_spans {
            let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push((resource.clone(), span));
                }
            }
        }
    }

    /// The first span accepted that `matches`, waiting for it.
    pub fn wait_for(&self, what: &str, matches: impl Fn(&Span) -> bool) -> Received {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(found) = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .find(|(_, span)| matches(span))
            {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no span {what} among {:#?}",
                self.spans
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(_, s)| (&s.name, s.kind, attributes(s)))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A span's attributes as `key=value` strings, for failure messages.
fn attributes(span: &Span) -> Vec<String> {
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

/// Whether the span records `address` as `network.<side>.address`/`port`.
pub fn has_address(span: &Span, side: &str, address: SocketAddr) -> bool {
    string(&span.attributes, &format!("network.{side}.address")) == Some(address.ip().to_string())
        && int(&span.attributes, &format!("network.{side}.port")) == Some(address.port().into())
}

/// The agent, stopped by its PID when dropped.
pub struct Agent {
    child: Child,
    /// The receiver's address.
    pub receiver: SocketAddr,
    /// Every log line so far.
    pub log: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("node-probe-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A configuration for the kernel agent: receiver on a free loopback port, no gRPC and no
/// admin port, exporting quickly to `collector`, with `rest` appended.
pub fn config(collector: SocketAddr, rest: &str) -> String {
    format!(
        "routes = [\"/orders/{{id}}\"]\n\n[receiver]\nhttp = \"127.0.0.1:0\"\ngrpc = \"\"\n\n[admin]\naddress = \"\"\n\n\
         [export]\nendpoint = \"http://{collector}\"\nflush_interval_ms = 50\nbatch_size = 4\n\n\
         [exchanges]\nquiet_ms = 200\n\n[join]\nwindow_ms = 1000\ninflight_wait_ms = 3000\n\n\
         [location]\ndatacenter = \"test-dc\"\nlocation = \"test-loc\"\nnode = \"test-node\"\n\n\
         [sampling]\nmode = \"proportional\"\npercentage = 100.0\n\n{rest}"
    )
}

/// Starts the agent on `text`, through `wrapper` (e.g. `ip netns exec NS`) if given, and
/// waits for its "started" line, which it writes once it has attached.
pub fn start(name: &str, wrapper: &[&str], text: &str) -> Agent {
    let dir = temp_dir(name);
    let file = dir.join("node-probe.toml");
    std::fs::write(&file, text).unwrap();
    let binary = env!("CARGO_BIN_EXE_node-probe");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    // The test's own environment must not steer the agent.
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .arg("--config")
        .arg(&file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (found, lines) = std::sync::mpsc::channel();
    {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("NODE_PROBE_TEST_LOG").is_some() {
                    eprintln!("agent: {line}");
                }
                log.lock().unwrap().push(line.clone());
                if line.contains("node-probe started")
                    && let Some(found) = found.take()
                {
                    let _ = found.send(line);
                }
            }
        });
    }
    let mut agent = Agent {
        child,
        receiver: SocketAddr::from(([0, 0, 0, 0], 0)),
        log,
        dir,
    };
    let Ok(line) = lines.recv_timeout(WAIT) else {
        let exit = agent.child.try_wait();
        panic!(
            "the agent did not start ({exit:?}): {:#?}",
            agent.log.lock().unwrap()
        );
    };
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    agent.receiver = line["fields"]["http"].as_str().unwrap().parse().unwrap();
    agent
}

/// Unix nanoseconds now, the client's own clock.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A sidecar's span of a request it passed untouched to `upstream` over the connection whose
/// own end was `local`, covering `[start, end]`.
pub fn sidecar_span(
    trace_id: [u8; 16],
    span_id: [u8; 8],
    local: SocketAddr,
    upstream: SocketAddr,
    (start, end): (u64, u64),
) -> ExportTraceServiceRequest {
    let string = |key: &str, value: String| KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    };
    let int = |key: &str, value: u16| KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value.into())),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", "sidecar".into())],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    name: "GET".into(),
                    kind: 3,
                    flags: 0x101,
                    start_time_unix_nano: start,
                    end_time_unix_nano: end,
                    attributes: vec![
                        string("threadline.propagation", "black_box".into()),
                        string("network.local.address", local.ip().to_string()),
                        int("network.local.port", local.port()),
                        string("network.peer.address", upstream.ip().to_string()),
                        int("network.peer.port", upstream.port()),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Posts `request` to the receiver over `stream` (connected by the caller, in the agent's
/// namespace) and returns the status code.
pub fn post(
    mut stream: TcpStream,
    receiver: SocketAddr,
    request: &ExportTraceServiceRequest,
) -> u16 {
    let body = request.encode_to_vec();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {receiver}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8_lossy(response.get(9..12).unwrap_or_default())
        .parse()
        .unwrap()
}

/// One exchange on the client's side: what it sent, what it got, and when, by its own clock.
pub struct Exchange {
    /// The client's end of the connection.
    pub local: SocketAddr,
    /// The bytes sent.
    pub sent: Vec<u8>,
    /// The response's status.
    pub status: u16,
    /// The response's body as JSON (the workload's echo).
    pub echo: serde_json::Value,
    /// Unix nanoseconds just before the request was written.
    pub before: u64,
    /// Unix nanoseconds just after the whole response was read.
    pub after: u64,
}

/// Sends `request` on `stream` (connected, one request per connection), reads one response
/// framed by Content-Length (all the workload sends), and closes.
pub fn exchange(mut stream: TcpStream, request: &[u8]) -> Exchange {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    let local = stream.local_addr().unwrap();
    let before = unix_ns();
    stream.write_all(request).unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "connection closed before the response head");
        received.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    while received.len() < head_end + length {
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "connection closed inside the body");
        received.extend_from_slice(&chunk[..read]);
    }
    let after = unix_ns();
    let echo = serde_json::from_slice(&received[head_end..head_end + length])
        .unwrap_or(serde_json::Value::Null);
    Exchange {
        local,
        sent: request.to_vec(),
        status,
        echo,
        before,
        after,
    }
}

/// The hex sha256 of `bytes`, as the workload echoes it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The span's kernel times lie inside the client's own window (give or take `slack_ns` for
/// the agent's clock offset), in order, and last no longer than the client waited.
pub fn assert_timed_within(span: &Span, exchange: &Exchange, slack_ns: u64) {
    let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
    assert!(
        exchange.before.saturating_sub(slack_ns) <= start
            && start <= end
            && end <= exchange.after + slack_ns,
        "span [{start}, {end}] outside the client's [{}, {}]",
        exchange.before,
        exchange.after
    );
    assert!(
        end - start <= exchange.after - exchange.before + slack_ns,
        "the span ({} ns) lasted longer than the client waited ({} ns)",
        end - start,
        exchange.after - exchange.before
    );
}

//! What the end-to-end tests of the agent on the real kernel share: the harness's collector on
//! a listener the test made (in whichever namespace it likes), the built agent started from a
//! configuration file (optionally inside a namespace) and stopped by its PID,
//! a sidecar span posted to the agent's receiver over a socket the test made, and the client
//! side of one HTTP/1.1 exchange timed on the client's own clock.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use threadline_tests::Process;
use trace_core::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use trace_core::otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use trace_core::otlp::proto::resource::v1::Resource;
use trace_core::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// How long anything in these tests may take.
pub const WAIT: Duration = Duration::from_secs(30);

pub use threadline_tests::collector::{Collector, Received, int, string};

/// Whether the span records `address` as `network.<side>.address`/`port`.
pub fn has_address(span: &Span, side: &str, address: SocketAddr) -> bool {
    string(&span.attributes, &format!("network.{side}.address")) == Some(address.ip().to_string())
        && int(&span.attributes, &format!("network.{side}.port")) == Some(address.port().into())
}

/// The agent, stopped by its PID when dropped.
pub struct Agent {
    /// The process.
    pub process: Process,
    /// The receiver's address.
    pub receiver: SocketAddr,
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
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_node-probe"));
    let (process, line) = Process::start(
        &format!("node-probe-{name}"),
        binary,
        wrapper,
        text,
        "node-probe started",
        WAIT,
    )
    .unwrap_or_else(|e| panic!("the agent did not start: {e}"));
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    let receiver = line["fields"]["http"].as_str().unwrap().parse().unwrap();
    Agent { process, receiver }
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

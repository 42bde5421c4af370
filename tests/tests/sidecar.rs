//! The sidecar with the real filter between a real workload (the microVM's echo server, on
//! loopback) and a real OTLP/HTTP collector: what the workload received, what came back, and
//! what the collector was sent.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};
use threadline_tests::collector::{Received, int, string};
use threadline_tests::sidecar::{DEFAULT_COLLECTOR_CLUSTER, Sidecar, SidecarOptions};
use threadline_tests::{Collector, Netns, or_skip};
use trace_core::otlp::proto::trace::v1::Span;
use trace_core::w3c::TraceParent;
use workload::sigv4::{Credential, sign_headers};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const CREDENTIAL: &str = "AKIDSIDECAR:secret-for-the-sidecar-test";
const WAIT: Duration = Duration::from_secs(10);

/// The filter's configuration for a sidecar at a core location, as mesh-config deploys it.
const CONFIG: &str = r#"{
    "service_name": "vm-42-sidecar",
    "tags": {"datacenter": "eu-central", "location": "fra1", "node": "node-7", "workload": "vm-42"},
    "batch": {"flush_interval_ms": 100}
}"#;

/// Holds its queue until the root ends: only the drain at stop can export it.
const HOLDING_CONFIG: &str = r#"{
    "tags": {"datacenter": "eu-central", "location": "fra1", "node": "node-7", "workload": "vm-42"},
    "batch": {"flush_interval_ms": 60000}
}"#;

fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind on loopback")
}

/// The workload's echo server on `listener`, accepting SigV4 from [`CREDENTIAL`].
fn workload_on(listener: TcpListener) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    let config = workload::Config {
        credentials: vec![CREDENTIAL.parse::<Credential>().unwrap()],
        ..workload::Config::default()
    };
    // The server has no stop; its thread ends with the test binary.
    std::thread::spawn(move || workload::serve(listener, config));
    addr
}

fn start_sidecar(config: &str, upstream: SocketAddr, collector: SocketAddr) -> Sidecar {
    let options = SidecarOptions::new(loopback(), upstream)
        .configuration(config)
        .cluster(DEFAULT_COLLECTOR_CLUSTER, collector);
    Sidecar::start(options).expect("the sidecar starts with the published filter")
}

/// A response read off a client connection.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn echo(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the workload's echo is JSON")
    }
}

/// Sends `request` on `stream` and reads one Content-Length response.
fn exchange(stream: &mut TcpStream, request: &[u8]) -> Response {
    stream.write_all(request).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the response head ends");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("a content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    Response {
        status,
        headers,
        body,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

fn get(path: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nuser-agent: sidecar-test\r\n{extra}\r\n")
        .into_bytes()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(echo: &Value, key: &str) -> String {
    echo[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {echo}"))
        .to_owned()
}

fn span_with_path<'a>(spans: &'a [Received], path: &str) -> &'a Span {
    spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| string(&s.attributes, "url.path").as_deref() == Some(path))
        .unwrap_or_else(|| panic!("no span for {path}"))
}

fn assert_location_tags(span: &Span) {
    let tag = |key| string(&span.attributes, key);
    assert_eq!(tag("threadline.datacenter").as_deref(), Some("eu-central"));
    assert_eq!(tag("threadline.location").as_deref(), Some("fra1"));
    assert_eq!(tag("threadline.node").as_deref(), Some("node-7"));
    assert_eq!(tag("threadline.workload").as_deref(), Some("vm-42"));
}

#[test]
fn proxies_rewrites_the_parent_keeps_signed_requests_and_exports_server_spans() {
    let workload = workload_on(loopback());
    let collector = Collector::start(loopback()).unwrap();
    let sidecar = start_sidecar(CONFIG, workload, collector.addr());
    let host = format!("{workload}");
    let mut client = connect(sidecar.addr());
    let client_addr = client.local_addr().unwrap();

    // With a caller's context: continued, our span becomes the next hop's parent.
    let traced = get(
        "/users/42",
        &host,
        &format!("traceparent: 00-{TRACE}-{PARENT}-01\r\n"),
    );
    let continued = exchange(&mut client, &traced);
    // Without one: a new trace starts here.
    let started = exchange(&mut client, &get("/orders", &host, ""));
    // SigV4-signed: must reach the workload byte for byte, and still verify there.
    let credential: Credential = CREDENTIAL.parse().unwrap();
    let signed_headers = sign_headers(
        "GET",
        &host,
        "/objects/7",
        &credential,
        "eu-central-1",
        "execute-api",
        SystemTime::now(),
    )
    .unwrap();
    let mut signed = format!("GET /objects/7 HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in &signed_headers {
        signed.push_str(&format!("{}: {value}\r\n", name.to_ascii_lowercase()));
    }
    signed.push_str("\r\n");
    assert!(signed.contains("authorization: AWS4-HMAC-SHA256 "));
    let kept = exchange(&mut client, signed.as_bytes());

    for response in [&continued, &started, &kept] {
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        assert!(
            response
                .headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "application/json"),
            "the workload's headers come back"
        );
    }
    let (continued, started, kept) = (continued.echo(), started.echo(), kept.echo());
    assert_eq!(
        text(&kept, "sha256"),
        sha256_hex(signed.as_bytes()),
        "the signed request reached the workload byte for byte"
    );
    assert_eq!(kept["sigv4"]["verified"], Value::Bool(true), "{kept}");
    assert_eq!(kept["traceparent"], Value::Null, "nothing was injected");

    // One upstream connection for the client's connection: the same sidecar port each time.
    let upstream_local = text(&kept, "peer");
    assert_eq!(text(&continued, "peer"), upstream_local);
    assert_eq!(text(&started, "peer"), upstream_local);
    assert_eq!(sidecar.stats().upstream_connections, 1);

    let spans = collector.wait_until(WAIT, |spans| spans.len() >= 3);
    assert_eq!(spans.len(), 3, "one span per request");
    for (resource, span) in &spans {
        assert_eq!(span.kind, 2, "SERVER on an inbound listener");
        assert_location_tags(span);
        assert_eq!(
            string(resource, "service.name").as_deref(),
            Some("vm-42-sidecar")
        );
        assert_eq!(
            int(&span.attributes, "http.response.status_code"),
            Some(200)
        );
    }

    let span = span_with_path(&spans, "/users/42");
    let sent = text(&continued, "traceparent");
    assert_eq!(hex(&span.trace_id), TRACE);
    assert_eq!(hex(&span.parent_span_id), PARENT);
    let sent = TraceParent::parse(sent.as_bytes()).expect("a valid traceparent");
    assert_eq!(sent.trace_id.to_string(), TRACE);
    assert_eq!(
        sent.parent_id.to_string(),
        hex(&span.span_id),
        "the next hop's parent is the sidecar's span"
    );
    assert_eq!(
        string(&span.attributes, "client.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        int(&span.attributes, "client.port"),
        Some(i64::from(client_addr.port())),
        "source.address is the client's real end"
    );

    let span = span_with_path(&spans, "/orders");
    let sent = text(&started, "traceparent");
    assert!(span.parent_span_id.is_empty(), "a new root");
    let sent = TraceParent::parse(sent.as_bytes()).expect("a valid traceparent");
    assert_eq!(sent.trace_id.to_string(), hex(&span.trace_id));
    assert_eq!(
        sent.parent_id.to_string(),
        hex(&span.span_id),
        "the rewritten traceparent's parent is the sidecar's span"
    );
    assert!(sent.flags.is_sampled());

    // The black-box span carries the upstream connection's 4-tuple, which the node agent
    // joins on: the workload's end and the sidecar's end, as the workload saw them.
    let span = span_with_path(&spans, "/objects/7");
    let workload_end: SocketAddr = text(&kept, "local").parse().unwrap();
    let sidecar_end: SocketAddr = upstream_local.parse().unwrap();
    let attr = |key| string(&span.attributes, key);
    assert_eq!(attr("threadline.propagation").as_deref(), Some("black_box"));
    assert_eq!(
        attr("network.peer.address"),
        Some(workload_end.ip().to_string())
    );
    assert_eq!(
        int(&span.attributes, "network.peer.port"),
        Some(i64::from(workload_end.port()))
    );
    assert_eq!(
        attr("network.local.address"),
        Some(sidecar_end.ip().to_string())
    );
    assert_eq!(
        int(&span.attributes, "network.local.port"),
        Some(i64::from(sidecar_end.port()))
    );

    drop(client);
    let stats = sidecar.stop();
    assert_eq!(stats.requests_proxied, 3);
    assert_eq!(stats.filter_errors, 0);
    assert_eq!(stats.callouts_failed, 0);
    assert!(stats.callouts_sent >= 1 && stats.callouts_answered == stats.callouts_sent);
    assert_eq!(collector.undecodable(), 0);
}

#[test]
fn chunked_bodies_and_posts_pass_byte_for_byte() {
    let workload = workload_on(loopback());
    let collector = Collector::start(loopback()).unwrap();
    let sidecar = start_sidecar(CONFIG, workload, collector.addr());
    let mut client = connect(sidecar.addr());
    let chunked = format!(
        "POST /upload HTTP/1.1\r\nhost: {workload}\r\nauthorization: AWS4-HMAC-SHA256 Credential=x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
    let echo = exchange(&mut client, chunked.as_bytes()).echo();
    assert_eq!(text(&echo, "sha256"), sha256_hex(chunked.as_bytes()));
    assert_eq!(echo["body_bytes"], Value::from(11));
    let sized = format!(
        "POST /upload HTTP/1.1\r\nhost: {workload}\r\nx-amz-date: 20261202T000000Z\r\nauthorization: AWS4-HMAC-SHA256 Credential=y\r\ncontent-length: 4\r\n\r\nabcd"
    );
    let echo = exchange(&mut client, sized.as_bytes()).echo();
    assert_eq!(text(&echo, "sha256"), sha256_hex(sized.as_bytes()));
    drop(client);
    assert_eq!(sidecar.stop().requests_proxied, 2);
}

#[test]
fn stop_drains_the_spans_still_queued() {
    let workload = workload_on(loopback());
    let collector = Collector::start(loopback()).unwrap();
    let sidecar = start_sidecar(HOLDING_CONFIG, workload, collector.addr());
    let mut client = connect(sidecar.addr());
    for path in ["/a", "/b"] {
        assert_eq!(
            exchange(&mut client, &get(path, &workload.to_string(), "")).status,
            200
        );
    }
    drop(client);
    std::thread::sleep(Duration::from_millis(500));
    assert!(collector.spans().is_empty(), "held until the root ends");
    let stats = sidecar.stop();
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "the drain at stop exported the queue");
    assert_eq!(stats.callouts_failed, 0);
}

#[test]
fn an_unreachable_workload_or_collector_fails_open() {
    // Ports nothing listens on.
    let closed = loopback().local_addr().unwrap();
    let collector = Collector::start(loopback()).unwrap();
    let sidecar = start_sidecar(CONFIG, closed, collector.addr());
    let mut client = connect(sidecar.addr());
    let response = exchange(&mut client, &get("/x", "api.internal", ""));
    assert_eq!(response.status, 503, "Envoy's local reply");
    let (_, span) = collector.wait_for("for the failed request", WAIT, |_| true);
    assert_eq!(
        int(&span.attributes, "http.response.status_code"),
        Some(503)
    );
    drop(client);
    let stats = sidecar.stop();
    assert_eq!(stats.local_replies, 1);
    assert_eq!(stats.filter_errors, 0);

    let workload = workload_on(loopback());
    let closed_collector = loopback().local_addr().unwrap();
    let sidecar = start_sidecar(CONFIG, workload, closed_collector);
    let mut client = connect(sidecar.addr());
    let response = exchange(&mut client, &get("/y", &workload.to_string(), ""));
    assert_eq!(
        response.status, 200,
        "tracing failures never reach the request"
    );
    let deadline = std::time::Instant::now() + WAIT;
    while sidecar.metric("threadline_export_failures").unwrap_or(0) == 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sidecar.metric("threadline_export_failures").unwrap_or(0) > 0);
    drop(client);
    let stats = sidecar.stop();
    assert!(stats.callouts_failed > 0);
    assert_eq!(stats.filter_errors, 0);
}

#[test]
fn serves_inside_a_network_namespace() {
    let Some(netns) = or_skip(Netns::create("sidecar")) else {
        return;
    };
    let bind = || netns.run(loopback).unwrap();
    let workload = workload_on(bind());
    let collector = Collector::start(bind()).unwrap();
    let options = SidecarOptions::new(bind(), workload)
        .configuration(CONFIG)
        .cluster(DEFAULT_COLLECTOR_CLUSTER, collector.addr());
    let sidecar = Sidecar::start_in(&netns, options).unwrap();
    let addr = sidecar.addr();
    // From the test's own namespace nothing is there: the sidecar's sockets are inside.
    assert!(TcpStream::connect(addr).is_err());
    let mut client = netns.run(|| connect(addr)).unwrap();
    let response = exchange(&mut client, &get("/in-ns", &workload.to_string(), ""));
    assert_eq!(response.status, 200);
    collector.wait_for("from inside the namespace", WAIT, |s| s.kind == 2);
    drop(client);
    assert_eq!(sidecar.stop().requests_proxied, 1);
}

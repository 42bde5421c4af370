//! The built agent on the real kernel, in the fast topology: the project's workload server in
//! a network namespace the test creates (and always deletes), behind a veth pair whose
//! host-side end matches the agent's interface pattern, where a microVM's tap device would
//! be. The agent runs here, beside the veth's host side, exports to a collector on loopback,
//! and the test asserts the spans it makes: a header parent, a 4-tuple join with a sidecar
//! span posted to its receiver, an error status, and timings inside the client's own window.
//!
//! Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON), iproute2 and the built eBPF object.

#[allow(dead_code, reason = "shared by two test binaries, each using a part")]
mod probe;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;

use nix::sched::{CloneFlags, setns};
use probe::{Collector, Received, WAIT, exchange, has_address, int, sha256_hex, string};

const PORT: u16 = 8080;
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
/// Span kinds in OTLP.
const SERVER: i32 = 2;
/// `Status.code` ERROR in OTLP.
const STATUS_ERROR: i32 = 2;

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A namespace with a veth pair into it; both removed on drop.
struct Topology {
    ns: String,
    host: String,
    host_addr: Ipv4Addr,
    peer_addr: Ipv4Addr,
}

impl Topology {
    /// Host side `tapp<pid>` (matched only by this process's pattern), 10.204.x.1/24; the
    /// namespace's end `eth0`, 10.204.x.2/24.
    fn create() -> Self {
        let pid = std::process::id();
        let x = (pid % 250 + 1) as u8;
        let topology = Self {
            ns: format!("npp-{pid}"),
            host: format!("tapp{pid}"),
            host_addr: Ipv4Addr::new(10, 204, x, 1),
            peer_addr: Ipv4Addr::new(10, 204, x, 2),
        };
        ip(&["netns", "add", &topology.ns]);
        ip(&["-n", &topology.ns, "link", "set", "lo", "up"]);
        ip(&[
            "link",
            "add",
            &topology.host,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &topology.ns,
        ]);
        let host_cidr = format!("{}/24", topology.host_addr);
        ip(&["addr", "add", &host_cidr, "dev", &topology.host]);
        ip(&["link", "set", &topology.host, "up"]);
        let peer_cidr = format!("{}/24", topology.peer_addr);
        ip(&["-n", &topology.ns, "addr", "add", &peer_cidr, "dev", "eth0"]);
        ip(&["-n", &topology.ns, "link", "set", "eth0", "up"]);
        topology
    }

    fn server_addr(&self) -> SocketAddr {
        SocketAddrV4::new(self.peer_addr, PORT).into()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// The project's workload, inside the namespace: it echoes the sha256 of the exact bytes
/// each request brought, and answers `/fail` with 500.
fn start_workload(topology: &Topology) {
    let netns = File::open(format!("/run/netns/{}", topology.ns)).expect("open netns");
    let addr = topology.server_addr();
    let (ready, bound) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Only this thread enters the namespace; the listener stays in it.
        setns(&netns, CloneFlags::CLONE_NEWNET).expect("setns");
        let listener = TcpListener::bind(addr).expect("bind in the namespace");
        ready.send(()).expect("signal bound");
        workload::serve(listener, workload::Config::default());
    });
    bound.recv_timeout(WAIT).expect("workload bound");
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, WAIT).expect("connect")
}

/// The black-box SERVER span of the client connection from `local`.
fn server_span(collector: &Collector, local: SocketAddr) -> Received {
    collector.wait_for(&format!("SERVER from {local}"), WAIT, |span| {
        span.kind == SERVER && has_address(span, "peer", local)
    })
}

#[test]
fn the_agent_makes_joined_spans_of_exchanges_on_a_veth() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let topology = Topology::create();
    start_workload(&topology);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let collector = Collector::start(listener).unwrap();
    let pattern = format!("tapp{}", std::process::id());
    let agent = probe::start(
        "veth",
        &[],
        &probe::config(
            collector_addr,
            &format!(
                "[kernel]\ninterfaces = [\"{pattern}\"]\n\n[workloads]\n\"{pattern}\" = \"orders\"\n"
            ),
        ),
    );
    let server = topology.server_addr();

    // 1. A request with a traceparent: its parent is that span, from the header.
    let body = "hello, workload";
    let request = format!(
        "POST /orders/42?x=1 HTTP/1.1\r\nHost: w\r\ntraceparent: 00-{TRACE_ID}-{PARENT_ID}-01\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let traced = exchange(connect(server), request.as_bytes());
    assert_eq!(traced.status, 200, "{}", traced.echo);
    assert_eq!(traced.echo["sha256"], sha256_hex(&traced.sent));
    assert_eq!(traced.echo["bytes"], traced.sent.len());
    let (resource, span) = server_span(&collector, traced.local);
    assert_eq!(string(&resource, "service.name").as_deref(), Some("orders"));
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), PARENT_ID);
    let attributes = &span.attributes;
    assert_eq!(
        string(attributes, "threadline.parent_source").as_deref(),
        Some("header")
    );
    assert_eq!(span.name, "POST /orders/{id}");
    assert_eq!(
        string(attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        string(attributes, "http.route").as_deref(),
        Some("/orders/{id}")
    );
    assert_eq!(int(attributes, "http.response.status_code"), Some(200));
    assert_eq!(
        string(attributes, "network.interface.name"),
        Some(pattern.clone())
    );
    assert_eq!(
        string(attributes, "threadline.workload").as_deref(),
        Some("orders")
    );
    assert_eq!(
        string(attributes, "threadline.node").as_deref(),
        Some("test-node")
    );
    assert!(has_address(&span, "local", server));
    assert_ne!(span.status.as_ref().map_or(0, |s| s.code), STATUS_ERROR);
    probe::assert_timed_within(&span, &traced, 2_000_000);

    // 2. No traceparent, but a sidecar span for this very connection, posted first: the
    // client plays the sidecar, so its own end is the span's network.local.*.
    let socket = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddrV4::new(topology.host_addr, 0).into())
            .unwrap();
        socket
    });
    let local = socket.local_addr().unwrap();
    let sidecar_trace = [0x5a; 16];
    let sidecar_span = [0x7b; 8];
    let now = probe::unix_ns();
    let status = probe::post(
        connect(agent.receiver),
        agent.receiver,
        &probe::sidecar_span(
            sidecar_trace,
            sidecar_span,
            local,
            server,
            (now, now + WAIT.as_nanos() as u64),
        ),
    );
    assert_eq!(status, 200);
    let stream = runtime
        .block_on(socket.connect(server))
        .unwrap()
        .into_std()
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    let joined = exchange(stream, b"GET /orders/7 HTTP/1.1\r\nHost: w\r\n\r\n");
    assert_eq!(joined.local, local);
    assert_eq!(joined.status, 200);
    assert_eq!(joined.echo["sha256"], sha256_hex(&joined.sent));
    let (_, span) = server_span(&collector, local);
    assert_eq!(
        string(&span.attributes, "threadline.parent_source").as_deref(),
        Some("four_tuple")
    );
    assert_eq!(span.trace_id, sidecar_trace);
    assert_eq!(span.parent_span_id, sidecar_span);
    assert_eq!(span.name, "GET /orders/{id}");
    probe::assert_timed_within(&span, &joined, 2_000_000);
    // The sidecar's own span is relayed too.
    collector.wait_for("the sidecar's", WAIT, |s| s.span_id == sidecar_span);

    // 3. A failure: the SERVER span of a 500 has an error status.
    let failed = exchange(connect(server), b"GET /fail HTTP/1.1\r\nHost: w\r\n\r\n");
    assert_eq!(failed.status, 500);
    assert_eq!(failed.echo["sha256"], sha256_hex(&failed.sent));
    let (_, span) = server_span(&collector, failed.local);
    assert_eq!(
        int(&span.attributes, "http.response.status_code"),
        Some(500)
    );
    assert_eq!(span.status.as_ref().map(|s| s.code), Some(STATUS_ERROR));
    // Neither a header nor a sidecar span: it starts a trace.
    assert_eq!(
        string(&span.attributes, "threadline.parent_source").as_deref(),
        Some("none")
    );
    assert!(span.parent_span_id.is_empty());
    probe::assert_timed_within(&span, &failed, 2_000_000);

    drop(agent);
    drop(topology);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

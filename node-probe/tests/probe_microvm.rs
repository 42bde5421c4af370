//! The built agent on a real microVM: a guest with its own kernel, booted by QEMU on a tap
//! device inside the test's namespace, runs the workload, which nothing on the host can
//! instrument. The agent runs inside that namespace, attached to `tap0`, exporting to a
//! collector that listens on the namespace's loopback; every client socket is made inside the
//! namespace too. The test asserts the spans: a header parent, a 4-tuple join with a posted
//! sidecar span, and the workload's own call as a CLIENT span under its in-flight server span.
//!
//! Skipped (with a message) where QEMU, the guest image or root are missing, unless
//! `THREADLINE_REQUIRE_MICROVM=1`. The namespace, QEMU and the agent are gone afterwards.

#[allow(dead_code, reason = "shared by two test binaries, each using a part")]
mod probe;

use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};

use probe::{Collector, Received, WAIT, exchange, has_address, int, sha256_hex, string};
use threadline_tests::netns::netns_exists;
use threadline_tests::{MicroVm, MicroVmOptions, or_skip};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";
/// Span kinds in OTLP.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
/// The clock offset the agent may be off by, beside the client's clock (both the host's).
const SLACK_NS: u64 = 5_000_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parent_source(span: &probe::Received) -> Option<String> {
    string(&span.1.attributes, "threadline.parent_source")
}

#[test]
fn the_agent_in_the_vms_namespace_makes_joined_spans_of_the_guests_exchanges() {
    let Some(vm) = or_skip(MicroVm::boot(MicroVmOptions::default())) else {
        return;
    };
    let namespace = vm.netns().name().to_owned();
    let netns = vm.netns();
    let in_ns_connect = |addr: SocketAddr| -> TcpStream {
        netns
            .run(|| TcpStream::connect_timeout(&addr, WAIT))
            .unwrap()
            .expect("connect inside the namespace")
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = netns
        .run(|| TcpListener::bind("127.0.0.1:0"))
        .unwrap()
        .unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let collector = Collector::start(listener).unwrap();
    let agent = probe::start(
        "microvm",
        &["ip", "netns", "exec", &namespace],
        &probe::config(
            collector_addr,
            &format!(
                "[kernel]\ninterfaces = [\"{tap}\"]\n\n[workloads]\n\"{tap}\" = \"guest\"\n",
                tap = vm.tap()
            ),
        ),
    );
    let guest: SocketAddr = vm.guest_addr().into();
    let server_span = |local: SocketAddr| -> Received {
        collector.wait_for(&format!("SERVER from {local}"), WAIT, |span| {
            span.kind == SERVER && has_address(span, "peer", local)
        })
    };

    // 1. A traceparent: the SERVER span's parent, from the header.
    let body = "hello guest";
    let request = format!(
        "POST /orders/42?x=1 HTTP/1.1\r\nHost: {guest}\r\ntraceparent: 00-{TRACE_ID}-{PARENT_ID}-01\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let traced = exchange(in_ns_connect(guest), request.as_bytes());
    assert_eq!(traced.status, 200, "{}", traced.echo);
    assert_eq!(traced.echo["sha256"], sha256_hex(&traced.sent));
    assert_eq!(traced.echo["peer"], traced.local.to_string());
    let found = server_span(traced.local);
    let (resource, span) = &found;
    assert_eq!(string(resource, "service.name").as_deref(), Some("guest"));
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), PARENT_ID);
    assert_eq!(parent_source(&found).as_deref(), Some("header"));
    assert_eq!(span.name, "POST /orders/{id}");
    assert_eq!(
        int(&span.attributes, "http.response.status_code"),
        Some(200)
    );
    assert_eq!(
        string(&span.attributes, "network.interface.name").as_deref(),
        Some(vm.tap())
    );
    assert!(has_address(span, "local", guest));
    probe::assert_timed_within(span, &traced, SLACK_NS);
    eprintln!(
        "traced: client {:.2} ms, span {:.2} ms",
        (traced.after - traced.before) as f64 / 1e6,
        (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6
    );

    // 2. No traceparent, a sidecar span for this connection posted first.
    let socket = netns
        .run(|| {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(SocketAddrV4::new(vm.host_ip(), 0).into())
                .unwrap();
            socket
        })
        .unwrap();
    let local = socket.local_addr().unwrap();
    let (sidecar_trace, sidecar_span) = ([0x3c; 16], [0x4d; 8]);
    let now = probe::unix_ns();
    let status = probe::post(
        in_ns_connect(agent.receiver),
        agent.receiver,
        &probe::sidecar_span(
            sidecar_trace,
            sidecar_span,
            local,
            guest,
            (now, now + WAIT.as_nanos() as u64),
        ),
    );
    assert_eq!(status, 200);
    let stream = runtime
        .block_on(socket.connect(guest))
        .unwrap()
        .into_std()
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    let request = format!("GET /orders/7 HTTP/1.1\r\nHost: {guest}\r\n\r\n");
    let joined = exchange(stream, request.as_bytes());
    assert_eq!(joined.status, 200);
    assert_eq!(joined.echo["sha256"], sha256_hex(&joined.sent));
    let found = server_span(local);
    assert_eq!(parent_source(&found).as_deref(), Some("four_tuple"));
    assert_eq!(found.1.trace_id, sidecar_trace);
    assert_eq!(found.1.parent_span_id, sidecar_span);
    probe::assert_timed_within(&found.1, &joined, SLACK_NS);

    // 3. The workload's own call, to a server on the tap's address: a CLIENT span whose
    // parent is the SERVER span the guest was serving meanwhile.
    let callee = netns
        .run(|| TcpListener::bind((vm.host_ip(), 0)))
        .unwrap()
        .unwrap();
    let callee_addr = callee.local_addr().unwrap();
    std::thread::spawn(move || workload::serve(callee, workload::Config::default()));
    let request = format!(
        "GET /call?to={callee_addr}&path=%2Fdownstream HTTP/1.1\r\nHost: {guest}\r\n\
         traceparent: 00-{TRACE_ID}-{PARENT_ID}-01\r\n\r\n"
    );
    let called = exchange(in_ns_connect(guest), request.as_bytes());
    assert_eq!(called.status, 200, "{}", called.echo);
    assert_eq!(called.echo["sha256"], sha256_hex(&called.sent));
    assert_eq!(called.echo["call"]["status"], 200, "{}", called.echo);
    let guest_end: SocketAddr = called.echo["call"]["local"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (_, outer) = server_span(called.local);
    assert_eq!(
        string(&outer.attributes, "url.path").as_deref(),
        Some("/call")
    );
    let found = collector.wait_for("CLIENT of the guest's call", WAIT, |span| {
        span.kind == CLIENT && has_address(span, "peer", callee_addr)
    });
    let (resource, call) = &found;
    assert_eq!(string(resource, "service.name").as_deref(), Some("guest"));
    assert_eq!(parent_source(&found).as_deref(), Some("vm_inflight"));
    assert_eq!(call.trace_id, outer.trace_id);
    assert_eq!(call.parent_span_id, outer.span_id);
    assert!(has_address(call, "local", guest_end));
    assert!(call.name.starts_with("GET"), "{}", call.name);
    assert_eq!(
        string(&call.attributes, "url.full"),
        Some(format!("http://{callee_addr}/downstream"))
    );
    assert_eq!(
        int(&call.attributes, "http.response.status_code"),
        Some(200)
    );
    // The call happened inside the exchange that made it, on the host's clock.
    assert!(
        outer.start_time_unix_nano <= call.start_time_unix_nano
            && call.end_time_unix_nano <= outer.end_time_unix_nano,
        "the call [{}, {}] outside its server span [{}, {}]",
        call.start_time_unix_nano,
        call.end_time_unix_nano,
        outer.start_time_unix_nano,
        outer.end_time_unix_nano
    );
    probe::assert_timed_within(call, &called, SLACK_NS);

    drop(agent);
    drop(vm);
    assert!(
        !netns_exists(&namespace).unwrap(),
        "{namespace} is gone afterwards"
    );
}

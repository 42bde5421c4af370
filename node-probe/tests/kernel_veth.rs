//! The probe on the real kernel, in the fast topology: an HTTP/1.1 server in a network
//! namespace the test creates (and always deletes, also when it fails), behind a veth pair
//! whose host-side end is named to match the probe's pattern, where a microVM's tap device
//! would be. Requests go from this side with std's TcpStream.
//!
//! Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON), iproute2 and the built eBPF object
//! (scripts/setup.sh).

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use aya::programs::{SchedClassifier, TcAttachType};
use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{setsockopt, sockopt};
use nix::time::{ClockId, clock_gettime};
use node_probe::kernel::{AttachMode, Probe};
use node_probe_common::{
    Counter, Direction, EventKind, PacketEvent, TAP_EGRESS, TAP_INGRESS, TcpFlags,
    TraceParentField, parse_request_head,
};
use tokio::sync::mpsc;

const PORT: u16 = 8080;
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/// What the server starts to send before it resets the connection.
const CUT_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const WAIT: Duration = Duration::from_secs(10);

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `CLOCK_MONOTONIC`, the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let now = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("clock_gettime");
    now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
}

/// A namespace with a veth pair into it; both removed on drop.
struct Topology {
    ns: String,
    host: String,
    host_addr: Ipv4Addr,
    peer_addr: Ipv4Addr,
}

impl Topology {
    /// Host side `tap<tag><pid>-<n>` (matched by [`Topology::pattern`]), 10.203.x.1/24; the
    /// namespace's end `eth0`, 10.203.x.2/24, with x from the PID and a counter so that
    /// concurrent test processes do not collide.
    fn create(tag: char) -> Self {
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let x = ((pid.wrapping_mul(7).wrapping_add(n * 31)) % 250 + 1) as u8;
        let topology = Self {
            ns: format!("npk-{tag}-{pid}-{n}"),
            host: format!("tap{tag}{pid}-{n}"),
            host_addr: Ipv4Addr::new(10, 203, x, 1),
            peer_addr: Ipv4Addr::new(10, 203, x, 2),
        };
        ip(&["netns", "add", &topology.ns]);
        ip(&["-n", &topology.ns, "link", "set", "lo", "up"]);
        topology.add_link();
        topology
    }

    fn add_link(&self) {
        ip(&[
            "link", "add", &self.host, "type", "veth", "peer", "name", "eth0", "netns", &self.ns,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", self.host_addr),
            "dev",
            &self.host,
        ]);
        ip(&["link", "set", &self.host, "up"]);
        ip(&[
            "-n",
            &self.ns,
            "addr",
            "add",
            &format!("{}/24", self.peer_addr),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &self.ns, "link", "set", "eth0", "up"]);
    }

    /// The probe's pattern: this host-side end and no other process's.
    fn pattern(&self) -> String {
        let (stem, _) = self.host.rsplit_once('-').expect("a dash in the name");
        format!("{stem}-*")
    }

    fn ifindex(&self) -> u32 {
        nix::net::if_::if_nametoindex(self.host.as_str()).expect("host-side ifindex")
    }

    fn server_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.peer_addr, PORT)
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

/// The workload: an HTTP/1.1 responder inside the namespace that records every byte each
/// connection sent it, by the client's port.
struct Server {
    received: Arc<Mutex<HashMap<u16, Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(topology: &Topology) -> Self {
        let netns = File::open(format!("/run/netns/{}", topology.ns)).expect("open netns");
        let addr = topology.server_addr();
        let received = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, bound) = std::sync::mpsc::channel();
        {
            let received = Arc::clone(&received);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                // Only this thread (and those it spawns) enters the namespace.
                setns(&netns, CloneFlags::CLONE_NEWNET).expect("setns");
                let listener = TcpListener::bind(addr).expect("bind in the namespace");
                listener
                    .set_nonblocking(true)
                    .expect("nonblocking listener");
                ready.send(()).expect("signal bound");
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let received = Arc::clone(&received);
                            thread::spawn(move || serve(stream, &received));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            });
        }
        bound.recv_timeout(WAIT).expect("server bound");
        Self { received, stop }
    }

    /// What the connection from `port` sent, once it has ended.
    fn received(&self, port: u16) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(bytes) = self.received.lock().unwrap().get(&port) {
                return bytes.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the server never finished port {port}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Answers each complete request head with [`RESPONSE`], one write each; `GET /reset`
/// gets the start of a long response and then a reset.
fn serve(mut stream: TcpStream, received: &Mutex<HashMap<u16, Vec<u8>>>) {
    stream.set_nonblocking(false).expect("blocking stream");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let port = stream.peer_addr().expect("peer").port();
    let mut all = Vec::new();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        all.extend_from_slice(&buf[..n]);
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = find(&pending, b"\r\n\r\n") {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            if head.starts_with(b"GET /reset ") {
                stream
                    .write_all(CUT_RESPONSE)
                    .expect("write the cut response");
                let linger = nix::libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // Closing with a zero linger time sends an RST.
                setsockopt(&stream, sockopt::Linger, &linger).expect("SO_LINGER");
                received.lock().unwrap().insert(port, all);
                return;
            }
            stream.write_all(RESPONSE).expect("write the response");
        }
    }
    received.lock().unwrap().insert(port, all);
}

/// One client connection: the bytes it sent, and its port.
struct Conn {
    port: u16,
    sent: Vec<u8>,
}

/// Connects with TCP_NODELAY, sends each of `writes` in its own segment (a pause between
/// them), reads `responses` responses, and closes.
fn exchange(server: SocketAddrV4, writes: &[&[u8]], responses: usize) -> Conn {
    let mut stream = TcpStream::connect_timeout(&server.into(), WAIT).expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let port = stream.local_addr().expect("local addr").port();
    let mut sent = Vec::new();
    for (i, bytes) in writes.iter().enumerate() {
        if i > 0 {
            thread::sleep(Duration::from_millis(50));
        }
        stream.write_all(bytes).expect("write");
        sent.extend_from_slice(bytes);
    }
    let mut got = vec![0u8; responses * RESPONSE.len()];
    stream.read_exact(&mut got).expect("read the responses");
    assert_eq!(got, RESPONSE.repeat(responses));
    Conn { port, sent }
}

/// Events of one connection, in ring order.
fn of(events: &[PacketEvent], port: u16) -> Vec<PacketEvent> {
    events
        .iter()
        .filter(|e| e.header.key.peer_port == port)
        .copied()
        .collect()
}

fn kind_of(event: &PacketEvent) -> (EventKind, Direction) {
    (
        event.header.kind().expect("known kind"),
        event.header.direction().expect("known direction"),
    )
}

fn find_event(events: &[PacketEvent], kind: EventKind, direction: Direction) -> PacketEvent {
    *events
        .iter()
        .find(|e| kind_of(e) == (kind, direction))
        .unwrap_or_else(|| {
            panic!(
                "no {kind:?} {direction:?} among {:?}",
                events.iter().map(kind_of).collect::<Vec<_>>()
            )
        })
}

/// Reads events until `done` says the list is complete.
fn collect_until(
    rx: &mut mpsc::Receiver<PacketEvent>,
    events: &mut Vec<PacketEvent>,
    done: impl Fn(&[PacketEvent]) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !done(events) {
        match rx.try_recv() {
            Ok(event) => events.push(event),
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "events incomplete: {:?}",
                    events
                        .iter()
                        .map(|e| (e.header.key.peer_port, kind_of(e)))
                        .collect::<Vec<_>>()
                );
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn closed(events: &[PacketEvent], port: u16) -> bool {
    let conn = of(events, port);
    let fins = |d| conn.iter().any(|e| kind_of(e) == (EventKind::Fin, d));
    fins(Direction::ToWorkload) && fins(Direction::FromWorkload)
}

fn tcx_programs(interface: &str, attach: TcAttachType) -> Vec<String> {
    let (_, programs) = SchedClassifier::query_tcx(interface, attach).expect("query tcx");
    programs
        .iter()
        .map(|p| p.name_as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The handshake, request and response of a connection that sent one request and got one
/// response: the 4-tuple, interface, sequence and acknowledgement numbers, times, and the
/// captured bytes against what was really sent.
fn check_simple_exchange(
    events: &[PacketEvent],
    topology: &Topology,
    conn: &Conn,
    ifindex: u32,
    window: (u64, u64),
) -> PacketEvent {
    let mine = of(events, conn.port);
    for event in &mine {
        let h = &event.header;
        assert_eq!(
            h.key.workload(),
            Some(SocketAddr::V4(topology.server_addr()))
        );
        assert_eq!(
            h.key.peer(),
            Some(SocketAddr::V4(SocketAddrV4::new(
                topology.host_addr,
                conn.port
            )))
        );
        assert_eq!(h.ifindex, ifindex);
        assert!(
            (window.0..=window.1).contains(&h.ktime_ns),
            "ktime {} outside the test's own clock {window:?}",
            h.ktime_ns
        );
    }
    let syn = find_event(&mine, EventKind::Syn, Direction::ToWorkload);
    let syn_ack = find_event(&mine, EventKind::Syn, Direction::FromWorkload);
    let request = find_event(&mine, EventKind::RequestStart, Direction::ToWorkload);
    let response = find_event(&mine, EventKind::ResponseStart, Direction::FromWorkload);
    assert!(
        syn.header.tcp_flags().has(TcpFlags::SYN) && !syn.header.tcp_flags().has(TcpFlags::ACK)
    );
    assert!(
        syn_ack
            .header
            .tcp_flags()
            .has(TcpFlags::SYN | TcpFlags::ACK)
    );
    assert_eq!(syn_ack.header.ack, syn.header.seq.wrapping_add(1));
    assert_eq!(request.header.seq, syn.header.seq.wrapping_add(1));
    assert_eq!(request.header.ack, syn_ack.header.seq.wrapping_add(1));
    assert_eq!(response.header.seq, syn_ack.header.seq.wrapping_add(1));
    assert_eq!(
        response.header.ack,
        request.header.seq.wrapping_add(conn.sent.len() as u32)
    );
    assert!(syn.header.ktime_ns < syn_ack.header.ktime_ns);
    assert!(syn_ack.header.ktime_ns < request.header.ktime_ns);
    assert!(request.header.ktime_ns < response.header.ktime_ns);
    assert_eq!(request.header.payload_len as usize, conn.sent.len());
    assert_eq!(request.prefix(), Some(&conn.sent[..]));
    assert_eq!(response.prefix(), Some(RESPONSE));
    assert_eq!(syn.header.flow.opened_ns, syn.header.ktime_ns);
    assert_eq!(
        request.header.flow.to_workload.start_seq,
        request.header.seq
    );
    request
}

#[test]
fn the_probe_sees_exchanges_on_a_veth_and_survives_its_removal() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let topology = Topology::create('v');
    let server = Server::start(&topology);
    let ifindex = topology.ifindex();
    let (tx, mut rx) = mpsc::channel(4096);
    let probe = {
        let _enter = runtime.enter();
        Probe::start(&[topology.pattern()], tx).expect("start the probe")
    };
    assert_eq!(probe.attached(), [(ifindex, topology.host.clone())]);
    // Both programs, first in TCX order (nothing else is attached here).
    assert_eq!(
        tcx_programs(&topology.host, TcAttachType::Ingress)
            .first()
            .map(String::as_str),
        Some(TAP_INGRESS)
    );
    assert_eq!(
        tcx_programs(&topology.host, TcAttachType::Egress)
            .first()
            .map(String::as_str),
        Some(TAP_EGRESS)
    );

    let before = monotonic_ns();
    let addr = topology.server_addr();
    let plain = exchange(addr, &[b"GET /plain HTTP/1.1\r\nHost: w\r\n\r\n"], 1);
    let traced_request =
        format!("GET /traced?a=1 HTTP/1.1\r\nHost: w\r\ntraceparent: {TRACEPARENT}\r\n\r\n");
    let traced = exchange(addr, &[traced_request.as_bytes()], 1);
    let split_line = b"GET /split HTTP/1.1\r\n";
    let split_rest = format!("Host: w\r\ntraceparent: {TRACEPARENT}\r\n\r\n");
    let split = exchange(addr, &[split_line, split_rest.as_bytes()], 1);
    let pipelined = exchange(
        addr,
        &[b"GET /one HTTP/1.1\r\nHost: w\r\n\r\nGET /two HTTP/1.1\r\nHost: w\r\n\r\n"],
        2,
    );

    // Garbage that starts no HTTP message (a TLS-like record), then a half-close.
    let garbage: Vec<u8> = [0x16, 0x03, 0x01]
        .into_iter()
        .chain((0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8))
        .collect();
    let garbage_port = {
        let mut stream = TcpStream::connect_timeout(&addr.into(), WAIT).expect("connect");
        stream.write_all(&garbage).expect("write garbage");
        stream.shutdown(Shutdown::Write).expect("half-close");
        let mut rest = Vec::new();
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        stream
            .read_to_end(&mut rest)
            .expect("read to the server's close");
        assert!(rest.is_empty());
        stream.local_addr().expect("local addr").port()
    };

    // The server resets the connection in the middle of its response.
    let reset_request = b"GET /reset HTTP/1.1\r\nHost: w\r\n\r\n";
    let reset_port = {
        let mut stream = TcpStream::connect_timeout(&addr.into(), WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        stream.write_all(reset_request).expect("write");
        let mut rest = Vec::new();
        let error = stream.read_to_end(&mut rest).expect_err("a reset");
        assert_eq!(error.kind(), ErrorKind::ConnectionReset);
        stream.local_addr().expect("local addr").port()
    };

    let mut events = Vec::new();
    collect_until(&mut rx, &mut events, |events| {
        [
            plain.port,
            traced.port,
            split.port,
            pipelined.port,
            garbage_port,
        ]
        .iter()
        .all(|&port| closed(events, port))
            && of(events, reset_port)
                .iter()
                .any(|e| kind_of(e) == (EventKind::Rst, Direction::FromWorkload))
    });
    let window = (before, monotonic_ns());

    // What reached the workload is exactly what was sent.
    for conn in [&plain, &traced, &split, &pipelined] {
        assert_eq!(server.received(conn.port), conn.sent, "port {}", conn.port);
    }
    assert_eq!(server.received(garbage_port), garbage);
    assert_eq!(server.received(reset_port), reset_request);

    check_simple_exchange(&events, &topology, &plain, ifindex, window);
    let request = check_simple_exchange(&events, &topology, &traced, ifindex, window);
    let head = parse_request_head(request.prefix().unwrap()).expect("a request head");
    assert_eq!(head.method, b"GET");
    assert_eq!(head.target, b"/traced?a=1");
    assert_eq!(
        head.traceparent,
        TraceParentField::Value(TRACEPARENT.as_bytes())
    );
    assert!(head.complete_head);

    // The request line in one segment, the rest of the head in the next: a start and a
    // continuation, each with exactly its segment's bytes.
    let mine = of(&events, split.port);
    let start = find_event(&mine, EventKind::RequestStart, Direction::ToWorkload);
    let more = find_event(&mine, EventKind::Continuation, Direction::ToWorkload);
    assert_eq!(start.prefix(), Some(&split_line[..]));
    assert_eq!(more.prefix(), Some(split_rest.as_bytes()));
    assert_eq!(
        more.header.seq,
        start.header.seq.wrapping_add(split_line.len() as u32)
    );
    assert!(start.header.ktime_ns < more.header.ktime_ns);
    assert!(
        !parse_request_head(start.prefix().unwrap())
            .unwrap()
            .complete_head
    );

    // Both pipelined requests arrive in one segment: one start carrying both.
    let mine = of(&events, pipelined.port);
    let starts: Vec<_> = mine
        .iter()
        .filter(|e| kind_of(e) == (EventKind::RequestStart, Direction::ToWorkload))
        .collect();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].prefix(), Some(&pipelined.sent[..]));
    let response = find_event(&mine, EventKind::ResponseStart, Direction::FromWorkload);
    assert!(response.prefix().unwrap().starts_with(RESPONSE));

    // Garbage emits no message start.
    let mine = of(&events, garbage_port);
    assert!(
        mine.iter().all(|e| !matches!(
            e.header.kind(),
            Some(EventKind::RequestStart | EventKind::ResponseStart | EventKind::Continuation)
        )),
        "{:?}",
        mine.iter().map(kind_of).collect::<Vec<_>>()
    );

    // The reset: the request and the start of the response, then the RST from the workload.
    let mine = of(&events, reset_port);
    let response = find_event(&mine, EventKind::ResponseStart, Direction::FromWorkload);
    assert_eq!(response.prefix(), Some(CUT_RESPONSE));
    let rst = find_event(&mine, EventKind::Rst, Direction::FromWorkload);
    assert!(rst.header.ktime_ns >= response.header.ktime_ns);

    // The kernel's state of the connection, read through the FLOWS map.
    let flow = probe
        .flow(&request.header.key)
        .expect("the traced connection's state");
    assert_eq!(flow.to_workload.start_seq, request.header.seq);
    assert_eq!(flow.opened_ns, request.header.flow.opened_ns);

    let kernel = probe.kernel_counters();
    let user = probe.user_counters();
    let counter = |c: Counter| kernel[c.index() as usize];
    assert!(counter(Counter::PacketsSeen) > events.len() as u64);
    assert_eq!(counter(Counter::RingbufFull), 0);
    assert!(counter(Counter::NonHttpPayloads) > 0, "the garbage");
    assert_eq!(counter(Counter::EventsEmitted), user.ring_records);
    assert_eq!(user.ring_records, events.len() as u64);
    assert_eq!((user.undecodable, user.channel_dropped), (0, 0));
    assert_eq!((user.attached, user.detached), (1, 0));

    // The interface vanishes while attached: counted, forgotten, and the probe goes on.
    ip(&["link", "del", &topology.host]);
    wait_for("the detach", || {
        probe.user_counters().interfaces_vanished == 1
    });
    assert!(probe.attached().is_empty());
    assert_eq!(probe.user_counters().detached, 1);

    // It comes back (a new interface, a new index): attached again from its link event.
    topology.add_link();
    let ifindex = topology.ifindex();
    wait_for("the new attachment", || {
        probe.attached() == [(ifindex, topology.host.clone())]
    });
    let again = exchange(addr, &[b"GET /again HTTP/1.1\r\nHost: w\r\n\r\n"], 1);
    collect_until(&mut rx, &mut events, |events| closed(events, again.port));
    check_simple_exchange(
        &events,
        &topology,
        &again,
        ifindex,
        (before, monotonic_ns()),
    );
    assert_eq!(probe.user_counters().attached, 2);

    // A clean shutdown detaches both programs.
    runtime.block_on(probe.shutdown());
    assert!(
        !tcx_programs(&topology.host, TcAttachType::Ingress)
            .iter()
            .any(|p| p == TAP_INGRESS)
    );
    assert!(
        !tcx_programs(&topology.host, TcAttachType::Egress)
            .iter()
            .any(|p| p == TAP_EGRESS)
    );
}

/// `tc filter show dev NAME ingress|egress`.
fn tc_filters(interface: &str, direction: &str) -> String {
    let output = Command::new("tc")
        .args(["filter", "show", "dev", interface, direction])
        .output()
        .expect("run tc");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_clsact_fallback_attaches_observes_and_detaches() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let topology = Topology::create('c');
    let server = Server::start(&topology);
    let ifindex = topology.ifindex();
    let (tx, mut rx) = mpsc::channel(1024);
    let probe = {
        let _enter = runtime.enter();
        Probe::start_with(&[topology.pattern()], tx, AttachMode::Netlink).expect("start the probe")
    };
    assert!(tc_filters(&topology.host, "ingress").contains(TAP_INGRESS));
    assert!(tc_filters(&topology.host, "egress").contains(TAP_EGRESS));
    assert!(tcx_programs(&topology.host, TcAttachType::Ingress).is_empty());

    let before = monotonic_ns();
    let conn = exchange(
        topology.server_addr(),
        &[b"GET /clsact HTTP/1.1\r\nHost: c\r\n\r\n"],
        1,
    );
    let mut events = Vec::new();
    collect_until(&mut rx, &mut events, |events| closed(events, conn.port));
    check_simple_exchange(&events, &topology, &conn, ifindex, (before, monotonic_ns()));
    assert_eq!(server.received(conn.port), conn.sent);

    // Dropping the probe detaches too.
    drop(probe);
    assert!(!tc_filters(&topology.host, "ingress").contains(TAP_INGRESS));
    assert!(!tc_filters(&topology.host, "egress").contains(TAP_EGRESS));
}

//! The builder and the span maker on events made by the kernel's own steps
//! ([`crate::testing::Kernel`]).

use node_probe_common::{Direction, EventKind, PacketEvent};
use trace_core::IdGenerator;
use trace_core::route::RouteGrouper;
use trace_core::semconv::{self, threadline};
use trace_core::span::{KeyValue, Span, SpanKind, StatusCode, Value};

use super::interfaces::InterfaceNames;
use super::*;
use crate::clock::KernelClock;
use crate::clock::tests::TestClocks;
use crate::metrics::Counts;
use crate::testing::{FIN, Kernel, PSH, RST, Tcp};

use Direction::{FromWorkload as FROM, ToWorkload as TO};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const MS: u64 = 1_000_000;

struct Names;

impl InterfaceNames for Names {
    fn name(&self, ifindex: u32) -> Option<String> {
        (ifindex == 7).then(|| "fc-orders-0".to_owned())
    }
}

/// The builder, with the kernel beside it.
struct Probe {
    kernel: Kernel,
    builder: ExchangeBuilder,
    done: Vec<Exchange>,
}

impl Probe {
    fn new() -> Self {
        Self::with(Limits::default())
    }

    fn with(limits: Limits) -> Self {
        Self {
            kernel: Kernel::default(),
            builder: ExchangeBuilder::new(limits, Counts::detached(), IdGenerator::from_seed(1)),
            done: Vec::new(),
        }
    }

    fn feed(&mut self, events: impl IntoIterator<Item = PacketEvent>) {
        for event in events {
            self.builder.handle(&event, &mut self.done);
        }
    }

    fn send(&mut self, tcp: &mut Tcp, direction: Direction, flags: u8, payload: &[u8]) {
        let event = self.kernel.send(tcp, direction, flags, payload);
        self.feed(event);
    }

    fn count(&self, count: ExchangeCount) -> u64 {
        self.builder.counts().get(count)
    }

    fn tick(&mut self) {
        let now = self.kernel.now;
        self.builder.tick(now, &self.kernel, &mut self.done);
    }
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn maker() -> SpanMaker {
    SpanMaker::new(
        RouteGrouper::new(&["/users/{id}"]).unwrap(),
        vec![KeyValue::new(threadline::NODE, "node-1")],
        Interfaces::new(
            Box::new(Names),
            WorkloadMap::new([("fc-orders-*".to_owned(), "orders".to_owned())]),
            "microvm".into(),
            vec![],
        ),
    )
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value)
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attr(span, key)? {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[test]
fn an_inbound_exchange_is_a_server_span() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(8080, 40_000);
    let handshake = p.kernel.handshake(&mut tcp, TO);
    p.feed(handshake);
    let request = format!(
        "GET /users/42?x=1 HTTP/1.1\r\nHost: orders:8080\r\nUser-Agent: curl/8\r\ntraceparent: {TP}\r\n\r\n"
    );
    p.send(&mut tcp, TO, PSH, request.as_bytes());
    let start = p.kernel.now;
    p.kernel.advance(3 * MS);
    p.send(&mut tcp, FROM, PSH, &response("200 OK", "hello"));
    let end = p.kernel.now;
    assert_eq!(p.done.len(), 1, "the response's length says it is complete");
    let exchange = p.done.pop().unwrap();
    assert_eq!(exchange.kind, SpanKind::Server);
    assert_eq!((exchange.start_ns, exchange.end_ns), (start, end));
    assert_eq!(
        (exchange.status, exchange.outcome),
        (Some(200), Outcome::Complete)
    );
    assert!(matches!(exchange.request.parent, SeenParent::Valid(..)));

    let clocks = TestClocks::default();
    clocks.wall_minus_mono.store(
        1_700_000_000_000_000_000,
        std::sync::atomic::Ordering::Relaxed,
    );
    let clock = KernelClock::new(clocks);
    let black_box = maker().make(exchange, &clock);
    let span = &black_box.span;
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.start_unix_nano, 1_700_000_000_000_000_000 + start);
    assert_eq!(span.duration_nanos(), 3 * MS);
    for (key, want) in [
        (semconv::HTTP_REQUEST_METHOD, "GET"),
        (semconv::URL_PATH, "/users/42"),
        (semconv::HTTP_ROUTE, "/users/{id}"),
        (semconv::HTTP_RESPONSE_STATUS_CODE, "200"),
        (semconv::SERVER_ADDRESS, "orders"),
        (semconv::NETWORK_PROTOCOL_VERSION, "1.1"),
        (semconv::USER_AGENT_ORIGINAL, "curl/8"),
        (semconv::NETWORK_PEER_ADDRESS, "10.0.0.1"),
        (semconv::NETWORK_PEER_PORT, "40000"),
        (semconv::CLIENT_ADDRESS, "10.0.0.1"),
        (semconv::NETWORK_LOCAL_ADDRESS, "10.0.0.2"),
        (semconv::NETWORK_LOCAL_PORT, "8080"),
        (span::NETWORK_INTERFACE_NAME, "fc-orders-0"),
        (threadline::WORKLOAD, "orders"),
        (threadline::NODE, "node-1"),
    ] {
        assert_eq!(text(span, key).as_deref(), Some(want), "{key}");
    }
    assert_eq!(span.status.code, StatusCode::Unset);
    assert_eq!(span.context.span_id, black_box.span.span_id());
    let service = black_box
        .resource
        .attributes
        .iter()
        .find(|kv| kv.key == semconv::SERVICE_NAME);
    assert_eq!(service.map(|kv| &kv.value), Some(&Value::from("orders")));
}

#[test]
fn an_outbound_call_is_a_client_span_ended_by_the_next_requests_state() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(51_000, 443);
    let handshake = p.kernel.handshake(&mut tcp, FROM);
    p.feed(handshake);
    p.send(
        &mut tcp,
        FROM,
        PSH,
        b"POST /v1/items HTTP/1.1\r\nHost: api\r\n\r\n",
    );
    let start = p.kernel.now;
    p.kernel.advance(2 * MS);
    p.send(
        &mut tcp,
        TO,
        PSH,
        b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    p.kernel.advance(5 * MS);
    // A body segment: no event, only the kernel's flow state moves.
    p.send(&mut tcp, TO, PSH, b"5\r\nhello\r\n0\r\n\r\n");
    let last_byte = p.kernel.now;
    assert!(
        p.done.is_empty(),
        "a chunked response's end is not known yet"
    );
    p.kernel.advance(100 * MS);
    p.send(
        &mut tcp,
        FROM,
        PSH,
        b"GET /next HTTP/1.1\r\nHost: api\r\n\r\n",
    );
    p.kernel.advance(MS);
    p.send(&mut tcp, TO, PSH, &response("200 OK", ""));
    assert_eq!(p.done.len(), 2);
    let first = &p.done[0];
    assert_eq!(first.kind, SpanKind::Client);
    assert_eq!((first.start_ns, first.end_ns), (start, last_byte));
    let span = maker()
        .make(first.clone(), &KernelClock::new(TestClocks::default()))
        .span;
    assert_eq!(span.kind, SpanKind::Client);
    assert_eq!(
        span.status.code,
        StatusCode::Error,
        "a CLIENT 5xx is an error"
    );
    assert_eq!(
        text(&span, semconv::URL_FULL).as_deref(),
        Some("http://api/v1/items")
    );
    assert_eq!(attr(&span, semconv::CLIENT_ADDRESS), None);
    assert_eq!(
        text(&span, semconv::NETWORK_PEER_PORT).as_deref(),
        Some("443")
    );
}

#[test]
fn a_request_line_split_across_segments_is_reassembled() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(8080, 40_001);
    let handshake = p.kernel.handshake(&mut tcp, TO);
    p.feed(handshake);
    p.send(&mut tcp, TO, PSH, b"GET /users/12345/ord");
    p.send(&mut tcp, TO, PSH, b"ers HTTP/1.1\r\nHost: h\r\n");
    // A retransmit of the second segment, which the kernel drops itself.
    let retransmit = p.kernel.send_at(
        &tcp,
        TO,
        tcp.seq_to - 24,
        PSH,
        b"ers HTTP/1.1\r\nHost: h\r\n",
    );
    assert!(retransmit.is_none());
    assert_eq!(p.builder.assemblies(), 1);
    p.send(
        &mut tcp,
        TO,
        PSH,
        format!("traceparent: {TP}\r\n\r\n").as_bytes(),
    );
    p.send(&mut tcp, FROM, PSH, &response("204 No Content", ""));
    assert_eq!(p.builder.assemblies(), 0);
    let exchange = &p.done[0];
    assert_eq!(exchange.request.target, "/users/12345/orders");
    assert_eq!(exchange.request.host.as_deref(), Some("h"));
    assert!(matches!(exchange.request.parent, SeenParent::Valid(..)));
    assert_eq!(p.count(ExchangeCount::HeadsSplit), 1);
    assert_eq!(p.count(ExchangeCount::HeadsReassembled), 1);
}

#[test]
fn pipelined_requests_pair_in_order() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(8080, 40_002);
    let handshake = p.kernel.handshake(&mut tcp, TO);
    p.feed(handshake);
    p.send(&mut tcp, TO, PSH, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    p.send(&mut tcp, TO, PSH, b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    p.kernel.advance(MS);
    p.send(
        &mut tcp,
        FROM,
        PSH,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    p.kernel.advance(MS);
    let second_start = p.kernel.now;
    p.send(&mut tcp, FROM, PSH, &response("404 Not Found", ""));
    assert_eq!(p.count(ExchangeCount::Pipelined), 1);
    let pairs: Vec<_> = p
        .done
        .iter()
        .map(|e| (e.request.target.as_str(), e.status, e.pipelined))
        .collect();
    assert_eq!(pairs, [("/a", Some(200), false), ("/b", Some(404), true)]);
    assert_eq!(
        p.done[0].end_ns, second_start,
        "ended by the next response's start"
    );
}

#[test]
fn retransmitted_starts_are_dropped() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(8080, 40_003);
    let handshake = p.kernel.handshake(&mut tcp, TO);
    p.feed(handshake);
    let request = b"GET /once HTTP/1.1\r\nHost: h\r\n\r\n";
    let seq = tcp.seq_to;
    p.send(&mut tcp, TO, PSH, request);
    // The kernel's entry was evicted, so it emits the retransmitted start again.
    p.kernel.flows.clear();
    let again = p.kernel.send_at(&tcp, TO, seq, PSH, request);
    assert_eq!(again.unwrap().header.kind(), Some(EventKind::RequestStart));
    p.feed(again);
    assert_eq!(p.count(ExchangeCount::Retransmits), 1);
    assert_eq!(p.count(ExchangeCount::Requests), 1);
}

#[test]
fn a_reset_mid_response_ends_the_exchange_with_an_error() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(8080, 40_004);
    let handshake = p.kernel.handshake(&mut tcp, TO);
    p.feed(handshake);
    p.send(&mut tcp, TO, PSH, b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
    p.send(
        &mut tcp,
        FROM,
        PSH,
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial",
    );
    p.kernel.advance(4 * MS);
    let reset_at = p.kernel.now;
    p.send(&mut tcp, FROM, RST, b"");
    let exchange = p.done.pop().unwrap();
    assert_eq!(
        (exchange.outcome, exchange.status, exchange.end_ns),
        (Outcome::Reset, Some(200), reset_at)
    );
    let span = maker()
        .make(exchange, &KernelClock::new(TestClocks::default()))
        .span;
    assert_eq!(span.status.code, StatusCode::Error);
    assert_eq!(
        text(&span, semconv::ERROR_TYPE).as_deref(),
        Some(span::CONNECTION_RESET)
    );
    assert_eq!(p.count(ExchangeCount::Resets), 1);
    assert_eq!(
        p.builder.connections(),
        0,
        "a reset connection is forgotten"
    );
}

#[test]
fn a_close_before_any_response_is_no_response() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(8080, 40_005);
    let handshake = p.kernel.handshake(&mut tcp, TO);
    p.feed(handshake);
    p.send(&mut tcp, TO, PSH, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    p.send(&mut tcp, FROM, FIN, b"");
    assert_eq!(p.done.pop().unwrap().outcome, Outcome::NoResponse);
    // And a response that never comes times out.
    let mut p = Probe::with(Limits {
        response_timeout_ns: 10 * MS,
        ..Limits::default()
    });
    let mut tcp = Tcp::new(8080, 40_006);
    p.send(&mut tcp, TO, PSH, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    p.kernel.advance(11 * MS);
    p.tick();
    assert_eq!(p.done.pop().unwrap().outcome, Outcome::Timeout);
}

#[test]
fn garbage_tls_and_unreadable_events_are_counted_not_paired() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(8443, 40_007);
    let handshake = p.kernel.handshake(&mut tcp, TO);
    p.feed(handshake);
    let hello = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0, 0,
    ];
    assert!(
        p.kernel.send(&mut tcp, TO, PSH, &hello).is_none(),
        "TLS emits nothing"
    );
    // A start the kernel's short recogniser took, which the full parser refuses.
    let mut tcp = Tcp::new(8080, 40_008);
    let fake = p
        .kernel
        .send(&mut tcp, TO, PSH, b"GET /x HTTP/9.9\r\n\r\n")
        .unwrap();
    p.feed([fake]);
    assert_eq!(p.count(ExchangeCount::MalformedRequests), 1);
    let mut odd = fake;
    odd.header.kind = 99;
    p.feed([odd]);
    let mut odd = fake;
    odd.header.prefix_start = 190;
    odd.header.kind = EventKind::RequestStart as u8;
    odd.header.seq += 1000;
    p.feed([odd]);
    assert_eq!(p.count(ExchangeCount::UnknownEvents), 2);
    // A response where no request waits.
    let mut tcp = Tcp::new(8080, 40_009);
    let response = p.kernel.send(&mut tcp, FROM, PSH, &response("200 OK", ""));
    p.feed(response);
    assert_eq!(p.count(ExchangeCount::UnmatchedResponses), 1);
    // Arbitrary bytes as events: nothing panics.
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..20_000 {
        let mut bytes = [0u8; 336];
        rng.fill(&mut bytes);
        if let Some(mut event) = PacketEvent::decode(&bytes) {
            event.header.kind = rng.u8(0..8);
            event.header.direction = rng.u8(0..3);
            event.header.key.family = 4;
            event.header.key.peer_port = rng.u16(0..4);
            p.builder.handle(&event, &mut p.done);
        }
    }
    p.builder.tick(u64::MAX, &p.kernel, &mut p.done);
}

#[test]
fn a_huge_header_block_is_read_as_far_as_captured() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(8080, 40_010);
    let handshake = p.kernel.handshake(&mut tcp, TO);
    p.feed(handshake);
    let mut head = "GET /huge HTTP/1.1\r\nHost: h\r\n".to_owned();
    for i in 0..200 {
        head.push_str(&format!("X-Filler-{i}: {}\r\n", "v".repeat(40)));
    }
    head.push_str(&format!("traceparent: {TP}\r\n\r\n"));
    p.send(&mut tcp, TO, PSH, head.as_bytes());
    p.send(&mut tcp, FROM, PSH, &response("200 OK", "ok"));
    assert_eq!(p.count(ExchangeCount::HeadsCut), 1);
    let exchange = &p.done[0];
    assert_eq!(exchange.request.target, "/huge");
    assert_eq!(
        exchange.request.parent,
        SeenParent::Absent,
        "beyond the capture"
    );
}

#[test]
fn a_quiet_response_ends_at_its_last_byte_from_the_kernel_map() {
    let mut p = Probe::with(Limits {
        quiet_ns: 50 * MS,
        ..Limits::default()
    });
    let mut tcp = Tcp::new(8080, 40_011);
    let handshake = p.kernel.handshake(&mut tcp, TO);
    p.feed(handshake);
    p.send(
        &mut tcp,
        TO,
        PSH,
        b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let start = p.kernel.now;
    p.kernel.advance(MS);
    p.send(
        &mut tcp,
        FROM,
        PSH,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..5 {
        p.kernel.advance(7 * MS);
        p.send(&mut tcp, FROM, PSH, b"1\r\nx\r\n");
    }
    let last = p.kernel.now;
    p.kernel.advance(20 * MS);
    p.tick();
    assert!(p.done.is_empty(), "not quiet for long enough yet");
    p.kernel.advance(40 * MS);
    p.tick();
    let exchange = p.done.pop().unwrap();
    assert_eq!((exchange.start_ns, exchange.end_ns), (start, last));
    // Plausible against the wall clock: the span lasts what the kernel saw, within the
    // offset's sampling error of the clocks it was converted with.
    let clock = KernelClock::new(crate::clock::SystemClocks);
    let span = maker().make(exchange, &clock).span;
    assert_eq!(span.duration_nanos(), last - start);
    assert!(span.end_unix_nano >= span.start_unix_nano);
}

#[test]
fn memory_is_bounded_and_drops_are_counted() {
    let mut p = Probe::with(Limits {
        max_connections: 4,
        max_open_per_connection: 2,
        max_assemblies: 1,
        idle_ns: 10 * MS,
        ..Limits::default()
    });
    for port in 0..10 {
        let mut tcp = Tcp::new(8080, 30_000 + port);
        p.send(&mut tcp, TO, PSH, b"GET /a/split/x");
    }
    assert_eq!(p.builder.connections(), 4);
    assert_eq!(p.count(ExchangeCount::ConnectionsRefused), 6);
    assert_eq!(p.builder.assemblies(), 1);
    assert_eq!(p.count(ExchangeCount::AssembliesRefused), 3);
    let mut tcp = Tcp::new(8080, 30_000);
    tcp.seq_to += 14;
    for _ in 0..3 {
        p.send(&mut tcp, TO, PSH, b"GET /more HTTP/1.1\r\n\r\n");
    }
    assert_eq!(p.count(ExchangeCount::PipelineOverflow), 2);
    // Connections with nothing open are forgotten once idle.
    let mut p = Probe::with(Limits {
        idle_ns: 10 * MS,
        ..Limits::default()
    });
    let mut tcp = Tcp::new(8080, 30_100);
    p.send(&mut tcp, TO, PSH, b"GET / HTTP/1.1\r\n\r\n");
    p.send(&mut tcp, FROM, PSH, &response("200 OK", ""));
    p.kernel.advance(11 * MS);
    p.tick();
    assert_eq!(p.builder.connections(), 0);
}

#[test]
fn a_call_made_while_serving_names_the_server_exchange() {
    let mut p = Probe::new();
    let mut inbound = Tcp::new(8080, 40_020);
    let handshake = p.kernel.handshake(&mut inbound, TO);
    p.feed(handshake);
    p.send(
        &mut inbound,
        TO,
        PSH,
        b"GET /orders HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let mut outbound = Tcp::new(52_000, 5432);
    let handshake = p.kernel.handshake(&mut outbound, FROM);
    p.feed(handshake);
    p.send(
        &mut outbound,
        FROM,
        PSH,
        b"GET /stock HTTP/1.1\r\nHost: db\r\n\r\n",
    );
    p.send(&mut outbound, TO, PSH, &response("200 OK", ""));
    p.send(&mut inbound, FROM, PSH, &response("200 OK", ""));
    let [call, served] = &p.done[..] else {
        panic!("{:?}", p.done)
    };
    assert_eq!(call.kind, SpanKind::Client);
    assert_eq!(served.kind, SpanKind::Server);
    assert_eq!(call.inflight_parent, Some(served.span_id));
    assert_eq!(served.inflight_parent, None);
}

#[test]
fn interim_responses_wait_for_the_final_one_and_upgrades_end_the_tracking() {
    let mut p = Probe::new();
    let mut tcp = Tcp::new(8080, 40_030);
    p.send(
        &mut tcp,
        TO,
        PSH,
        b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    );
    p.send(&mut tcp, FROM, PSH, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(p.done.is_empty());
    p.send(&mut tcp, TO, PSH, b"body");
    p.send(&mut tcp, FROM, PSH, &response("201 Created", ""));
    assert_eq!(p.done.pop().unwrap().status, Some(201));
    assert_eq!(p.count(ExchangeCount::InterimResponses), 1);
    p.send(
        &mut tcp,
        TO,
        PSH,
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    );
    p.send(
        &mut tcp,
        FROM,
        PSH,
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    );
    assert_eq!(p.done.pop().unwrap().status, Some(101));
    // Frames of the new protocol that look like a request are not taken for one.
    p.send(&mut tcp, TO, PSH, b"GET /not-http HTTP/1.1\r\n\r\n");
    assert_eq!(p.count(ExchangeCount::Requests), 2);
}

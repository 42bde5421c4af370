use std::sync::Arc;

use trace_core::otlp::proto::common::v1::{AnyValue, KeyValue as ProtoKeyValue, any_value};
use trace_core::otlp::proto::trace::v1::Span as ProtoSpan;
use trace_core::sampling::{SamplingConfig, SamplingMode};
use trace_core::semconv::{self, threadline};
use trace_core::span::{Resource, Span, SpanKind, Value};
use trace_core::w3c::{TraceParent, TraceState};
use trace_core::{IdGenerator, SpanContext, SpanId, TraceId};

use super::*;
use crate::exchange::{BlackBoxSpan, SeenParent};
use crate::metrics::Counts;
use crate::testing::Tcp;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;
/// Wall-clock times of the spans: any fixed moment.
const T0: u64 = 1_700_000_000 * SEC;

fn joiner_with(settings: JoinSettings, percentage: f32) -> Joiner {
    let sampler = SamplingConfig {
        mode: SamplingMode::HashSeed,
        percentage,
        ..SamplingConfig::default()
    }
    .build()
    .unwrap();
    Joiner::new(
        settings,
        sampler,
        IdGenerator::from_seed(9),
        Counts::detached(),
        Counts::detached(),
    )
}

fn joiner() -> Joiner {
    joiner_with(JoinSettings::default(), 100.0)
}

fn black_box(kind: SpanKind, tcp: &Tcp, span_id: u8, start: u64, end: u64) -> BlackBoxSpan {
    BlackBoxSpan {
        span: Span {
            kind,
            context: SpanContext {
                span_id: SpanId::from_bytes([span_id; 8]),
                ..SpanContext::default()
            },
            start_unix_nano: start,
            end_unix_nano: end,
            ..Span::default()
        },
        resource: Arc::new(Resource::default()),
        key: tcp.key(),
        header: SeenParent::Absent,
        inflight_parent: None,
    }
}

fn kv(key: &str, value: any_value::Value) -> ProtoKeyValue {
    ProtoKeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A sidecar's black-box span on its upstream connection to the workload of `tcp`.
fn sidecar(tcp: &Tcp, trace: u8, span: u8, start: u64, end: u64) -> ProtoSpan {
    let ip = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_string();
    ProtoSpan {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        trace_state: "ot=th:8".into(),
        flags: 0x301,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: vec![
            kv(
                threadline::PROPAGATION,
                any_value::Value::StringValue("black_box".into()),
            ),
            kv(
                semconv::NETWORK_LOCAL_ADDRESS,
                any_value::Value::StringValue(ip(tcp.peer.0)),
            ),
            kv(
                semconv::NETWORK_LOCAL_PORT,
                any_value::Value::IntValue(tcp.peer.1.into()),
            ),
            kv(
                semconv::NETWORK_PEER_ADDRESS,
                any_value::Value::StringValue(ip(tcp.workload.0)),
            ),
            kv(
                semconv::NETWORK_PEER_PORT,
                any_value::Value::IntValue(tcp.workload.1.into()),
            ),
        ],
        ..Default::default()
    }
}

fn source(span: &Span) -> Option<&Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == threadline::PARENT_SOURCE)
        .map(|kv| &kv.value)
}

#[test]
fn the_header_comes_first_and_its_flag_decides() {
    let mut j = joiner();
    let tcp = Tcp::new(8080, 40_000);
    let mut out = Vec::new();
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&tcp, 1, 2, T0, T0 + 10 * MS)).unwrap(),
        0,
        &mut out,
    );
    let mut span = black_box(SpanKind::Server, &tcp, 3, T0 + MS, T0 + 2 * MS);
    let parent =
        TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    span.header = SeenParent::Valid(parent, TraceState::parse(b"a=1").unwrap());
    j.add_black_box(span, 0, &mut out);
    let [resolved] = &out[..] else {
        panic!("{out:?}")
    };
    let span = &resolved.span;
    assert_eq!(span.trace_id(), parent.trace_id);
    assert_eq!(span.parent_span_id, Some(parent.parent_id));
    assert_eq!(span.span_id(), SpanId::from_bytes([3; 8]));
    assert!(
        !span.context.is_sampled(),
        "the header's unsampled flag decides"
    );
    assert!(span.parent_is_remote);
    assert_eq!(span.context.trace_state.as_str(), "a=1");
    assert_eq!(source(span), Some(&Value::from("header")));
}

#[test]
fn a_header_a_black_box_sidecar_left_as_it_was_yields_to_that_sidecar_span() {
    let mut j = joiner();
    let tcp = Tcp::new(8080, 40_100);
    let mut out = Vec::new();
    // The request carried its caller's header through a sidecar that must not touch it.
    let mut span = black_box(SpanKind::Server, &tcp, 3, T0 + MS, T0 + 2 * MS);
    let parent =
        TraceParent::parse(b"00-09090909090909090909090909090909-0707070707070707-01").unwrap();
    span.header = SeenParent::Valid(parent, TraceState::default());
    j.add_black_box(span, 0, &mut out);
    assert!(
        out.is_empty(),
        "a span with a header waits for a sidecar span too"
    );
    // The sidecar's span, of the header's trace, arrives within the window.
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&tcp, 9, 2, T0, T0 + 10 * MS)).unwrap(),
        MS,
        &mut out,
    );
    let [resolved] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(resolved.span.trace_id(), parent.trace_id);
    assert_eq!(
        resolved.span.parent_span_id,
        Some(SpanId::from_bytes([2; 8]))
    );
    assert_eq!(source(&resolved.span), Some(&Value::from("four_tuple")));

    // Without a sidecar span, the header's parent once the window has passed.
    let tcp = Tcp::new(8080, 40_101);
    let mut span = black_box(SpanKind::Server, &tcp, 4, T0 + MS, T0 + 2 * MS);
    span.header = SeenParent::Valid(parent, TraceState::default());
    out.clear();
    j.add_black_box(span, 0, &mut out);
    j.tick(10 * 1_000 * MS, &mut out);
    let [resolved] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(resolved.span.parent_span_id, Some(parent.parent_id));
    assert_eq!(source(&resolved.span), Some(&Value::from("header")));
}

#[test]
fn a_sidecar_span_already_received_is_joined_at_once() {
    let mut j = joiner();
    let tcp = Tcp::new(8080, 40_001);
    let mut out = Vec::new();
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&tcp, 1, 2, T0, T0 + 10 * MS)).unwrap(),
        0,
        &mut out,
    );
    j.add_black_box(
        black_box(SpanKind::Server, &tcp, 3, T0 + MS, T0 + 9 * MS),
        0,
        &mut out,
    );
    let span = &out[0].span;
    assert_eq!(span.trace_id(), TraceId::from_bytes([1; 16]));
    assert_eq!(span.parent_span_id, Some(SpanId::from_bytes([2; 8])));
    assert!(span.context.is_sampled());
    assert_eq!(span.context.trace_state.as_str(), "ot=th:8");
    assert_eq!(source(span), Some(&Value::from("four_tuple")));
}

#[test]
fn a_black_box_span_waits_within_the_window_for_its_sidecar_span() {
    let mut j = joiner();
    let tcp = Tcp::new(8080, 40_002);
    let mut out = Vec::new();
    j.add_black_box(
        black_box(SpanKind::Server, &tcp, 3, T0 + MS, T0 + 9 * MS),
        0,
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(j.pending(), 1);
    j.tick(4 * SEC, &mut out);
    assert!(out.is_empty(), "within the window");
    // Another connection's span does not match.
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&Tcp::new(8080, 40_999), 5, 5, T0, T0 + 10 * MS)).unwrap(),
        4 * SEC,
        &mut out,
    );
    assert!(out.is_empty());
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&tcp, 1, 2, T0, T0 + 10 * MS)).unwrap(),
        4 * SEC,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(source(&out[0].span), Some(&Value::from("four_tuple")));
    assert_eq!(j.pending(), 0);
    j.tick(10 * SEC, &mut out);
    assert_eq!(out.len(), 1, "resolved once");
}

#[test]
fn the_window_must_cover_the_exchange_and_late_joins_are_counted() {
    let mut j = joiner();
    let tcp = Tcp::new(8080, 40_003);
    let mut out = Vec::new();
    // The sidecar's previous request on the same keep-alive connection.
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&tcp, 1, 1, T0, T0 + 10 * MS)).unwrap(),
        0,
        &mut out,
    );
    j.add_black_box(
        black_box(SpanKind::Server, &tcp, 3, T0 + 50 * MS, T0 + 60 * MS),
        0,
        &mut out,
    );
    assert!(out.is_empty());
    j.tick(5 * SEC, &mut out);
    let span = &out[0].span;
    assert_eq!(source(span), Some(&Value::from("none")));
    assert_eq!(span.parent_span_id, None);
    assert!(span.trace_id().is_valid());
    assert!(span.context.flags.is_random());
    // Its own sidecar span, too late.
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&tcp, 2, 2, T0 + 40 * MS, T0 + 70 * MS)).unwrap(),
        6 * SEC,
        &mut out,
    );
    assert_eq!(j.counts().get(JoinCount::LateJoins), 1);
    assert_eq!(out.len(), 1);
}

#[test]
fn the_innermost_covering_span_is_the_parent() {
    let mut j = joiner();
    let tcp = Tcp::new(8080, 40_004);
    let mut out = Vec::new();
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&tcp, 1, 1, T0, T0 + 100 * MS)).unwrap(),
        0,
        &mut out,
    );
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&tcp, 1, 2, T0 + 20 * MS, T0 + 30 * MS)).unwrap(),
        0,
        &mut out,
    );
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&tcp, 1, 3, T0 + 40 * MS, T0 + 50 * MS)).unwrap(),
        0,
        &mut out,
    );
    j.add_black_box(
        black_box(SpanKind::Server, &tcp, 9, T0 + 21 * MS, T0 + 29 * MS),
        0,
        &mut out,
    );
    assert_eq!(out[0].span.parent_span_id, Some(SpanId::from_bytes([2; 8])));
}

#[test]
fn a_call_takes_the_vm_inflight_server_span_once_that_is_resolved() {
    let mut j = joiner();
    let inbound = Tcp::new(8080, 40_005);
    let outbound = Tcp::new(52_000, 5432);
    let mut out = Vec::new();
    let mut call = black_box(SpanKind::Client, &outbound, 4, T0 + 2 * MS, T0 + 3 * MS);
    call.inflight_parent = Some(SpanId::from_bytes([3; 8]));
    j.add_black_box(call, 0, &mut out);
    j.tick(5 * SEC, &mut out);
    assert!(out.is_empty(), "parked until its server span is resolved");
    // The server span ends after the call, and waits for its sidecar span in turn.
    j.add_black_box(
        black_box(SpanKind::Server, &inbound, 3, T0, T0 + 10 * MS),
        5 * SEC,
        &mut out,
    );
    j.add_sidecar(
        SidecarSpan::from_proto(&sidecar(&inbound, 7, 8, T0, T0 + 11 * MS)).unwrap(),
        6 * SEC,
        &mut out,
    );
    let [server, call] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(source(&server.span), Some(&Value::from("four_tuple")));
    assert_eq!(source(&call.span), Some(&Value::from("vm_inflight")));
    assert_eq!(call.span.trace_id(), TraceId::from_bytes([7; 16]));
    assert_eq!(call.span.parent_span_id, Some(SpanId::from_bytes([3; 8])));
    assert!(!call.span.parent_is_remote);

    // A server resolved first: the call takes it at the end of its window.
    let mut out = Vec::new();
    j.add_black_box(
        black_box(SpanKind::Server, &inbound, 30, T0, T0 + 10 * MS),
        7 * SEC,
        &mut out,
    );
    j.tick(13 * SEC, &mut out);
    let mut call = black_box(SpanKind::Client, &outbound, 40, T0 + 2 * MS, T0 + 3 * MS);
    call.inflight_parent = Some(SpanId::from_bytes([30; 8]));
    j.add_black_box(call, 13 * SEC, &mut out);
    j.tick(19 * SEC, &mut out);
    assert_eq!(out[1].span.trace_id(), out[0].span.trace_id());
    assert_eq!(source(&out[1].span), Some(&Value::from("vm_inflight")));

    // A server never resolved: the call gives up after the bounded wait.
    let mut out = Vec::new();
    let mut call = black_box(SpanKind::Client, &outbound, 41, T0, T0 + MS);
    call.inflight_parent = Some(SpanId::from_bytes([99; 8]));
    j.add_black_box(call, 20 * SEC, &mut out);
    j.tick(25 * SEC, &mut out);
    assert!(out.is_empty());
    j.tick(56 * SEC, &mut out);
    assert_eq!(source(&out[0].span), Some(&Value::from("none")));
    assert_eq!(j.counts().get(JoinCount::InflightExpired), 1);
}

#[test]
fn spans_without_a_parent_follow_the_sampler() {
    let tcp = Tcp::new(8080, 40_006);
    for (percentage, sampled) in [(0.0, false), (100.0, true)] {
        let mut j = joiner_with(JoinSettings::default(), percentage);
        let mut out = Vec::new();
        j.add_black_box(
            black_box(SpanKind::Server, &tcp, 3, T0, T0 + MS),
            0,
            &mut out,
        );
        j.flush(&mut out);
        assert_eq!(out[0].span.context.is_sampled(), sampled, "{percentage}");
        assert_eq!(j.sources().get(ParentSource::None), 1);
    }
}

#[test]
fn every_structure_is_bounded() {
    let settings = JoinSettings {
        max_indexed: 2,
        max_pending: 2,
        ..JoinSettings::default()
    };
    let mut j = joiner_with(settings, 100.0);
    let mut out = Vec::new();
    for port in 0..3 {
        let tcp = Tcp::new(8080, 41_000 + port);
        j.add_black_box(
            black_box(SpanKind::Server, &tcp, 3, T0, T0 + MS),
            0,
            &mut out,
        );
    }
    assert_eq!(j.pending(), 2);
    assert_eq!(
        out.len(),
        1,
        "the third could not wait and went on without a parent"
    );
    assert_eq!(j.counts().get(JoinCount::PendingFull), 1);
    for port in 0..3 {
        let tcp = Tcp::new(8080, 42_000 + port);
        j.add_sidecar(
            SidecarSpan::from_proto(&sidecar(&tcp, 1, 1, T0, T0 + MS)).unwrap(),
            0,
            &mut out,
        );
    }
    assert_eq!(j.indexed(), 2);
    assert_eq!(j.counts().get(JoinCount::IndexFull), 1);
    j.tick(60 * SEC, &mut out);
    assert_eq!((j.pending(), j.indexed()), (0, 0));
}

#[test]
fn mapped_addresses_and_spans_without_a_tuple() {
    let tcp = Tcp::new(8080, 40_007);
    let mut span = sidecar(&tcp, 1, 2, T0, T0 + MS);
    span.attributes[1] = kv(
        semconv::NETWORK_LOCAL_ADDRESS,
        any_value::Value::StringValue("::ffff:10.0.0.1".into()),
    );
    let joined = SidecarSpan::from_proto(&span).unwrap();
    assert_eq!(Some(joined.tuple), Tuple::of_flow(&tcp.key()));
    span.attributes.truncate(2);
    assert_eq!(SidecarSpan::from_proto(&span), None);
    let mut unflagged = sidecar(&tcp, 1, 2, T0, T0 + MS);
    unflagged.flags = 0;
    assert!(
        SidecarSpan::from_proto(&unflagged)
            .unwrap()
            .context
            .is_sampled()
    );
    let mut unsampled = sidecar(&tcp, 1, 2, T0, T0 + MS);
    unsampled.flags = 0x300;
    assert!(
        !SidecarSpan::from_proto(&unsampled)
            .unwrap()
            .context
            .is_sampled()
    );
}
